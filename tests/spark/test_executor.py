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

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]


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
