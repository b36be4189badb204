"""Live performance: estimated without labels from calibrated probabilities, measured once labels arrive.

Pure functions over arrays. The estimate follows NannyML's CBPE: when the
probabilities are calibrated, each row's label is a draw from its predicted
distribution, so the window's expected confusion matrix, and the distribution
of any metric, follow from the probabilities alone. The probabilities are
first recalibrated on the reference (isotonic regression of the reference's
labels on its predicted probabilities). The metric's distribution is drawn by
simulating the labels; its median is the estimate, its 2.5% and 97.5%
quantiles the interval. Once labels exist the real metric is computed with its
bootstrap interval (`mlpilot.evaluate.bootstrap_ci`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from sklearn.isotonic import IsotonicRegression

from mlpilot.evaluate import bootstrap_ci
from mlpilot.exceptions import InvalidParameterError
from mlpilot.tasks import Metric, get_metric, labels_at

# Rows the label simulation works on at most (a uniform sample of a larger window).
_MAX_SIMULATED_ROWS = 20_000


@dataclass(frozen=True)
class MetricEstimate:
    """A metric's value with its 95% interval, and how it was obtained."""

    metric: str
    value: float | None
    interval: tuple[float, float] | None
    method: str
    n_rows: int
    greater_is_better: bool = True

    def to_dict(self) -> dict[str, Any]:
        finite = self.value is not None and bool(np.isfinite(self.value))
        return {
            "metric": self.metric,
            "value": round(float(self.value), 6) if finite and self.value is not None else None,
            "interval": [round(float(v), 6) for v in self.interval] if self.interval is not None else None,
            "method": self.method,
            "n_rows": self.n_rows,
            "greater_is_better": self.greater_is_better,
        }


@dataclass(frozen=True)
class Calibrator:
    """Isotonic maps of each class's probability, fitted on the reference's labels."""

    maps: tuple[IsotonicRegression, ...]

    def __call__(self, proba: np.ndarray) -> np.ndarray:
        proba = np.asarray(proba, dtype=float)
        if proba.shape[1] == 2:
            positive = self.maps[0].predict(proba[:, 1])
            return np.column_stack([1 - positive, positive])
        out = np.column_stack([m.predict(proba[:, j]) for j, m in enumerate(self.maps)])
        total = out.sum(axis=1, keepdims=True)
        return np.divide(out, total, out=np.full_like(out, 1 / out.shape[1]), where=total > 0)


def fit_calibrator(y: np.ndarray, proba: np.ndarray) -> Calibrator:
    """Fit the recalibration of ``proba`` (n × classes) to the encoded labels ``y`` (0..k-1).

    Examples
    --------
    >>> p = np.column_stack([np.linspace(0.9, 0.1, 200), np.linspace(0.1, 0.9, 200)])
    >>> y = (np.arange(200) >= 100).astype(int)
    >>> calibrated = fit_calibrator(y, p)(p)
    >>> bool(calibrated[0, 1] < 0.1 and calibrated[-1, 1] > 0.9)
    True
    """
    y = np.asarray(y).astype(int)
    proba = np.asarray(proba, dtype=float)
    columns = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    maps = tuple(IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba[:, j], y == j)
                 for j in columns)
    return Calibrator(maps)


