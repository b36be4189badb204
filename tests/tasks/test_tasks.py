from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlpilot.tasks as tasks_pkg
from mlpilot.exceptions import InvalidParameterError, TargetError
from mlpilot.tasks import default_metric, detect_task, encode_target, get_metric, metric_names


def test_exports() -> None:
    assert sorted(tasks_pkg.__all__) == sorted(n for n in dir(tasks_pkg) if not n.startswith("_") and n != "annotations")


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["yes", "no", "yes", "no"], "binary"),
        ([True, False, True], "binary"),
        ([0, 1, 1, 0], "binary"),
        (["a", "b", "c", "a"], "multiclass"),
        ([1, 2, 3] * 10, "multiclass"),
        ([0.5, 1.25, 3.0, 2.0], "regression"),
        (list(range(100)), "regression"),
    ],
)
def test_detect_task(values: list[object], task: str) -> None:
    assert detect_task(pd.Series(values, name="y")) == task


def test_one_class_target_is_rejected() -> None:
    with pytest.raises(TargetError, match="single value"):
        detect_task(pd.Series(["a"] * 10, name="y"))


def test_string_regression_target_is_rejected() -> None:
    with pytest.raises(TargetError, match=r"non-numeric values.*regression target must be numbers"):
        detect_task(pd.Series(["low", "high", "mid"], name="price"), "regression")


def test_binary_task_needs_two_classes() -> None:
    with pytest.raises(TargetError, match="exactly 2 classes"):
        detect_task(pd.Series(["a", "b", "c"]), "binary")
    with pytest.raises(InvalidParameterError, match="Unknown task 'ranking'"):
        detect_task(pd.Series([1, 2]), "ranking")


def test_encode_target_round_trips_labels() -> None:
    y = pd.Series(["no", "yes", "no", "maybe"])
    codes, enc = encode_target(y, "multiclass")
    assert enc.classes == ("maybe", "no", "yes")
    assert enc.decode(codes).tolist() == y.tolist()
    values, reg = encode_target(pd.Series([1, 2.5]), "regression")
    assert values.dtype == float and reg.classes == ()


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_default_metrics_exist(task: str) -> None:
    assert get_metric(default_metric(task), task).name in metric_names(task)


def test_metric_values() -> None:
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4]])
    assert get_metric("roc_auc")(y, proba) == 1.0
    assert get_metric("accuracy")(y, proba) == 1.0
    assert get_metric("log_loss").score(y, proba) < 0
    assert get_metric("rmse")(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == pytest.approx(np.sqrt(2))
    assert get_metric("AUC").name == "roc_auc"


def test_unknown_or_mismatched_metric() -> None:
    with pytest.raises(InvalidParameterError, match=r"Unknown metric 'bogus'\. Accepted: rmse"):
        get_metric("bogus", "regression")
    with pytest.raises(InvalidParameterError, match="does not apply to a regression task"):
        get_metric("roc_auc", "regression")
