"""The budget logic, driven by a fake clock: no test here depends on how fast the machine is."""

from __future__ import annotations

import math

import pytest

import mlpilot.tune as tune_pkg
from mlpilot.tune import Budget, bootstrap_rounds, register_seconds, slack
from mlpilot.tune._budget import INTERRUPTIBLE_LEAST, UNINTERRUPTIBLE_SHARE


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def test_exports() -> None:
    assert sorted(tune_pkg.__all__) == sorted(n for n in dir(tune_pkg) if not n.startswith("_") and n != "annotations")


def test_left_counts_what_was_spent_before_and_what_each_phase_keeps_back() -> None:
    clock = FakeClock()
    budget = Budget.start_now(60.0, clock=clock, spent=5.0)  # reading the data took 5 s
    assert budget.left() == 55.0 and budget.elapsed() == 5.0
    clock.now += 15.0
    search = budget.until(10.0)
    refit = search.until(2.0)
    assert (budget.left(), search.left(), refit.left()) == (40.0, 30.0, 28.0)
    assert search.deadline == budget.deadline - 10.0 and refit.reserve == 12.0
    clock.now += 100.0
    assert budget.left() == -60.0 and budget.cap(0.5) == 0.0
    assert budget.until(-3.0).reserve == 0.0  # a negative reserve gives no extra time


def test_without_a_clock_nothing_is_cut_and_the_clock_is_never_read() -> None:
    clock = FakeClock()
    budget = Budget.start_now(None, clock=clock).until(30.0)
    assert not budget.timed and budget.left() == math.inf and budget.deadline == math.inf
    assert budget.fits(1e9) and budget.refusal(1e9, interruptible=False, keep=5.0) is None
    assert budget.elapsed() == 0.0 and budget.cap(0.5) == math.inf
    assert clock.reads == 0


@pytest.mark.parametrize(
    ("expected", "interruptible", "allowed"),
    [(0.0, False, True), (4.0, False, True), (4.01, False, False), (7.9, True, True), (15.9, True, True), (16.01, True, False),
     (None, False, True)],
)
def test_a_fit_starts_only_when_its_expected_time_fits_what_is_left(
    expected: float | None, interruptible: bool, allowed: bool
) -> None:
    budget = Budget(20.0, 0.0, FakeClock(10.0))  # 10 s left
    refusal = budget.refusal(expected, interruptible=interruptible, keep=2.0)
    assert (refusal is None) is allowed
    if expected is not None:
        # a fit that stops itself may start while half its expected time is left
        share = 1.0 / INTERRUPTIBLE_LEAST if interruptible else UNINTERRUPTIBLE_SHARE
        assert budget.fits(expected, share=share, keep=2.0) is allowed


def test_a_refusal_states_the_rule_and_numbers_it_was_decided_on() -> None:
    # the self-contradicting note: "estimated 0.1s exceeds the 0.3s left"
    budget = Budget(10.0, 0.0, FakeClock(9.0))  # 1.0 s left, 0.74 s of it kept back
    note = budget.refusal(0.14, interruptible=False, keep=0.74, kept_for="the refit and ensemble selection")
    assert note is not None
    assert "expected 0.14s" in note and "cannot be interrupted" in note
    assert "50% of the 0.26s left (0.13s)" in note and "0.74s are kept for the refit" in note
    spent = Budget(10.0, 0.0, FakeClock(9.5)).refusal(0.01, interruptible=True, keep=0.6, kept_for="the refit")
    assert spent == "time budget spent: 0.50s left, all kept for the refit (0.60s)"


def test_reserves_grow_with_the_budget_and_the_table() -> None:
    assert slack(1.0) == pytest.approx(0.3) and slack(600.0) == pytest.approx(18.0)
    assert register_seconds(10_000_000) > register_seconds(1000) > 0


def test_bootstrap_rounds_shrink_to_the_time_left_but_not_below_the_floor() -> None:
    assert bootstrap_rounds(100.0, 0.001, n_candidates=10) == (1000, 100)
    champion, others = bootstrap_rounds(3.0, 0.001, n_candidates=10)  # full needs 6 s
    assert (champion, others) == (500, 50)
    assert (5 * champion + 10 * others) * 0.001 <= 3.0 + 1e-9
    assert bootstrap_rounds(0.0, 0.01, n_candidates=30) == (50, 50)
    assert bootstrap_rounds(5.0, 0.0, n_candidates=3) == (1000, 100)  # no measured cost: nothing to cut
    # no time left: the least, also when a call measured nothing (a fake clock that stood still)
    assert bootstrap_rounds(-5.0, 0.0, n_candidates=3) == (50, 50)