def expected_confusion(proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The expected confusion matrix (rows: true class, columns: predicted class) of calibrated ``proba``.

    The predicted class is the model's label: a binary model's at its decision
    ``threshold`` (`labels_at`), the class of highest probability without one.

    Examples
    --------
    >>> expected_confusion(np.array([[0.8, 0.2], [0.3, 0.7]])).round(2).tolist()
    [[0.8, 0.3], [0.2, 0.7]]
    >>> expected_confusion(np.array([[0.8, 0.2], [0.3, 0.7]]), threshold=0.15).round(2).tolist()
    [[0.0, 1.1], [0.0, 0.9]]
    """
    proba = np.asarray(proba, dtype=float)
    predicted = labels_at(np.arange(proba.shape[1]), proba, threshold)
    k = proba.shape[1]
    return np.stack([proba[predicted == j].sum(axis=0) for j in range(k)], axis=1)


def _sample(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, _MAX_SIMULATED_ROWS, replace=False)) if n > _MAX_SIMULATED_ROWS else np.arange(n)


def _vectorised(name: str, y: np.ndarray, proba: np.ndarray, threshold: float | None) -> np.ndarray | None:
    """The metric of each simulated label row of ``y`` (draws × rows) for a binary model, or ``None``."""
    if proba.shape[1] != 2 or name not in ("roc_auc", "accuracy", "f1", "balanced_accuracy"):
        return None
    predicted = labels_at(np.array([0.0, 1.0]), proba, threshold)
    n_pos = y.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "roc_auc":
            ranks = stats.rankdata(proba[:, 1])
            return np.asarray((y @ ranks - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
        tp = y @ predicted
        tn = (1 - y) @ (1 - predicted)
        if name == "accuracy":
            return np.asarray((tp + tn) / y.shape[1])
        if name == "balanced_accuracy":
            return np.asarray((tp / n_pos + tn / n_neg) / 2)
        fp, fn = predicted.sum() - tp, n_pos - tp
        return np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)


def estimate_metric(
    proba: np.ndarray, metric: str | Metric, *, calibrator: Calibrator | None = None, n_simulations: int = 200,
    random_state: int = 0, threshold: float | None = None,
) -> MetricEstimate:
    """The metric a classifier should reach on a window, from its probabilities alone.

    Parameters
    ----------
    proba : ndarray of shape (n_rows, n_classes)
        The model's class probabilities on the window's rows, as it predicts
        them (its predictions and rankings are scored).
    metric : str or Metric
        A classification metric (``roc_auc``, ``accuracy``, ``f1``, ``log_loss``, ...).
    calibrator : Calibrator, optional
        Maps ``proba`` to calibrated probabilities, from which the labels are
        drawn (`fit_calibrator` on the reference); without it ``proba`` is
        taken as calibrated.
    n_simulations : int
        Label draws behind the estimate and its interval.
    random_state : int
        Seed: the same probabilities give the same estimate.
    threshold : float, optional
        The binary model's decision threshold: label metrics (accuracy, F1, ...)
        score the labels it serves at it (default: the metric's own, else 0.5).

    Returns
    -------
    MetricEstimate

    Examples
    --------
    >>> p = np.column_stack([np.full(1000, 0.1), np.full(1000, 0.9)])
    >>> round(estimate_metric(p, "accuracy").value, 2)
    0.9
    """
    resolved = get_metric(metric) if isinstance(metric, str) else metric
    if threshold is not None:
        resolved = resolved.at(threshold)
    method = "expected from calibrated probabilities (CBPE)"
    if "regression" in resolved.tasks:
        raise InvalidParameterError(
            f"The label-free estimate needs a classifier's probabilities; {resolved.name!r} is a regression metric."
        )
    proba = np.asarray(proba, dtype=float)
    n = len(proba)
    if n == 0:
        return MetricEstimate(resolved.name, None, None, method, 0, resolved.greater_is_better)
    rng = np.random.default_rng(random_state)
    scores = proba[_sample(n, rng)]
    calibrated = calibrator(scores) if calibrator is not None else scores
    cumulative = np.cumsum(calibrated, axis=1)
    draws = np.minimum((rng.random((n_simulations, len(scores), 1)) > cumulative).sum(axis=2), scores.shape[1] - 1)
    fast = _vectorised(resolved.name, draws.astype(float), scores, resolved.threshold)
    values = fast if fast is not None else np.array([resolved(y, scores) for y in draws])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return MetricEstimate(resolved.name, None, None, method, n, resolved.greater_is_better)
    return MetricEstimate(resolved.name, float(np.median(values)),
                          (float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))),
                          method, n, resolved.greater_is_better)


def measure_metric(
    y: np.ndarray, prediction: np.ndarray, metric: str | Metric, *, n_boot: int = 200, random_state: int = 0,
    threshold: float | None = None,
) -> MetricEstimate:
    """The real metric on labelled rows with its 95% bootstrap interval.

    ``y`` is encoded as the metric expects (class indices for classifiers) and
    ``prediction`` is what it scores (probabilities for classifiers, values for
    regression).

    Examples
    --------
    >>> y = np.array([0, 1] * 50)
    >>> est = measure_metric(y, np.eye(2)[y], "accuracy", n_boot=50)
    >>> est.value, est.interval
    (1.0, (1.0, 1.0))
    """
    resolved = get_metric(metric) if isinstance(metric, str) else metric
    if threshold is not None:  # the labels the model served
        resolved = resolved.at(threshold)
    y = np.asarray(y)
    prediction = np.asarray(prediction)
    if len(y) == 0:
        return MetricEstimate(resolved.name, None, None, "measured on labelled rows", 0, resolved.greater_is_better)
    value = resolved(y, prediction)
    low, high = bootstrap_ci(y, prediction, resolved, n_boot=n_boot, random_state=random_state)
    interval = (low, high) if np.isfinite(low) and np.isfinite(high) else None
    return MetricEstimate(resolved.name, value, interval, "measured on labelled rows (95% bootstrap interval)",
                          len(y), resolved.greater_is_better)
