"""The rows a timed search runs on: all of them, or a seeded sample when the measured cost says so.

On a large table one cross-validation of even the cheapest sensible family
may not fit the search's time (800k rows: a linear model's three folds took
143 s of a 60 s train). Before the folds are drawn, a probe fits that family
(the one the search falls back to) on `SAMPLE_PROBE_ROWS` seeded rows, on the
budget's clock; when its cost per row, projected to a cross-validation of
every row and its refit, exceeds `SAMPLE_SHARE` of the search's time left,
the search runs on a sample sized to fit it: stratified by class
(classification) or uniform (regression), drawn with the search's seed. The
decision is a `SearchSample`, noted with its numbers and shown in the card.
`refit_rows` makes the same kind of decision for the final refit.

Without a clock (deterministic mode) nothing is probed or sampled.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.features import TabularPreprocessor
from mlpilot.search._candidates import text_roles
from mlpilot.search._learners import FAMILIES, Learner
from mlpilot.tune import Budget
from mlpilot.tune._budget import (
    SAMPLE_FROM_ROWS,
    SAMPLE_LEAST_ROWS,
    SAMPLE_PROBE_ROWS,
    SAMPLE_SHARE,
)
from mlpilot.tune._executor import quiet

logger = logging.getLogger(__name__)

#: One probe row in this many is fitted first, untimed, and one in this many is the small timed probe
#: (see `choose_sample`); the growth exponent measured between the two is kept within these bounds
#: (1: time in proportion to rows; a timing on a busy machine must not project a blow-up).
PROBE_WARM_STEP = 10
PROBE_SMALL_SHARE = 4
PROBE_EXPONENT = (1.0, 1.5)
#: Rows of each class a sample keeps at least (the most folds a search uses).
SAMPLE_CLASS_LEAST = 5

__all__ = ["SearchSample", "choose_sample", "cv_seconds", "draw_rows", "drawn_how", "fallback_family", "fit_seconds", "round_rows",
           "sample_size"]


@dataclass(frozen=True)
class SearchSample:
    """The sample of the development rows a timed search ran on, and the evidence it was sized from."""

    rows: np.ndarray  # sorted positions among the development rows
    n_rows: int  # development rows it was drawn from
    family: str  # the family whose probe fit measured the cost
    probe_rows: int
    seconds_per_row: float  # the probe's fit (preprocessing included), on the budget's clock
    exponent: float  # how its time grows with rows (time ~ rows ** exponent), from two probe fits
    expected_all: float  # projected seconds of one cross-validation of every row and its refit
    allowed: float  # seconds that cross-validation may take (`SAMPLE_SHARE` of the search's time left)
    drawn: str  # how: "stratified by class" or "uniform"
    random_state: int

    def describe(self) -> str:
        """The decision as a note, with its numbers."""
        return (
            f"the search ran on a sample of {len(self.rows):,} of the {self.n_rows:,} development rows ({self.drawn}, "
            f"seed {self.random_state}): a probe fit of {self.family} on {self.probe_rows:,} rows took "
            f"{self.seconds_per_row * 1e6:.1f} µs a row (time growing as rows^{self.exponent:.2f}), so one "
            f"cross-validation of every row and its refit was "
            f"expected to take {self.expected_all:.2f}s, more than the {SAMPLE_SHARE:.0%} of the search's time it "
            f"may take ({self.allowed:.2f}s); the sample is sized to fit it"
        )

    def to_dict(self) -> dict[str, Any]:
        """The card's record of the sample (the leaderboard's data section shows it)."""
        return {
            "rows": len(self.rows), "of_rows": self.n_rows, "drawn": self.drawn, "random_state": self.random_state,
            "probe": {"family": self.family, "rows": self.probe_rows,
                      "seconds_per_row": float(f"{self.seconds_per_row:.4g}"), "exponent": round(self.exponent, 3)},
            "expected_seconds_all_rows": round(self.expected_all, 3), "allowed_seconds": round(self.allowed, 3),
        }


def drawn_how(task: str) -> str:
    """How `draw_rows` draws a sample for ``task``, in words."""
    return "stratified by class" if task != "regression" else "uniform"


def draw_rows(y: np.ndarray, task: str, size: int, random_state: int) -> np.ndarray:
    """``size`` sorted row positions of ``y``, seeded: stratified by class for classification, uniform otherwise.

    A class keeps at least `SAMPLE_CLASS_LEAST` rows (all of them when it has
    fewer), so the sample may be a few rows larger than ``size``.

    Examples
    --------
    >>> rows = draw_rows(np.array([0] * 80 + [1] * 20), "binary", 50, 0)
    >>> len(rows), int((rows >= 80).sum())
    (50, 10)
    >>> rows = draw_rows(np.array([0] * 995 + [1] * 5), "binary", 100, 0)  # a rare class keeps 5 rows
    >>> len(rows), int((rows >= 995).sum())
    (104, 5)
    """
    n = len(y)
    if size >= n:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    if task == "regression":
        return np.sort(rng.choice(n, size=size, replace=False))
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(y, return_counts=True)
    if counts.min() >= 2 and size >= len(classes):
        rows, _ = train_test_split(np.arange(n), train_size=size, random_state=random_state, stratify=y)
    else:
        rows = rng.choice(n, size=size, replace=False)
    # a rare class keeps rows enough for stratified folds (else it could vanish from the search)
    extra = []
    for c, count in zip(classes, counts, strict=True):
        have = int(np.count_nonzero(y[rows] == c))
        need = min(int(count), SAMPLE_CLASS_LEAST) - have
        if need > 0:
            others = np.setdiff1d(np.flatnonzero(y == c), rows)
            extra.append(rng.choice(others, size=need, replace=False))
    return np.sort(np.concatenate([rows, *extra]))


def fit_seconds(rows: float, *, seconds_per_row: float, probe_rows: int, exponent: float) -> float:
    """Expected seconds of one fit on ``rows``: the probe's time, grown as ``(rows / probe_rows) ** exponent``."""
    return seconds_per_row * probe_rows * (max(rows, 0.0) / probe_rows) ** exponent


