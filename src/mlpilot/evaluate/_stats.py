"""Verdicts over paired tests, and their wording; the tests themselves live in `mlpilot.tune._stats`.

Pure functions over predictions and scores; no models and no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpilot.tune._stats import (
    PairedTest,
    bootstrap_ci,
    corrected_ttest,
    metric_value,
    one_sided_bootstrap,
    paired_bootstrap,
    paired_test,
)

__all__ = [
    "PairedTest",
    "bootstrap_ci",
    "corrected_ttest",
    "describe_difference",
    "metric_value",
    "one_sided_bootstrap",
    "paired_bootstrap",
    "paired_test",
    "paired_verdict",
]

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
