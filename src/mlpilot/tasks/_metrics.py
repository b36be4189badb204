"""Metrics resolved by name, in the manner of scikit-learn's scorer registry.

Every metric takes the encoded target (class indices ``0..k-1`` for
classifiers, floats for regression) and a prediction array: class
probabilities of shape ``(n, k)`` for classifiers, values for regression.
Label metrics (accuracy, balanced accuracy, F1) score the labels the model
serves: `labels_at` the metric's decision threshold (`Metric.at`), the class of
highest probability when it has none (models saved before thresholds).
A metric bound to per-row weights (`Metric.weighted`) weighs each row by
them; `Metric.on` gives the same metric on a subset of those rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn import metrics as skm

from mlpilot.exceptions import InvalidParameterError
from mlpilot.tasks._threshold import labels_at

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
        ``func(y_encoded, prediction) -> float``; for label metrics
        ``func(y_encoded, labels, n_classes) -> float``. The built-in metrics also
        take per-row weights as a last argument.
    labels : bool
        Scores class labels, taken from the probabilities at `threshold`.
    threshold : float or None
        A binary model's decision threshold (None: the class of highest probability).
    sample_weight : ndarray or None
        The weight of each row the metric is called on (None: every row counts once).

    Examples
    --------
    >>> m = get_metric("mae").weighted(np.array([1.0, 3.0]))
    >>> m(np.array([0.0, 0.0]), np.array([1.0, 2.0])), m.on(np.array([0]))(np.array([0.0]), np.array([1.0]))
    (1.75, 1.0)
    """

    name: str
    tasks: tuple[str, ...]
    greater_is_better: bool
    func: Callable[..., float]
    labels: bool = False
    threshold: float | None = None
    sample_weight: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __call__(self, y: np.ndarray, prediction: np.ndarray) -> float:
        y, prediction = np.asarray(y), np.asarray(prediction)
        weights = self.sample_weight
        if weights is not None and len(weights) != len(y):
            raise ValueError(f"the metric {self.name} is weighted for {len(weights)} rows, got {len(y)}")
        if self.labels:
            codes = labels_at(np.arange(prediction.shape[1]), prediction, self.threshold)
            args: tuple[Any, ...] = (y, codes, prediction.shape[1])
        else:
            args = (y, prediction)
        return float(self.func(*args) if weights is None else self.func(*args, weights))

    def at(self, threshold: float | None) -> Metric:
        """This metric for a model labelling at ``threshold`` (a no-op for metrics of probabilities or values)."""
        return replace(self, threshold=threshold) if self.labels else self

    def weighted(self, sample_weight: Any) -> Metric:
        """This metric with each row weighted by ``sample_weight`` (None: unweighted)."""
        return replace(self, sample_weight=None if sample_weight is None else np.asarray(sample_weight, dtype=float))

    def on(self, rows: Any) -> Metric:
        """This metric for the subset ``rows`` (positions or a mask) of the rows it is weighted for."""
        return self if self.sample_weight is None else replace(self, sample_weight=self.sample_weight[rows])

    def decided(self, proba: np.ndarray, threshold: float | None) -> np.ndarray:
        """What this metric should see of a model labelling at ``threshold``, for comparing models at one threshold.

        Label metrics get one-hot rows of the model's labels, so that two models
        with different thresholds are scored by one metric (a paired test);
        other metrics get ``proba`` unchanged.
        """
        proba = np.asarray(proba)
        if not self.labels or proba.ndim != 2:
            return proba
        codes = labels_at(np.arange(proba.shape[1]), proba, threshold)
        return np.eye(proba.shape[1])[codes]

    def score(self, y: np.ndarray, prediction: np.ndarray) -> float:
        """The metric with its sign set so that greater is always better."""
        value = self(y, prediction)
        return value if self.greater_is_better else -value

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than value ``b``."""
        return a > b if self.greater_is_better else a < b


Weights = np.ndarray | None


def _roc_auc(y: np.ndarray, proba: np.ndarray, w: Weights = None) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y, proba[:, 1], sample_weight=w))
    present = np.unique(y)
    if len(present) < proba.shape[1]:
        return float("nan")
    p = np.clip(proba, _EPS, 1)
    return float(skm.roc_auc_score(y, p / p.sum(axis=1, keepdims=True), multi_class="ovr", average="macro",
                                   sample_weight=w))


def _log_loss(y: np.ndarray, proba: np.ndarray, w: Weights = None) -> float:
    p = np.clip(proba, _EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.average(np.log(p[np.arange(len(y)), y.astype(int)]), weights=w))


def _accuracy(y: np.ndarray, labels: np.ndarray, n_classes: int, w: Weights = None) -> float:
    return float(np.average(labels == y, weights=w))


def _balanced_accuracy(y: np.ndarray, labels: np.ndarray, n_classes: int, w: Weights = None) -> float:
    return float(skm.balanced_accuracy_score(y, labels, sample_weight=w))


def _f1(y: np.ndarray, labels: np.ndarray, n_classes: int, w: Weights = None) -> float:
    average = "binary" if n_classes == 2 else "macro"
    return float(skm.f1_score(y, labels, average=average, zero_division=0, sample_weight=w))


def _brier(y: np.ndarray, proba: np.ndarray, w: Weights = None) -> float:
    return float(np.average((proba[:, 1] - y) ** 2, weights=w))


def _rmse(y: np.ndarray, pred: np.ndarray, w: Weights = None) -> float:
    return float(np.sqrt(np.average((y.astype(float) - pred.astype(float)) ** 2, weights=w)))


def _mae(y: np.ndarray, pred: np.ndarray, w: Weights = None) -> float:
    return float(np.average(np.abs(y - pred), weights=w))


def _r2(y: np.ndarray, pred: np.ndarray, w: Weights = None) -> float:
    return float(skm.r2_score(y, pred, sample_weight=w))


def _mape(y: np.ndarray, pred: np.ndarray, w: Weights = None) -> float:
    return float(skm.mean_absolute_percentage_error(y, pred, sample_weight=w))


_CLS = ("binary", "multiclass")
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", _CLS, True, _roc_auc),
        Metric("log_loss", _CLS, False, _log_loss),
        Metric("accuracy", _CLS, True, _accuracy, labels=True),
        Metric("balanced_accuracy", _CLS, True, _balanced_accuracy, labels=True),
        Metric("f1", _CLS, True, _f1, labels=True),
        Metric("brier", ("binary",), False, _brier),
        Metric("rmse", ("regression",), False, _rmse),
        Metric("mae", ("regression",), False, _mae),
        Metric("r2", ("regression",), True, _r2),
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
