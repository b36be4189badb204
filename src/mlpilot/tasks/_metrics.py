"""Metrics resolved by name, in the manner of scikit-learn's scorer registry.

Every metric takes the encoded target (class indices ``0..k-1`` for
classifiers, floats for regression) and a prediction array: class
probabilities of shape ``(n, k)`` for classifiers, values for regression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from mlpilot.exceptions import InvalidParameterError

_EPS = 1e-15


@dataclass(frozen=True)
class Metric:
    """A named metric.

    Attributes
    ----------
    name : str
        Registry name (``"roc_auc"``, ``"rmse"``, ...).
    tasks : tuple of str
        Tasks it applies to.
    greater_is_better : bool
        Whether a larger value is better.
    func : callable
        ``func(y_encoded, prediction) -> float``.
    """

    name: str
    tasks: tuple[str, ...]
    greater_is_better: bool
    func: Callable[[np.ndarray, np.ndarray], float]

    def __call__(self, y: np.ndarray, prediction: np.ndarray) -> float:
        return float(self.func(np.asarray(y), np.asarray(prediction)))

    def score(self, y: np.ndarray, prediction: np.ndarray) -> float:
        """The metric with its sign set so that greater is always better."""
        value = self(y, prediction)
        return value if self.greater_is_better else -value

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than value ``b``."""
        return a > b if self.greater_is_better else a < b


def _labels(proba: np.ndarray) -> np.ndarray:
    return np.argmax(proba, axis=1)


def _roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y, proba[:, 1]))
    present = np.unique(y)
    if len(present) < proba.shape[1]:
        return float("nan")
    p = np.clip(proba, _EPS, 1)
    return float(skm.roc_auc_score(y, p / p.sum(axis=1, keepdims=True), multi_class="ovr", average="macro"))


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    p = np.clip(proba, _EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(y)), y.astype(int)])))


def _f1(y: np.ndarray, proba: np.ndarray) -> float:
    average = "binary" if proba.shape[1] == 2 else "macro"
    return float(skm.f1_score(y, _labels(proba), average=average, zero_division=0))


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y.astype(float) - pred.astype(float)) ** 2)))


def _mape(y: np.ndarray, pred: np.ndarray) -> float:
    return float(skm.mean_absolute_percentage_error(y, pred))


_CLS = ("binary", "multiclass")
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", _CLS, True, _roc_auc),
        Metric("log_loss", _CLS, False, _log_loss),
        Metric("accuracy", _CLS, True, lambda y, p: float(np.mean(_labels(p) == y))),
        Metric(
            "balanced_accuracy",
            _CLS,
            True,
            lambda y, p: float(skm.balanced_accuracy_score(y, _labels(p))),
        ),
        Metric("f1", _CLS, True, _f1),
        Metric("brier", ("binary",), False, lambda y, p: float(np.mean((p[:, 1] - y) ** 2))),
        Metric("rmse", ("regression",), False, _rmse),
        Metric("mae", ("regression",), False, lambda y, p: float(np.mean(np.abs(y - p)))),
        Metric("r2", ("regression",), True, lambda y, p: float(skm.r2_score(y, p))),
        Metric("mape", ("regression",), False, _mape),
    )
}
_ALIASES = {"auc": "roc_auc", "logloss": "log_loss", "f1_macro": "f1", "mse_root": "rmse"}


def metric_names(task: str | None = None) -> list[str]:
    """Names of the metrics available for ``task`` (all when None)."""
    return [n for n, m in METRICS.items() if task is None or task in m.tasks]


def get_metric(name: str, task: str | None = None) -> Metric:
    """Resolve a metric by name and check that it suits ``task``.

    Examples
    --------
    >>> get_metric("rmse").greater_is_better
    False
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in METRICS:
        raise InvalidParameterError(
            f"Unknown metric {name!r}. Accepted: {', '.join(metric_names(task))}."
        )
    metric = METRICS[key]
    if task is not None and task not in metric.tasks:
        raise InvalidParameterError(
            f"The metric {name!r} does not apply to a {task} task. "
            f"Accepted for {task}: {', '.join(metric_names(task))}."
        )
    return metric