def cv_seconds(rows: float, *, seconds_per_row: float, probe_rows: int, exponent: float, n_folds: int,
               refit_share: float) -> float:
    """Expected seconds of a cross-validation on ``rows`` (``n_folds`` fits on ``(k-1)/k`` of them) and its refit.

    Examples
    --------
    >>> round(cv_seconds(8000, seconds_per_row=1e-4, probe_rows=100, exponent=1.0, n_folds=3, refit_share=1.0), 6)
    2.4
    """
    def one(fit_rows: float) -> float:
        return fit_seconds(fit_rows, seconds_per_row=seconds_per_row, probe_rows=probe_rows, exponent=exponent)

    return n_folds * one(rows * (n_folds - 1) / n_folds) + one(rows * refit_share)


def sample_size(seconds_per_row: float, allowed: float, n_rows: int, *, n_folds: int, refit_share: float,
                probe_rows: int = 1, exponent: float = 1.0) -> int:
    """The most rows whose cross-validation and refit (`cv_seconds`) are expected to take ``allowed``.

    Rounded down to two significant digits (small differences in a measured
    time give the same sample), never under `SAMPLE_LEAST_ROWS` nor above ``n_rows``.

    Examples
    --------
    >>> sample_size(1e-4, 10.0, 800_000, n_folds=3, refit_share=1.25)
    30000
    >>> sample_size(1e-4, 10.0, 800_000, n_folds=3, refit_share=1.25, probe_rows=5000, exponent=1.2)
    23000
    >>> sample_size(1e-6, 10.0, 800_000, n_folds=3, refit_share=1.25)
    800000
    """
    def cost(rows: float) -> float:
        return cv_seconds(rows, seconds_per_row=seconds_per_row, probe_rows=probe_rows, exponent=exponent,
                          n_folds=n_folds, refit_share=refit_share)

    if seconds_per_row <= 0 or cost(n_rows) <= allowed:
        return n_rows
    low, high = 0.0, float(n_rows)  # the cost grows with the rows: bisect for the most that fit
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cost(mid) <= allowed else (low, mid)
    return round_rows(low, n_rows)


