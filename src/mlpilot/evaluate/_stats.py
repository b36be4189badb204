"""Confidence intervals and paired tests between candidates.

Pure functions over predictions and scores; no models and no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlpilot.tasks import Metric


def _fast_auc(y: np.ndarray, score: np.ndarray) -> float:
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _metric_value(metric: Metric, y: np.ndarray, pred: np.ndarray) -> float:
    if metric.name == "roc_auc" and pred.ndim == 2 and pred.shape[1] == 2:
        return _fast_auc(y, pred[:, 1])
    return metric(y, pred)


def bootstrap_ci(
    y: np.ndarray, pred: np.ndarray, metric: Metric, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric`` on ``(y, pred)``.

    Examples
    --------
    >>> from mlpilot.tasks import get_metric
    >>> y = np.arange(100.0)
    >>> lo, hi = bootstrap_ci(y, y + 1.0, get_metric("mae"), n_boot=50)
    >>> (round(lo, 6), round(hi, 6))
    (1.0, 1.0)
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        v = _metric_value(metric, y[idx], pred[idx])
        if np.isfinite(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of model A against model B (A minus B, greater is better)."""

    method: str
    difference: float
    p_value: float
    significant: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "difference": self.difference,
            "p_value": self.p_value,
            "significant": self.significant,
        }


def paired_bootstrap(
    y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, metric: Metric, *,
    n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
) -> PairedTest:
    """Two-sided paired bootstrap of the score difference A − B on the same rows."""
    rng = np.random.default_rng(seed)
    n = len(y)
    sign = 1.0 if metric.greater_is_better else -1.0
    observed = sign * (_metric_value(metric, y, pred_a) - _metric_value(metric, y, pred_b))
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        d = sign * (_metric_value(metric, y[idx], pred_a[idx]) - _metric_value(metric, y[idx], pred_b[idx]))
        if np.isfinite(d):
            diffs.append(d)
    arr = np.asarray(diffs)
    if arr.size == 0:
        return PairedTest("paired bootstrap (holdout)", observed, float("nan"), False)
    p = min(1.0, 2.0 * min(float(np.mean(arr <= 0)), float(np.mean(arr >= 0))))
    return PairedTest("paired bootstrap (holdout)", float(observed), p, p < alpha)


def one_sided_bootstrap(
    y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, metric: Metric, *,
    bound: float = 0.0, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
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
    rng = np.random.default_rng(seed)
    n = len(y)
    sign = 1.0 if metric.greater_is_better else -1.0
    observed = sign * (_metric_value(metric, y, pred_a) - _metric_value(metric, y, pred_b))
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        d = sign * (_metric_value(metric, y[idx], pred_a[idx]) - _metric_value(metric, y[idx], pred_b[idx]))
        if np.isfinite(d):
            diffs.append(d)
    arr = np.asarray(diffs)
    kind = "superiority" if bound >= 0 else f"non-inferiority within {-bound:g}"
    method = f"one-sided paired bootstrap ({kind})"
    if arr.size == 0:
        return PairedTest(method, float(observed), float("nan"), False), float("nan")
    p = float(np.mean(arr <= bound))
    return PairedTest(method, float(observed), p, p < alpha), float(np.quantile(arr, alpha))


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


_TEST_NAMES = {"cv": "the CV t-test", "holdout": "the holdout bootstrap"}


def paired_verdict(entry: Mapping[str, Any], *, alpha: float = 0.05) -> tuple[bool, str]:
    """One verdict from a comparison's paired tests (``entry["cv"]``, ``entry["holdout"]``).

    Every test that was run must agree: the champion is significantly better
    only when each test finds a significant difference in its favour (each
    test's difference is champion minus other, signed so that positive is
    better, also for lower-is-better metrics). When the tests disagree the
    verdict says so and counts as not significant.

    Returns
    -------
    significant : bool
        Whether the champion is significantly better.
    verdict : str
        The verdict in words, naming the test that disagrees.

    Examples
    --------
    >>> paired_verdict({"cv": {"difference": 0.0094, "p_value": 0.0016},
    ...                 "holdout": {"difference": 0.0039, "p_value": 0.322}})[1]
    'inconclusive at 5%: the CV t-test finds the champion better (p=0.0016) but the holdout bootstrap does not (p=0.322); not counted as significant'
    """
    level = f"{alpha:.0%}"
    runs = [(kind, entry[kind]) for kind in ("cv", "holdout") if kind in entry]
    if not runs:
        return False, "not tested"
    better = [(k, t) for k, t in runs if t["p_value"] < alpha and t["difference"] > 0]
    worse = [(k, t) for k, t in runs if t["p_value"] < alpha and t["difference"] < 0]
    both = " (both tests agree)" if len(runs) == 2 else f" ({_TEST_NAMES[runs[0][0]]}; the only test run)"
    if len(better) == len(runs):
        return True, f"significantly better at {level}{both}"
    if len(worse) == len(runs):
        return False, f"significantly worse at {level}{both}"
    if not better and not worse:
        return False, f"no significant difference at {level}{both}"
    found = better or worse
    kind, test = found[0]
    (other_kind, other_test), = [(k, t) for k, t in runs if k != kind]
    direction = "better" if test["difference"] > 0 else "worse"
    return False, (
        f"inconclusive at {level}: {_TEST_NAMES[kind]} finds the champion {direction} (p={test['p_value']:.2g}) "
        f"but {_TEST_NAMES[other_kind]} does not (p={other_test['p_value']:.3g}); not counted as significant"
    )


def describe_difference(test: Mapping[str, Any], *, against: str, metric: str | None = None,
                        greater_is_better: bool = True) -> str:
    """A test's difference in the metric's own units: "champion − lgbm: rmse −0.0094 (lower is better), p=0.0016"."""
    difference = float(test["difference"])
    if metric is None:
        return f"{test['method']}: Δ={difference:+.4f} (positive: the champion is better), p={test['p_value']:.3g}"
    raw = difference if greater_is_better else -difference
    direction = "higher" if greater_is_better else "lower"
    return f"{test['method']}: champion − {against} = {raw:+.4f} {metric} ({direction} is better), p={test['p_value']:.3g}"
