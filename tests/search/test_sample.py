"""A timed search on a table too large for its budget runs on a sample sized from a measured cost.

Every cost here is read on a fake clock: the probe fit "takes" what the clock
is told, everything else nothing, so no verdict depends on the machine. The
thresholds are lowered so a table of thousands of rows stands for millions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpilot.exceptions import BudgetWarning
from mlpilot.features import column_roles
from mlpilot.search import SearchConfig, _sample, fit_final, run_search
from mlpilot.search._ensemble import caruana_weights
from mlpilot.search._sample import draw_rows, sample_size
from mlpilot.tasks import get_metric
from mlpilot.tune import Budget
from mlpilot.tune._budget import SAMPLE_SHARE
from tests.search.test_budget_decisions import ProgressClock

N_ROWS = 8000
PROBE = 80
LEAST = 40


class ProbeClock(ProgressClock):
    """A `ProgressClock` on which the cost probe's fits take ``probe_seconds`` (its full one) and a quarter of it.

    The probe reads the clock three times: before its small fit (a quarter of
    the rows), between the two and after the full one, so its time grows in
    proportion to the rows (exponent 1).
    """

    def __init__(self, probe_seconds: float, at: dict[str, float] | None = None, *, step: float = 1.0,
                 small_seconds: float | None = None) -> None:
        super().__init__({"cost probe": 0.0, **(at or {})}, step=step)
        self.jumps = [0.0, probe_seconds / 4 if small_seconds is None else small_seconds, probe_seconds]
        self.readings = -1

    def __call__(self) -> float:
        if self.readings >= 0:
            self.now += self.jumps[self.readings]
            self.readings = self.readings + 1 if self.readings < 2 else -1
        return self.now

    def on_progress(self, event: dict[str, Any]) -> None:
        super().on_progress(event)
        if event["current"] == "cost probe":
            self.readings = 0


@pytest.fixture
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sample, "SAMPLE_FROM_ROWS", 1000)
    monkeypatch.setattr(_sample, "SAMPLE_PROBE_ROWS", PROBE)
    monkeypatch.setattr(_sample, "SAMPLE_LEAST_ROWS", LEAST)
    import mlpilot.search._search as search_module

    monkeypatch.setattr(search_module, "SAMPLE_LEAST_ROWS", LEAST)


def _big_table(n: int = N_ROWS) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", "z"], n)})
    signal = frame["a"] + (frame["c"] == "x") * 1.5 + rng.normal(scale=0.3, size=n)
    return frame, (signal > np.quantile(signal, 0.7)).astype(int).to_numpy()  # 30% positives


def _run(clock: ProbeClock | None, budget: float | None, **config: Any) -> Any:
    frame, y = _big_table()
    return run_search(
        frame, y, task="binary", metric=get_metric("roc_auc"), roles=column_roles(frame), n_classes=2, holdout=None,
        on_progress=None if clock is None else clock.on_progress,
        config=SearchConfig(budget=Budget(budget, 0.0, clock or (lambda: 0.0)), n_folds=3, refit_share=1.0, **config),
    ), frame, y


def _ten_times(budget: float) -> float:
    # probe seconds that make one cross-validation of every row and its refit take 10x the budget:
    # 3 folds on 2/3 of the rows and a refit on all of them is 3 fits of every row
    return 10 * budget / (3 * N_ROWS) * PROBE


def test_a_cross_validation_of_ten_times_the_budget_searches_a_recorded_sample(small_thresholds: None) -> None:
    clock = ProbeClock(_ten_times(20.0))
    result, _, y = _run(clock, 20.0, families=("linear", "lightgbm"))
    sample = result.sample
    assert sample is not None and sample.n_rows == N_ROWS and sample.family == "linear" and sample.exponent == 1.0
    assert sample.expected_all == pytest.approx(200.0)
    # SAMPLE_SHARE of what is left after the probe and the stack's reserve, at 3 fits a row
    left = 20.0 - 1.25 * _ten_times(20.0) - 0.05 * 20.0
    assert sample.allowed == pytest.approx(SAMPLE_SHARE * left)
    assert len(sample.rows) == sample_size(sample.seconds_per_row, sample.allowed, N_ROWS, n_folds=3,
                                           refit_share=1.0, probe_rows=PROBE) == 72
    assert len(result.ensemble_oof) == 72 and sum(len(va) for _, va in result.folds) == 72
    assert y[sample.rows].mean() == pytest.approx(y.mean(), abs=0.01)  # stratified
    assert result.notes[0].startswith("the search ran on a sample of 72 of the 8,000 development rows "
                                      "(stratified by class, seed 0)")
    assert sample.to_dict()["rows"] == 72 and sample.to_dict()["drawn"] == "stratified by class"
    assert np.array_equal(result.rows(N_ROWS), sample.rows)


def test_a_cross_validation_that_fits_uses_every_row(small_thresholds: None) -> None:
    clock = ProbeClock(_ten_times(20.0) / 20)  # a cross-validation of every row takes 10 s
    result, _, _ = _run(clock, 200.0, families=("linear",))  # which fits 10% of 200 s
    assert result.sample is None and len(result.ensemble_oof) == N_ROWS


def test_the_fallback_runs_on_the_sample(small_thresholds: None) -> None:
    # the budget is gone as lightgbm, the first configuration, is reached: only the fallback is trained
    clock = ProbeClock(_ten_times(20.0), at={"lightgbm": 20.0})
    with pytest.warns(BudgetWarning, match="trained the fastest sensible one"):
        result, _, _ = _run(clock, 20.0, families=("linear", "lightgbm"), stacking="off")
    fallback = result.candidate("linear_fallback")
    assert fallback.usable and result.sample is not None
    assert len(fallback.oof) == len(result.sample.rows) < N_ROWS  # bounded: on the rows sized for its cost


def test_the_refit_runs_on_the_largest_sample_that_fits_and_says_why(small_thresholds: None) -> None:
    result, frame, y = _run(None, None, families=("linear",), n_trials=0)  # a search on every row
    linear = result.candidate("linear")
    linear.work_seconds, linear.workers = 3.0, 1  # 1 s a fold on 2/3 of the rows: a refit of every row takes 1.5 s
    result.preprocess_refit = {}
    _members, _names, _weights, notes = fit_final(
        frame, y, result, task="binary", roles=column_roles(frame), n_classes=2, random_state=0, n_jobs=1,
        deterministic=False, budget=Budget(10.0, 0.0, lambda: 9.0),  # 1 s left
    )
    [note] = [n for n in notes if n.startswith("the members were refit on a sample")]
    # its sample may be expected to take half the time left
    assert note.startswith("the members were refit on a sample of 2,600 of the 8,000 rows (stratified by class, seed 0)")
    assert "expected to take 1.50s" in note and "50% of the 1.00s left (0.50s)" in note


def test_trial_count_mode_never_samples_nor_reads_the_clock(small_thresholds: None) -> None:
    def clock() -> float:
        raise AssertionError("the clock was read in deterministic mode")

    frame, y = _big_table()
    result = run_search(frame, y, task="binary", metric=get_metric("roc_auc"), roles=column_roles(frame), n_classes=2,
                        holdout=None, config=SearchConfig(budget=Budget(None, 0.0, clock), families=("linear",),
                                                          n_trials=0, n_folds=3))
    assert result.sample is None and len(result.ensemble_oof) == N_ROWS
    _m, _n, _w, notes = fit_final(frame, y, result, task="binary", roles=column_roles(frame), n_classes=2,
                                  random_state=0, n_jobs=1, deterministic=True)
    assert not any("sample" in n for n in notes)


def test_draw_rows_is_seeded_and_keeps_the_classes() -> None:
    y = np.array([0] * 900 + [1] * 100)
    assert np.array_equal(draw_rows(y, "binary", 50, 3), draw_rows(y, "binary", 50, 3))
    assert int((y[draw_rows(y, "binary", 50, 3)] == 1).sum()) == 5
    assert len(draw_rows(np.arange(10.0), "regression", 20, 0)) == 10  # all rows when the sample is not smaller


def test_one_model_is_not_blended() -> None:
    calls = []

    class Counting:
        def score(self, y: np.ndarray, p: np.ndarray) -> float:
            calls.append(1)
            return 0.0

    assert caruana_weights([np.zeros(3)], np.zeros(3), Counting()).tolist() == [1.0]  # type: ignore[arg-type]
    assert not calls


@pytest.mark.parametrize(("small_share", "exponent"), [(1 / 4, 1.0), (1 / 2, 1.0), (4 ** -1.25, 1.25), (1 / 64, 1.5)])
def test_the_probe_measures_how_its_time_grows_with_the_rows(small_thresholds: None, small_share: float,
                                                             exponent: float) -> None:
    # a quarter of the rows taking a quarter of the time grows in proportion; faster growth, within bounds
    probe = _ten_times(20.0)
    clock = ProbeClock(probe, small_seconds=probe * small_share)
    result, _, _ = _run(clock, 20.0, families=("linear",), stacking="off")
    assert result.sample is not None and result.sample.exponent == pytest.approx(exponent)
    assert result.sample.to_dict()["probe"]["exponent"] == pytest.approx(exponent, abs=1e-3)


def test_the_refit_sample_grows_the_cost_as_the_probe_measured(small_thresholds: None) -> None:
    frame, y = _big_table()
    half = N_ROWS // 2
    result = run_search(frame.iloc[:half], y[:half], task="binary", metric=get_metric("roc_auc"),
                        roles=column_roles(frame), n_classes=2, holdout=None,
                        config=SearchConfig(families=("linear",), n_trials=0, n_folds=3))
    linear = result.candidate("linear")
    linear.work_seconds, linear.workers = 3.0, 1  # 1 s a fold: 3 s for every row in proportion to the rows
    result.preprocess_refit = {}
    result.sample = _sample.SearchSample(  # as if the search's probe had measured a linear model growing as rows^1.5
        rows=np.arange(half), n_rows=half, family="linear", probe_rows=PROBE, seconds_per_row=1e-3, exponent=1.5,
        expected_all=1.0, allowed=1.0, drawn="stratified by class", random_state=0)
    _m, _n, _w, notes = fit_final(frame, y, result, task="binary", roles=column_roles(frame), n_classes=2,
                                  random_state=0, n_jobs=1, deterministic=False, budget=Budget(10.0, 0.0, lambda: 9.0))
    [note] = [n for n in notes if n.startswith("the members were refit on a sample")]
    # 3 s * 2 ** 0.5 = 4.24 s for every row; 0.5 s fit 8,000 * (0.5 / 4.24) ** (1 / 1.5) = 1,922 rows
    assert note.startswith("the members were refit on a sample of 1,900 of the 8,000 rows")
    assert "expected to take 4.24s" in note and "grown as rows^1.50" in note


def test_a_rare_class_keeps_rows_for_the_folds() -> None:
    y = np.array([0] * 9990 + [1] * 8 + [2] * 2)
    rows = draw_rows(y, "multiclass", 100, 0)
    assert np.bincount(y[rows]).tolist()[1:] == [5, 2]  # 5 of the 8, both of the 2 (stratified alone: 0 and 0)
