"""Training from Spark past the driver: the search's fits as Spark tasks, the final fit with xgboost.spark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import mlpilot
from mlpilot.cli import app
from mlpilot.exceptions import InvalidParameterError
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version, score_frame
from mlpilot.spark import (
    DRIVER_MEMORY_ENV,
    SparkExecutor,
    driver_budget_bytes,
    driver_memory,
    parse_bytes,
)
from mlpilot.tune import LocalExecutor
from tests.spark.conftest import GROUP_FIT

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group(GROUP_FIT)]
FAST = {"deterministic": True, "report": False}


def test_the_search_on_spark_tasks_scores_as_on_local_threads(spark: Any, churn_rows: pd.DataFrame,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {**FAST, "n_trials": 0, "families": ("linear",), "register": False}
    frame = churn_rows.head(600)
    # the tiny table's fold matrices are broadcast as a big table's are (past 16 kB, not 1 MB)
    monkeypatch.setattr("mlpilot.spark._executor.BROADCAST_BYTES", 16 << 10)
    executor = SparkExecutor(spark)
    on_spark = mlpilot.train(frame, "churn", executor=executor, **kw)  # type: ignore[arg-type]
    local = mlpilot.train(frame, "churn", executor=LocalExecutor(2), **kw)  # type: ignore[arg-type]

    def scores(run: Any) -> list[tuple[str, Any, Any]]:
        return [(r["name"], r.get("cv_roc_auc"), r.get("holdout_roc_auc")) for r in run.outcome.evaluation.leaderboard]

    assert len(scores(on_spark)) == 2 and scores(on_spark) == scores(local)  # linear and the dummy baseline
    assert on_spark.metrics == local.metrics  # with its fold matrices read from broadcast variables in the tasks


def test_a_table_past_the_driver_budget_is_fitted_with_xgboost_spark_and_served_without_it(
    spark: Any, churn_rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DRIVER_MEMORY_ENV, "1m")  # the sample is the least there is (500 rows)
    run = mlpilot.train(spark.createDataFrame(churn_rows).repartition(3), "churn", name="big", workspace=tmp_path,
                        n_trials=0, families=("xgboost",), **FAST)  # type: ignore[arg-type]
    info = run.outcome.card["data"]["spark"]
    assert info["budget"]["fits_driver"] is False and info["sample_rows"] < info["train_rows"]
    # a Spark table's search runs on the table's session, the choice recorded on the card and the leaderboard
    assert info["executor"] == {"executor": "spark", "n_workers": 2, "master": "local[2]"}
    assert {r["executor"] for r in run.outcome.evaluation.leaderboard} == {"spark (2 workers)"}
    fit = info["final_fit"]
    assert (fit["where"], fit["learner"], fit["from_candidate"]) == ("cluster", "xgboost.spark SparkXGBClassifier",
                                                                    "xgboost")
    stopping = fit["early_stopping"]  # the cluster finds its own rounds: early stopping on held-out training rows
    assert stopping["rounds_cap"] >= 500 and 1 <= fit["rounds"] <= stopping["rounds_cap"]
    assert fit["params"]["n_estimators"] == fit["rounds"] == run.model.members_[0][1].n_iterations_
    test = info["full_fit_vs_sample_fit"]
    assert set(test) >= {"sample_fit_roc_auc", "difference", "p_value"}
    assert run.metrics["holdout_full_roc_auc"] - test["sample_fit_roc_auc"] == pytest.approx(test["difference"])
    registry = Registry(Workspace.open(tmp_path))
    try:
        mv = registry.get_version("big")
        assert mv.info["members"] == {"xgboost_spark": 1.0}
        events = registry.list_events(name="big", kind="spark_training")
        assert [e["payload"]["final_fit"]["where"] for e in events] == ["cluster"]
        served = load_version(registry, mv)  # the plain runtime: no Spark
    finally:
        registry.close()
    holdout = churn_rows.drop(columns=["churn"])
    pre, learner = run.model.members_[0]
    import xgboost

    booster = learner.estimator_.get_booster()
    expected = booster.predict(xgboost.DMatrix(np.asarray(pre.transform(holdout), dtype=float)))
    scored = score_frame(served, holdout).frame
    np.testing.assert_allclose(scored["probability_yes"].to_numpy(), expected, atol=1e-6)  # rounded to 6 places
    # the decision threshold is chosen again, by the run's rule (F1), on the cluster fit's early-stopping rows
    chosen = fit["threshold"]
    assert chosen["rule"] == "f1" and chosen["n_rows"] > 0 and 0 < chosen["value"] < 1
    assert chosen["at_threshold"]["f1"] >= chosen["at_0.5"]["f1"]
    assert run.model.threshold == chosen["value"] == run.outcome.card["threshold"]["value"]
    assert run.outcome.card["threshold"]["cluster_fit"]["sample_fit_threshold"] == chosen["sample_fit_threshold"]
    labels = np.where(expected >= chosen["value"], "yes", "no")  # the served labels are at that threshold
    assert (scored["prediction"].astype(str).to_numpy() == labels).all()


def test_the_driver_memory_override_is_parsed_and_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert parse_bytes("1500m") == 1500 << 20 and parse_bytes("2g") == 2 << 30
    monkeypatch.setenv(DRIVER_MEMORY_ENV, "3g")
    assert driver_budget_bytes() == (3 << 30) - (800 << 20)
    with driver_memory("1500m"):  # what `train --driver-memory` sets: over the environment, for this block
        assert driver_budget_bytes() == (1500 << 20) - (800 << 20)
    assert driver_budget_bytes() == (3 << 30) - (800 << 20)
    monkeypatch.setenv(DRIVER_MEMORY_ENV, "lots")
    with pytest.raises(InvalidParameterError, match=r"MLPILOT_SPARK_DRIVER_MEMORY='lots' .*'1500m', '4g'"):
        driver_budget_bytes()
    # the CLI refuses a bad size before it reads the source or starts Spark (the source does not exist)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "absent.parquet"), "--target", "y", "--engine", "spark",
                                      "--driver-memory", "0g", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 2, result.output
    assert "--driver-memory '0g' is not a memory size" in result.output and "absent" not in result.output


def test_a_full_fit_significantly_worse_than_the_sample_fit_is_not_registered(
    spark: Any, churn: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = churn.drop(columns=["rownames"])  # all 5,000: a holdout large enough for the test to tell
    monkeypatch.setenv(DRIVER_MEMORY_ENV, "805m")  # a sample of about a quarter of the training rows
    # the cluster's fit may grow a single tree: far worse than the search's boosted ensemble on the sample
    monkeypatch.setattr("mlpilot.spark._fit.ROUNDS_FACTOR", 0)
    monkeypatch.setattr("mlpilot.spark._fit.MIN_ROUNDS_CAP", 1)
    run = mlpilot.train(spark.createDataFrame(rows).repartition(3), "churn", name="kept", workspace=tmp_path,
                        n_trials=0, families=("xgboost",), **FAST)  # type: ignore[arg-type]
    info = run.outcome.card["data"]["spark"]
    test, fit = info["full_fit_vs_sample_fit"], info["final_fit"]
    assert test["significant"] and test["difference"] < 0
    assert (fit["where"], fit["kept"], fit["rounds"]) == ("driver", "sample_fit", 1)
    assert "sample fit is kept" in fit["reason"]
    # the registered model and its full-holdout metric are the sample fit's
    assert run.metrics["holdout_full_roc_auc"] == pytest.approx(test["sample_fit_roc_auc"])
    registry = Registry(Workspace.open(tmp_path))
    try:
        mv = registry.get_version("kept")
        assert "xgboost_spark" not in mv.info["members"]
        events = registry.list_events(name="kept", kind="spark_training")
        assert [e["payload"]["final_fit"]["kept"] for e in events] == ["sample_fit"]
    finally:
        registry.close()


def test_without_a_boosted_candidate_the_cluster_fit_takes_the_fallback_hyper_parameters(
    spark: Any, churn_rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DRIVER_MEMORY_ENV, "1m")  # the sample is the least there is (500 rows)
    monkeypatch.setattr("mlpilot.spark._fit.MIN_ROUNDS_CAP", 40)
    # only the linear family searched, as when no boosted candidate finishes inside a busy machine's budget
    run = mlpilot.train(spark.createDataFrame(churn_rows).repartition(3), "churn", name="fallback",
                        workspace=tmp_path, n_trials=0, families=("linear",), **FAST)  # type: ignore[arg-type]
    info = run.outcome.card["data"]["spark"]
    fit = info["final_fit"]
    assert fit["where"] == "cluster" and fit["from_candidate"] is None and fit["params_from"].startswith("FALLBACK")
    assert fit["early_stopping"]["rounds_cap"] == 40 and fit["early_stopping"]["search_rounds"] is None
    assert 1 <= fit["rounds"] <= 40 and fit["params"]["max_depth"] == 6
    # the holdout compared it with the linear sample fit, and boosting on every row won on churn
    test = info["full_fit_vs_sample_fit"]
    assert test["difference"] > 0
    registry = Registry(Workspace.open(tmp_path))
    try:
        assert registry.get_version("fallback").info["members"] == {"xgboost_spark": 1.0}
    finally:
        registry.close()
