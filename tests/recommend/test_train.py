from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlpilot
from mlpilot.exceptions import ColumnNotFoundError, InvalidParameterError
from mlpilot.recommend import FAMILY_NAMES, RecommenderModel
from mlpilot.registry import Registry, Workspace
from mlpilot.tune import LocalExecutor


def test_train_leaderboard_lists_every_family_and_the_protocol(trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = trained
    board = model.leaderboard()
    assert set(FAMILY_NAMES) <= set(board["model"])
    assert board.iloc[0]["chosen"] and board["chosen"].sum() == 1
    for column in ("ndcg@10", "ndcg@10_ci_low", "ndcg@10_ci_high", "recall@10", "precision@10", "map@10",
                   "mrr", "hit_rate@10", "coverage@10", "popularity_bias@10", "validation_ndcg@10",
                   "selection_ndcg@10"):
        assert column in board.columns
    assert (board["ndcg@10_ci_low"] <= board["ndcg@10"]).all()
    champion = board.iloc[0]
    popular = board[board["model"] == "most_popular"].iloc[0]
    assert champion["ndcg@10"] > popular["ndcg@10"]
    assert model.protocol_["split"] == "temporal"
    # fixed work (max_trials) always runs the fresh selection folds
    assert model.protocol_["selection"].startswith("champion chosen on 3 fresh validation fold(s)")
    assert champion["model"] == "blend" or champion["selection_ndcg@10"] == board["selection_ndcg@10"].max()
    assert "full catalogue" in model.protocol_["ranking"]
    assert set(model.metrics_["tests"]) == {"vs_most_popular", "vs_runner_up"}


def test_recommend_keeps_id_types_and_excludes_seen(trained: tuple[RecommenderModel, Path], ml_small: pd.DataFrame) -> None:
    model, _ = trained
    recs = model.recommend([1, 2], k=5)
    assert list(recs.columns) == ["user", "item", "score", "rank"]
    assert recs["user"].tolist() == [1] * 5 + [2] * 5
    assert all(isinstance(i, int | np.integer) for i in recs["item"])
    assert recs["rank"].tolist() == [1, 2, 3, 4, 5] * 2
    seen = set(ml_small.loc[ml_small["userId"] == 1, "movieId"])
    assert not seen & set(recs.loc[recs["user"] == 1, "item"])
    assert (np.diff(recs.loc[recs["user"] == 1, "score"]) <= 0).all()
    assert model.title(recs["item"].iloc[0])


def test_unknown_user_gets_most_popular_flagged(trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = trained
    recs = model.recommend([999_999], k=3)
    assert recs.attrs["fallback_users"] == [999_999]
    assert recs["item"].tolist() == list(model.items_[np.argsort(-model.popularity_, kind="stable")[:3]])


def test_fold_in_from_history_reports_unknown_items(trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = trained
    history = [int(i) for i in model.user_history(1, limit=5)["item"]]
    recs = model.recommend_from_history([*history, "no-such-item"], k=10)
    assert recs.attrs["unknown_items"] == ["no-such-item"]
    assert not set(history) & set(recs["item"])
    assert len(recs) == 10
    empty = model.recommend_from_history(["nope"], k=2)
    assert empty.attrs["fallback"] is True and len(empty) == 2


def test_similar(trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = trained
    item = int(model.items_[np.argmax(model.popularity_)])
    sims = model.similar([item, -5], k=4)
    assert list(sims.columns) == ["item", "similar_item", "score", "rank"]
    assert len(sims) == 4 and item not in set(sims["similar_item"])
    assert sims.attrs["unknown_items"] == [-5]


@pytest.mark.parametrize("k", [0, 1001, 2.5, True])
def test_k_out_of_range(trained: tuple[RecommenderModel, Path], k: object) -> None:
    model, _ = trained
    with pytest.raises(InvalidParameterError, match=r"'k' parameter must be an int in \[1, 1000\]"):
        model.recommend([1], k=k)  # type: ignore[arg-type]


def test_registered_version_serves_the_same(trained: tuple[RecommenderModel, Path]) -> None:
    model, ws = trained
    registry = Registry(Workspace.open(ws))
    try:
        mv = registry.get_version("movies@champion")
        assert mv.kind == "recommender" and mv.headline_metric == "ndcg@10"
        assert mv.dataset_id is not None and mv.info["protocol"]["split"] == "temporal"
        assert "leaderboard.json" in mv.files
        loaded = registry.load_model(mv)
    finally:
        registry.close()
    pd.testing.assert_frame_equal(loaded.recommend([1, 5], k=7), model.recommend([1, 5], k=7))
    assert model.registered_version_ == mv.ref


class _Recording(LocalExecutor):
    """Local threads that keep how many pieces of work each call handed them."""

    def __init__(self, n_jobs: int) -> None:
        super().__init__(n_jobs)
        self.handed: list[int] = []

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        self.handed.append(len(items))
        return super().map(fn, items)


def test_same_seed_same_scores_whatever_the_executor(ml_small: pd.DataFrame) -> None:
    small = ml_small[ml_small["userId"] <= 40]
    kwargs = dict(user="userId", item="movieId", rating="rating", time_budget=1, max_trials=2,
                  families=("most_popular", "item_knn", "als", "bpr"), register=False, refit=False)
    executor = _Recording(2)
    a = mlpilot.recommend.train(small, **kwargs)
    b = mlpilot.recommend.train(small, executor=executor, **kwargs)  # the families tuned side by side
    assert executor.handed == [4]
    pd.testing.assert_frame_equal(a.leaderboard().drop(columns="tuning_seconds"), b.leaderboard().drop(columns="tuning_seconds"))
    pd.testing.assert_frame_equal(a.recommend([1, 2]), b.recommend([1, 2]))


def test_train_reads_a_csv_and_item_titles(tmp_path: Path, ml_small: pd.DataFrame) -> None:
    ratings = tmp_path / "ratings.csv"
    ml_small[["userId", "movieId", "rating"]].to_csv(ratings, index=False)
    items = ml_small[["movieId", "title"]].drop_duplicates()
    model = mlpilot.recommend.train(
        str(ratings), user="userId", item="movieId", rating="rating", items=items,
        time_budget=10, max_trials=1, families=("most_popular", "rp3beta"), workspace=tmp_path / "ws",
    )
    assert model.protocol_["split"] == "random"
    assert model.title(int(model.items_[0]))
    assert model.registered_version_ == "recommender:1"


def test_train_bad_input(ml_small: pd.DataFrame) -> None:
    with pytest.raises(ColumnNotFoundError, match="user column 'user_id'"):
        mlpilot.recommend.train(ml_small, user="user_id", item="movieId", register=False)
    with pytest.raises(InvalidParameterError, match="Unknown model families"):
        mlpilot.recommend.train(ml_small, user="userId", item="movieId", families=("svd",), register=False)
    with pytest.raises(InvalidParameterError, match="'split' parameter"):
        mlpilot.recommend.train(ml_small, user="userId", item="movieId", split="kfold", register=False)


def test_too_many_items_for_ease_is_reported_and_sparse_models_are_used(ml_small: pd.DataFrame) -> None:
    model = mlpilot.recommend.train(
        ml_small, user="userId", item="movieId", time_budget=10, max_trials=1,
        families=("most_popular", "ease", "item_knn"), model_params={"ease": {"max_items": 50}}, register=False,
    )
    board = model.leaderboard()
    ease = board[board["model"] == "ease"].iloc[0]
    assert "EASE holds dense" in ease["error"] and not ease["chosen"]
    assert board.iloc[0]["model"] in ("most_popular", "item_knn", "blend")


def test_rating_predictor_when_asked(ml_small: pd.DataFrame) -> None:
    model = mlpilot.recommend.train(
        ml_small, user="userId", item="movieId", rating="rating", time_budget=5, max_trials=1,
        families=("most_popular", "item_knn"), predict_ratings=True, register=False,
    )
    assert 0.5 < model.metrics_["rating_rmse"] < 1.2
    assert model.metrics_["rating_mae"] < model.metrics_["rating_rmse"]
    predicted = model.predict_rating([1, 1, 424242], [31, 424242, 31])
    assert predicted.shape == (3,) and np.all((predicted > 0.5) & (predicted < 5.5))
    with pytest.raises(InvalidParameterError, match="explicit ratings"):
        mlpilot.recommend.train(ml_small, user="userId", item="movieId", predict_ratings=True, register=False,
                                families=("most_popular",), max_trials=1)

