"""The Spark executor of the tune seam: results in item order, computed in Spark tasks, failures named."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from mlpilot.spark import SparkExecutor, SparkJobError
from tests.spark.conftest import GROUP_FIT

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group(GROUP_FIT)]


def test_fold_fits_run_as_spark_tasks_and_come_back_in_order(spark: Any) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X = X / X.max(axis=0)

    def _fold_score(fold: tuple[np.ndarray, np.ndarray]) -> tuple[float, int]:  # shipped by value to the workers
        train, test = fold
        model = LogisticRegression(max_iter=200).fit(X[train], y[train])
        return float(model.score(X[test], y[test])), os.getpid()

    folds = list(KFold(4, shuffle=True, random_state=0).split(X))
    executor = SparkExecutor(spark, n_workers=2)
    assert executor.n_workers == 2
    remote = executor.map(_fold_score, folds)
    local = [_fold_score(f) for f in folds]
    assert [score for score, _ in remote] == [score for score, _ in local]
    assert os.getpid() not in {pid for _, pid in remote}  # fitted in Spark's Python workers
    assert executor.map(_fold_score, []) == []


def test_a_failing_item_is_a_spark_job_error_naming_it(spark: Any) -> None:
    def check(x: int) -> int:
        if x == 3:
            raise ValueError(f"trial {x} diverged")
        return x

    with pytest.raises(SparkJobError, match="trial 3 diverged"):
        SparkExecutor(spark).map(check, range(5))


def test_a_large_array_is_broadcast_once_and_not_pickled_with_each_call(spark: Any) -> None:
    import gc

    arrays = {"big": np.arange(300_000, dtype=np.float64), "small": np.ones(10)}  # 2.4 MB: past the threshold
    executor = SparkExecutor(spark, n_workers=2)

    def part_sum(i: int) -> float:
        return float(arrays["big"][i::7].sum() + arrays["small"].sum())

    assert executor.map(part_sum, range(4)) == [part_sum(i) for i in range(4)]
    assert executor.broadcasts == 1 and executor.last_payload_bytes < 100_000  # the big array itself stayed out
    assert executor.map(lambda i: float(arrays["big"][i]), range(3)) == [0.0, 1.0, 2.0]
    assert executor.broadcasts == 1  # the same array: the same broadcast variable
    arrays.clear()
    gc.collect()
    assert executor.broadcasts == 0  # freed on the driver: forgotten (and destroyed on the cluster)