def round_rows(rows: float, n_rows: int) -> int:
    """``rows`` rounded down to two significant digits, within [`SAMPLE_LEAST_ROWS`, ``n_rows``].

    Examples
    --------
    >>> round_rows(163_456.7, 1_000_000), round_rows(10.0, 1_000_000), round_rows(2e6, 1_000_000)
    (160000, 5000, 1000000)
    """
    if rows >= n_rows:
        return n_rows
    whole = int(rows)
    digits = max(len(str(whole)) - 2, 0)
    return max(whole // 10**digits * 10**digits, min(SAMPLE_LEAST_ROWS, n_rows))


def fallback_family(allowed: Callable[[str], bool]) -> str:
    """The fastest sensible family the search trains when nothing else fits (linear, else a boosted one)."""
    return "linear" if allowed("linear") else next(
        (f for f in ("lightgbm", "hist_gradient_boosting") if allowed(f)), "lightgbm")


def fallback_params(family: str) -> dict[str, Any]:
    return {"n_estimators": 100, "learning_rate": 0.1} if FAMILIES[family].boosted else {}


def choose_sample(X: pd.DataFrame, y: np.ndarray, *, task: str, roles: dict[str, str], n_classes: int,
                  n_folds: int, family: str, budget: Budget, refit_share: float, random_state: int, threads: int,
                  keep: float = 0.0, sample_weight: np.ndarray | None = None,
                  on_probe: Callable[[], None] | None = None) -> SearchSample | None:
    """The sample a timed search runs on (see the module docstring), or None for every row.

    ``family`` is probed (``on_probe`` is called just before, for progress),
    on ``budget``'s clock; ``keep`` seconds of the search's time are not counted as its own.
    """
    n = len(y)
    if not budget.timed or n < SAMPLE_FROM_ROWS:
        return None
    probe = draw_rows(y, task, SAMPLE_PROBE_ROWS, random_state)
    fam = FAMILIES[family]
    sub_roles = text_roles(roles) if fam.text_only else roles

    def fit(rows: np.ndarray) -> None:
        pre = TabularPreprocessor(encoding=fam.encoding, roles=sub_roles, random_state=random_state)
        Xt = pre.fit_transform(X.iloc[rows], y[rows])
        Learner(family=family, task=task, params=fallback_params(family),
                categorical_indices=tuple(pre.categorical_indices_), n_classes=n_classes,
                random_state=random_state, n_jobs=threads, deterministic=False,
                ).fit(Xt, y[rows], sample_weight=None if sample_weight is None else sample_weight[rows])

    try:
        with quiet(threads):
            # a first fit on a few rows, not timed, pays what is paid once (imports, first calls), so the timed
            # ones measure what grows with the rows; two sizes tell how fast it grows (a linear model's solver
            # takes more iterations on more rows: 23 µs a row on 5,000 flights rows, 37 µs on 60,000)
            fit(probe[draw_rows(y[probe], task, len(probe) // PROBE_WARM_STEP, random_state)])
            if on_probe is not None:
                on_probe()
            small = probe[draw_rows(y[probe], task, len(probe) // PROBE_SMALL_SHARE, random_state)]
            t0 = budget.clock()
            fit(small)
            t1 = budget.clock()
            fit(probe)
            seconds = budget.clock() - t1
            small_seconds = t1 - t0
    except Exception as exc:  # the search goes on, on every row, and its candidates are refused or capped as usual
        logger.warning("the cost probe of %s failed (%s): the search runs on every row", family, exc)
        return None
    per_row = max(seconds, 0.0) / len(probe)
    exponent = PROBE_EXPONENT[0]
    if small_seconds > 0 and seconds > small_seconds:
        exponent = math.log(seconds / small_seconds) / math.log(len(probe) / len(small))
    exponent = min(max(exponent, PROBE_EXPONENT[0]), PROBE_EXPONENT[1])
    expected_all = cv_seconds(n, seconds_per_row=per_row, probe_rows=len(probe), exponent=exponent, n_folds=n_folds,
                              refit_share=refit_share)
    allowed = budget.cap(SAMPLE_SHARE, keep=keep)
    if expected_all <= allowed:
        return None
    size = sample_size(per_row, allowed, n, n_folds=n_folds, refit_share=refit_share, probe_rows=len(probe),
                       exponent=exponent)
    if size >= n:
        return None
    rows = draw_rows(y, task, size, random_state)
    return SearchSample(rows=rows, n_rows=n, family=family, probe_rows=len(probe), seconds_per_row=per_row,
                        exponent=exponent, expected_all=expected_all, allowed=allowed,
                        drawn=drawn_how(task), random_state=random_state)
