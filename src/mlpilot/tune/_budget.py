"""The time budget: one value that every phase asks for its deadline.

A `Budget` is a deadline on an injectable clock. Phases take what is left
after the time kept back (the *reserve*) for the phases that come after them,
and a fit that cannot be interrupted is started only when its expected time
fits. Every fraction of the budget that a phase may spend lives here, so the
whole policy can be read (and tested with a fake clock) in one place.

Without a clock (``seconds=None``, deterministic mode) every question has the
same answer whatever the time: nothing is ever cut, and the clock is never read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]

# Share of the time left that one interruptible fit (boosting with a deadline callback) may
# take: it stops itself at its deadline, so only the rounds after it are at risk.
INTERRUPTIBLE_SHARE = 0.7
# ... and the first model's share (no model but the baseline yet): everything else depends on
# it: on a 100k-row table capped at 0.7 it scored RMSE 21.7, at 0.9 16.8 (but ended 5% over).
FIRST_MODEL_SHARE = 0.85
# An interruptible fit may start while this share of its expected time is left: it stops
# itself at its deadline, and time left unused at the end of the search is time lost.
INTERRUPTIBLE_LEAST = 0.5
# A boosted refit's time relative to one fold's fit on the same rows: it runs 1.1 times the
# rounds early stopping chose, without the 50 rounds after the best nor the validation set's
# evaluation each round and predictions (measured 0.55-0.65: a 100k-row LightGBM's folds
# 11.5 s each, its refit 9.3 s on 1.25 times the rows); a fold stopped at its deadline ran
# no rounds past the best, so more of its time is rounds the refit runs too.
BOOSTED_REFIT = 0.6
BOOSTED_REFIT_CUT = 0.7
# Share of the time left that a fit which cannot be interrupted (forests, linear models,
# neighbours) may be expected to take before it is started: its cost is only an estimate.
UNINTERRUPTIBLE_SHARE = 0.5
# A new tuner trial starts only while at least this share of the family's last fit time is left.
TRIAL_SHARE = 0.5
# Share of their expected refit time kept back for the runners-up (the best model's is kept in
# full): the refit drops a member whose refit does not fit, so this buys room, not a promise.
RUNNER_UP_REFIT_SHARE = 0.5
# Share of its expected refit time the best model may take even when less is left: a boosted
# refit stops at its deadline, and one stopped after a round or two would be no model at all.
REFIT_FLOOR_SHARE = 0.25
# Runners-up whose cross-validated score trails the best by more than this share of the best's
# gain over the dummy baseline get no time kept back for their refit.
RESERVE_GAP = 0.05
# Share of the time left (after what is kept for the refit and ensemble selection) that
# preprocessing the folds of one encoding, and its refit, may be expected to take before it
# starts: TF-IDF, SVD and the cross-fitted text models cannot be interrupted, and every model
# of that encoding needs them (a 30 s train spent 200 s there on a 4,000-row text table).
PREPROCESS_SHARE = 0.35
# Share of the time left (after the refit's reserve) that stacking may be expected to take: the
# nested fits of its level-2 layer (projected from the first fold's) and the refit of members the
# greedy ensemble does not have. Above it the greedy ensemble stands, with the decision recorded.
STACK_SHARE = 0.5
# Share of the whole budget the search keeps back, while candidates run, for trying a stack
# (without it the candidates take the time up to the refit's reserve and no stack ever fits).
STACK_RESERVE_SHARE = 0.05
# Share of the time left after the later phases' reserve that permutation importance may use.
IMPORTANCE_SHARE = 0.5
# Fixed costs (seconds) of the phases after the search: rendering plots and the HTML
# report, serialising and registering the artifact (the part that does not grow with data;
# measured 2-5 s and 1.5-3 s on a 20k-row table on a busy 2-core machine).
REPORT_SECONDS = 2.0
REGISTER_SECONDS = 1.5
# ... and their part proportional to the cells of the table (seconds per cell).
REGISTER_PER_CELL = 5e-7
# seconds to serialise (skops, deflate level 1) one byte of a fitted model's large arrays
# (`Family.state_bytes`): a 112 MB extra-trees forest took 2.8-3.0 s on the 2-core machine
SAVE_SECONDS_PER_BYTE = 2.5e-8
# Shares of the budget kept back for permutation importance (beyond the report's fixed
# cost) and, at most, for the full bootstrap of the evaluation.
REPORT_SHARE = 0.02
EVALUATE_SHARE = 0.05
# Share of a recommender search's budget for choosing the input weighting and tuning the
# families; the rest goes to scoring the best tuned families on fresh folds and blending
# (the refit of the chosen models comes on top, typically a tenth of the budget).
RECOMMEND_TUNING_SHARE = 0.55
# A fresh selection fold of the recommender search starts only while this many times its
# expected cost (the last fold's time) fits before the deadline: folds cannot be interrupted.
SELECTION_FOLD_MARGIN = 1.2
# Share of the search's time left that one cross-validation of the cheapest sensible family (the
# one the search falls back to), its refit included, may be expected to take on the search's rows:
# when a probe fit says all the development rows would take more, the search runs on a seeded
# sample sized to it (the rest of the time goes to the other candidates, tuning and the ensemble).
# On 800k flights rows a 60 s train cross-validated a linear model on all of them for 143 s; on the
# samples, the first LightGBM took about 3x the linear model's time a row and was cut at its deadline
# with a 25% share (sample of 93k rows; cv AUC 0.919, holdout 0.938) and 15% (190k; 0.926, 0.937).
SAMPLE_SHARE = 0.1
# Rows of the probe fit that measures the cheapest family's cost per row (a seeded sample), the
# development rows from which the probe runs, and the fewest rows a sampled search or refit uses.
SAMPLE_PROBE_ROWS = 5000
SAMPLE_FROM_ROWS = 50_000
SAMPLE_LEAST_ROWS = 5000
# Share of the refit's time left that a refit on a sample (when all the rows would not fit) may be
# expected to take: its cost is projected from the cross-validation's, on fewer rows and at another
# moment of a busy machine (at 80%, a 60 s train's LightGBM refit on 240k of 1e6 flights rows was
# stopped at its deadline after 13 of its 109 rounds; a linear model's time grows faster than its rows).
REFIT_SAMPLE_SHARE = 0.5
# Most of the budget kept back for the least evaluation worth having (200 bootstrap resamples for the
# champion): on a large holdout its metric calls would take the run (40 s of a 60 s budget on 200k
# holdout rows); the bootstrap scales its rounds down to what is left, and stops at its deadline.
EVALUATE_LEAST_SHARE = 0.15
# Slack kept back from the budget for what no estimate covers (imports, the garbage
# collector, scheduling on a busy machine): a share of the budget, at least a floor.
SLACK_SHARE = 0.03
SLACK_SECONDS = 0.3


@dataclass(frozen=True)
class Budget:
    """A deadline on ``clock``: how much time the phase holding it has left.

    Parameters
    ----------
    seconds : float or None
        The whole budget; None means no clock (deterministic mode): `left` is
        infinite and the clock is never read.
    start : float
        ``clock()`` value at which the budget began.
    clock : callable
        Seconds as a float (default `time.monotonic`); tests inject a fake.
    reserve : float
        Seconds kept back at the end for later phases (see `until`).

    Examples
    --------
    >>> now = [0.0]
    >>> budget = Budget.start_now(60, clock=lambda: now[0])
    >>> now[0] = 20.0
    >>> budget.left(), budget.until(10).left()
    (40.0, 30.0)
    >>> Budget.start_now(None).left()
    inf
    """

    seconds: float | None
    start: float = 0.0
    clock: Clock = field(default=time.monotonic, repr=False, compare=False)
    reserve: float = 0.0

    @classmethod
    def start_now(cls, seconds: float | None, *, clock: Clock = time.monotonic, spent: float = 0.0) -> Budget:
        """A budget of ``seconds`` that began ``spent`` seconds ago on ``clock``."""
        start = clock() - spent if seconds is not None else 0.0
        return cls(seconds, start, clock)

    @property
    def timed(self) -> bool:
        """Whether a clock bounds the work (False in deterministic mode)."""
        return self.seconds is not None

    @property
    def deadline(self) -> float:
        """``clock()`` value by which the holder must be done (inf without a clock)."""
        if self.seconds is None:
            return math.inf
        return self.start + self.seconds - self.reserve

    def now(self) -> float:
        return self.clock() if self.timed else 0.0

    def elapsed(self) -> float:
        """Seconds since the budget began (0 without a clock)."""
        return self.now() - self.start if self.timed else 0.0

    def left(self) -> float:
        """Seconds until `deadline` (negative once passed; inf without a clock)."""
        if self.seconds is None:
            return math.inf
        return self.deadline - self.clock()

    def until(self, reserve: float) -> Budget:
        """The budget of a phase that must leave ``reserve`` seconds for the phases after it."""
        return Budget(self.seconds, self.start, self.clock, self.reserve + max(0.0, reserve))

    def share(self, fraction: float) -> Budget:
        """The budget of a phase that may spend the first ``fraction`` of this one (same start and clock).

        Its deadline is ``fraction`` of the way from the start, never later
        than this budget's own deadline.

        Examples
        --------
        >>> Budget(100.0, 10.0, lambda: 30.0).share(0.55).left()
        35.0
        >>> Budget(None).share(0.5).timed
        False
        """
        if self.seconds is None:
            return self
        reserve = max(0.0, self.reserve - self.seconds * (1.0 - fraction))
        return Budget(self.seconds * fraction, self.start, self.clock, reserve)

    def fits(self, expected: float, *, share: float = 1.0, keep: float = 0.0) -> bool:
        """Whether work expected to take ``expected`` seconds fits ``share`` of what is left after ``keep``."""
        return expected <= (self.left() - keep) * share

    def refusal(self, expected: float | None, *, interruptible: bool, keep: float = 0.0,
                kept_for: str = "the later phases") -> str | None:
        """Why work expected to take ``expected`` seconds may not start now, or None when it may.

        Work that stops itself at a deadline may start while at least
        `INTERRUPTIBLE_LEAST` of its expected time is left after ``keep`` (it is
        capped at its deadline; idle time at the end is lost); work that cannot
        be interrupted only when expected to take `UNINTERRUPTIBLE_SHARE` of it,
        since its cost is an estimate. The reason names the numbers it was
        decided on.

        Examples
        --------
        >>> budget = Budget(10.0, 0.0, lambda: 8.0)
        >>> budget.refusal(0.5, interruptible=False, keep=1.0) is None
        True
        >>> print(budget.refusal(0.6, interruptible=False, keep=1.0, kept_for="the refit"))
        not started: expected 0.60s; it cannot be interrupted, so it may be expected to use 50% of the 1.00s left (0.50s) once 1.00s are kept for the refit
        """
        if not self.timed:
            return None
        left = self.left() - keep
        if left <= 0:
            return f"time budget spent: {max(self.left(), 0.0):.2f}s left, all kept for {kept_for} ({keep:.2f}s)"
        if expected is None:
            return None
        share = 1.0 / INTERRUPTIBLE_LEAST if interruptible else UNINTERRUPTIBLE_SHARE
        if expected <= left * share:
            return None
        what = ("stops itself at its deadline, so it may start while it is expected to need at most"
                if interruptible else "cannot be interrupted, so it may be expected to use")
        return (
            f"not started: expected {expected:.2f}s; it {what} {share:.0%} of the {left:.2f}s left "
            f"({left * share:.2f}s) once {keep:.2f}s are kept for {kept_for}"
        )

    def cap(self, share: float, *, keep: float = 0.0) -> float:
        """Seconds a piece of work may take: ``share`` of what is left after ``keep`` (never negative)."""
        return max(0.0, (self.left() - keep) * share)


def slack(seconds: float) -> float:
    """Seconds of the budget kept back for what no estimate covers."""
    return max(SLACK_SECONDS, SLACK_SHARE * seconds)


def register_seconds(n_cells: int) -> float:
    """Expected seconds to serialise, hash and record the model of a table of ``n_cells`` cells."""
    return REGISTER_SECONDS + REGISTER_PER_CELL * n_cells


def bootstrap_rounds(
    seconds: float, per_call: float, *, n_candidates: int, champion: int = 1000, others: int = 100,
    least: int = 50,
) -> tuple[int, int]:
    """Bootstrap rounds (champion, each other candidate) whose metric calls fit ``seconds``.

    The champion's interval and its two paired tests take about five metric
    calls a round, every other candidate's interval one. Both counts shrink
    in proportion, never below ``least``, when ``per_call`` (seconds of one
    metric call on the holdout) says the full counts would not fit; with no
    time left (``seconds <= 0``) both are ``least``.

    Examples
    --------
    >>> bootstrap_rounds(math.inf, 0.001, n_candidates=10)
    (1000, 100)
    >>> bootstrap_rounds(1.0, 0.001, n_candidates=10)
    (166, 50)
    >>> bootstrap_rounds(-2.0, 0.0, n_candidates=10)
    (50, 50)
    """
    if seconds <= 0:  # nothing left: the least worth having, whatever a call costs
        return min(least, champion), min(least, others)
    calls = 5 * champion + others * n_candidates
    if per_call <= 0 or calls * per_call <= seconds:
        return champion, others
    scale = max(seconds, 0.0) / (calls * per_call)
    return max(least, int(champion * scale)), max(least, int(others * scale))
