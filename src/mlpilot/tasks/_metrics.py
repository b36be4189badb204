"""Metrics resolved by name, in the manner of scikit-learn's scorer registry.

Every metric takes the encoded target (class indices ``0..k-1`` for
classifiers, floats for regression) and a prediction array: class
probabilities of shape ``(n, k)`` for classifiers, values for regression.
Label metrics (accuracy, balanced accuracy, F1) score the labels the model
serves: `labels_at` the metric's decision threshold (`Metric.at`), the class of
highest probability when it has none (models saved before thresholds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

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
        ``func(y_encoded, labels, n_classes) -> float``.
    labels : bool
        Scores class labels, taken from the probabilities at `threshold`.
    threshold : float or None
        A binary model's decision threshold (None: the class of highest probability).
    """

    name: str
    tasks: tuple[str, ...]
    greater_is_better: bool
    func: Callable[..., float]
    labels: bool = False
    threshold: float | None = None

    def __call__(self, y: np.ndarray, prediction: np.ndarray) -> float:
        prediction = np.asarray(prediction)
        if self.labels:
            codes = labels_at(np.arange(prediction.shape[1]), prediction, self.threshold)
            return float(self.func(np.asarray(y), codes, prediction.shape[1]))
        return float(self.func(np.asarray(y), prediction))

    def at(self, threshold: float | None) -> Metric:
        """This metric for a model labelling at ``threshold`` (a no-op for metrics of probabilities or values)."""
        return replace(self, threshold=threshold) if self.labels else self

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


def _f1(y: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    average = "binary" if n_classes == 2 else "macro"
    return float(skm.f1_score(y, labels, average=average, zero_division=0))


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
        Metric("accuracy", _CLS, True, lambda y, labels, k: float(np.mean(labels == y)), labels=True),
        Metric("balanced_accuracy", _CLS, True,
               lambda y, labels, k: float(skm.balanced_accuracy_score(y, labels)), labels=True),
        Metric("f1", _CLS, True, _f1, labels=True),
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
