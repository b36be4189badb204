"""Per-row statistics: bootstrap intervals and paired tests, shared by every stage that compares.

Pure functions over per-row values (losses, per-user NDCG), per-row
predictions with a metric, or per-fold scores; no models and no I/O. The
tabular evaluation (`mlpilot.evaluate`), the recommenders' evaluation and
selection, and the promotion policy all take their intervals and tests from
here, so one comparison has one rule wherever it is made.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlpilot.tasks import Metric


def _fast_auc(y: np.ndarray, score: np.ndarray) -> float:
    from scipy import stats

    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _weighted_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> float:
    """ROC AUC with row weights: the weighted share of (positive, negative) pairs ordered right, ties half."""
    values, group = np.unique(score, return_inverse=True)
    pos = np.bincount(group, weights=np.where(y == 1, weights, 0.0), minlength=len(values))
    neg = np.bincount(group, weights=np.where(y == 1, 0.0, weights), minlength=len(values))
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    below = np.cumsum(neg) - neg  # negative weight scored strictly lower than each group
    return float(np.sum(pos * (below + 0.5 * neg)) / (total_pos * total_neg))


def metric_value(metric: Metric, y: np.ndarray, pred: np.ndarray) -> float:
    """``metric(y, pred)``, with a rank-based ROC AUC for two-column probabilities (bootstrap speed).

    Examples
    --------
    >>> from mlpilot.tasks import get_metric
    >>> y, p = np.array([0, 1, 0, 1]), np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    >>> w = np.array([1.0, 2.0, 3.0, 1.0])
    >>> metric_value(get_metric("roc_auc").weighted(w), y, p) == get_metric("roc_auc").weighted(w)(y, p)
    True
    """
    if metric.name == "roc_auc" and pred.ndim == 2 and pred.shape[1] == 2:
        if metric.sample_weight is not None:
            return _weighted_auc(y, pred[:, 1], metric.sample_weight)
        return _fast_auc(y, pred[:, 1])
    return metric(y, pred)


def _resolve_seed(random_state: int, seed: int | None, where: str) -> int:
    if seed is None:
        return random_state
    warnings.warn(f"The 'seed' parameter of {where} is deprecated and will be removed in 0.4; "
                  "use random_state= instead.", FutureWarning, stacklevel=3)
    return seed


#: Resamples a bootstrap always makes, even once its ``stop`` says the time is up: an interval or
#: test from fewer is noise (each resample is one metric call, a millisecond on most holdouts).
MIN_BOOT_ROUNDS = 20


def _stopped(stop: Callable[[], bool] | None, done: int) -> bool:
    return stop is not None and done >= MIN_BOOT_ROUNDS and stop()


def bootstrap_ci(
    y: np.ndarray, pred: np.ndarray | None = None, metric: Metric | None = None, *, n_boot: int = 1000,
    level: float = 0.95, random_state: int = 0, seed: int | None = None, stop: Callable[[], bool] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval over rows, of per-row values or of a metric of predictions.

    ``bootstrap_ci(values)``: the interval of the mean of per-row values
    (losses, per-user NDCG), resampled in vectorised blocks.
    ``bootstrap_ci(y, pred, metric)``: the interval of ``metric`` on
    ``(y, pred)``, rows resampled together (resamples where the metric is
    undefined, such as a one-class ROC AUC, are left out).

    Parameters
    ----------
    y : array
        Per-row values, or the true values when ``pred`` and ``metric`` are given.
    pred, metric : array and Metric, optional
        Per-row predictions and the metric computed on them.
    n_boot : int
        Resamples.
    level : float
        Coverage of the interval.
    random_state : int
        Seed of the resampling: the same inputs and seed give the same interval.
    seed : int, optional
        Deprecated former name of ``random_state`` (a FutureWarning; removed in 0.4).
    stop : callable, optional
        Asked before each resample after the first `MIN_BOOT_ROUNDS` (metric
        form): True ends the resampling there (the time budget is spent), and
        the interval is that of the resamples made.

    Examples
    --------
    >>> from mlpilot.tasks import get_metric
    >>> y = np.arange(100.0)
    >>> lo, hi = bootstrap_ci(y, y + 1.0, get_metric("mae"), n_boot=50)
    >>> (round(lo, 6), round(hi, 6))
    (1.0, 1.0)
    >>> bootstrap_ci(np.ones(10))
    (1.0, 1.0)
    """
    rng = np.random.default_rng(_resolve_seed(random_state, seed, "bootstrap_ci"))
    if pred is None or metric is None:
        if (pred is None) != (metric is None):
            raise TypeError("bootstrap_ci takes either per-row values alone, or y, pred and metric together.")
        return _mean_interval(np.asarray(y, dtype=np.float64), rng, n_boot, level)
    n = len(y)
    values = []
    for done in range(n_boot):
        if _stopped(stop, done):
            break
        idx = rng.integers(0, n, n)
        v = metric_value(metric.on(idx), y[idx], pred[idx])  # a weighted metric's weights go with their rows
        if np.isfinite(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def _mean_interval(values: np.ndarray, rng: np.random.Generator, n_boot: int, level: float) -> tuple[float, float]:
    if len(values) == 0:
        return (float("nan"), float("nan"))
    means = np.empty(n_boot)
    for start in range(0, n_boot, 100):  # blocks keep memory small for many rows
        stop = min(start + 100, n_boot)
        idx = rng.integers(0, len(values), size=(stop - start, len(values)))
        means[start:stop] = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of A against B on the same rows (A minus B; positive: A is better).

    Every test of the project returns one: `paired_bootstrap` (a metric of
    per-row predictions), `paired_test` (per-row values such as per-user NDCG,
    with the interval of the mean difference) and `corrected_ttest` (per-fold
    scores). `to_dict` is the tabular evaluation's record, `as_dict` the
    per-row record (metric, interval and rows) that recommenders report.
    """

    method: str
    difference: float
    p_value: float
    significant: bool
    #: The compared quantity's name (per-row tests).
    metric: str = ""
    #: Bootstrap interval of the mean difference (per-row tests; NaN otherwise).
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    #: Rows (users) compared (per-row tests).
    n_rows: int = 0

    @property
    def mean_difference(self) -> float:
        """The mean per-row difference (the same as `difference`)."""
        return self.difference

    @property
    def n_users(self) -> int:
        """Rows compared, by the name recommenders use (the same as `n_rows`)."""
        return self.n_rows

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "difference": self.difference,
            "p_value": self.p_value,
            "significant": self.significant,
        }

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "metric": self.metric,
            "mean_difference": self.difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "n_users": self.n_rows,
        }


def paired_bootstrap(
    y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, metric: Metric, *,
    n_boot: int = 1000, random_state: int = 0, alpha: float = 0.05, seed: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> PairedTest:
    """Two-sided paired bootstrap of the score difference A − B on the same rows.

    ``metric`` is signed so that a positive difference means A is better,
    also for lower-is-better metrics; ``seed`` is the deprecated former name
    of ``random_state``; ``stop`` ends the resampling early as in `bootstrap_ci`.
    """
    observed, arr = _resampled_differences(
        y, pred_a, pred_b, metric, n_boot, _resolve_seed(random_state, seed, "paired_bootstrap"), stop)
    if arr.size == 0:
        return PairedTest("paired bootstrap (holdout)", observed, float("nan"), False)
    p = min(1.0, 2.0 * min(float(np.mean(arr <= 0)), float(np.mean(arr >= 0))))
    return PairedTest("paired bootstrap (holdout)", float(observed), p, p < alpha)


def _resampled_differences(
    y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, metric: Metric, n_boot: int, random_state: int,
    stop: Callable[[], bool] | None = None,
) -> tuple[float, np.ndarray]:
    """The observed difference A − B (positive: A is better) and its finite bootstrap resamples."""
    rng = np.random.default_rng(random_state)
    n = len(y)
    sign = 1.0 if metric.greater_is_better else -1.0
    observed = sign * (metric_value(metric, y, pred_a) - metric_value(metric, y, pred_b))
    diffs = []
    for done in range(n_boot):
        if _stopped(stop, done):
            break
        idx = rng.integers(0, n, n)
        resampled = metric.on(idx)
        d = sign * (metric_value(resampled, y[idx], pred_a[idx]) - metric_value(resampled, y[idx], pred_b[idx]))
        if np.isfinite(d):
            diffs.append(d)
    return observed, np.asarray(diffs)


def one_sided_bootstrap(
    y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, metric: Metric, *,
    bound: float = 0.0, n_boot: int = 1000, random_state: int = 0, alpha: float = 0.05,
) -> tuple[PairedTest, float]:
    """One-sided paired bootstrap of A − B (signed so that positive is better) against ``bound``.

    The null hypothesis is ``difference <= bound``: ``bound=0`` tests
    superiority, ``bound=-margin`` non-inferiority within ``margin``. The
    p-value is the share of resampled differences at or below ``bound``.
    Returns the test and the one-sided lower confidence bound of the difference.

    Examples
    --------
    >>> from mlpilot.tasks import get_metric
    >>> y = np.arange(200.0)
    >>> test, lower = one_sided_bootstrap(y, y + 1.0, y + 2.0, get_metric("mae"), bound=0.0, n_boot=50)
    >>> test.significant, round(lower, 6)
    (True, 1.0)
    """
    observed, arr = _resampled_differences(y, pred_a, pred_b, metric, n_boot, random_state)
    kind = "superiority" if bound >= 0 else f"non-inferiority within {-bound:g}"
    method = f"one-sided paired bootstrap ({kind})"
    if arr.size == 0:
        return PairedTest(method, float(observed), float("nan"), False), float("nan")
    p = float(np.mean(arr <= bound))
    return PairedTest(method, float(observed), p, p < alpha), float(np.quantile(arr, alpha))


#: `paired_test`'s method name.
PERMUTATION = "sign-flip permutation (per row)"


def paired_test(
    a: np.ndarray, b: np.ndarray, *, metric: str = "ndcg", n_resamples: int = 2000, random_state: int = 0,
    alpha: float = 0.05,
) -> PairedTest:
    """Two-sided sign-flip permutation test of mean(a − b) = 0 on per-row values, with a bootstrap CI.

    ``a`` and ``b`` hold one value per row for each model, rows aligned (for
    example per-user NDCG over the same users; greater is better).

    Examples
    --------
    >>> t = paired_test(np.array([1.0, 1.0, 1.0, 1.0]), np.zeros(4))
    >>> t.mean_difference
    1.0
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(diff)
    observed = float(diff.mean()) if n else float("nan")
    if n == 0 or not np.any(diff):
        return PairedTest(PERMUTATION, observed if n else 0.0, 1.0, False, metric, 0.0, 0.0, n)
    rng = np.random.default_rng(random_state)
    extreme = 0
    for start in range(0, n_resamples, 200):
        stop = min(start + 200, n_resamples)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(stop - start, n))
        extreme += int((np.abs((signs * diff).mean(axis=1)) >= abs(observed) - 1e-12).sum())
    p_value = float((extreme + 1) / (n_resamples + 1))
    lo, hi = bootstrap_ci(diff, random_state=random_state)
    return PairedTest(PERMUTATION, observed, p_value, p_value < alpha, metric, lo, hi, n)


def corrected_ttest(
    scores_a: list[float], scores_b: list[float], *, n_train: int, n_test: int, alpha: float = 0.05
) -> PairedTest:
    """Nadeau & Bengio's corrected resampled t-test on per-fold scores (greater is better).

    The variance of the fold differences is inflated by ``n_test / n_train``
    to account for the overlap between training sets.

    Examples
    --------
    >>> corrected_ttest([0.9, 0.91, 0.92], [0.8, 0.82, 0.81], n_train=80, n_test=40).significant
    True
    """
    from scipy import stats

    d = np.asarray(scores_a, dtype=float) - np.asarray(scores_b, dtype=float)
    k = len(d)
    mean = float(d.mean())
    var = float(d.var(ddof=1)) if k > 1 else 0.0
    denom = np.sqrt((1 / k + n_test / n_train) * var) if var > 0 else 0.0
    if denom == 0:
        p = 0.0 if mean != 0 else 1.0
    else:
        t = mean / denom
        p = float(2 * stats.t.sf(abs(t), df=k - 1))
    return PairedTest("corrected resampled t-test (CV folds)", mean, p, p < alpha)
