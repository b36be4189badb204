"""The evaluation's bootstraps stop at the evaluation's deadline (a fake clock), and the libraries of
registration and of the plots are loaded before the budget is planned, so their import is time already
spent, not an overrun."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpilot.automl import _run
from mlpilot.automl._engine import _DeadlineStop
from mlpilot.tasks import Metric, get_metric
from mlpilot.tune import Budget
from mlpilot.tune._stats import MIN_BOOT_ROUNDS, bootstrap_ci, paired_bootstrap


def _slow_metric(now: list[float], seconds: float) -> tuple[Metric, list[int]]:
    """Mean absolute error whose every call moves the fake clock on by ``seconds``, and its call count."""
    base = get_metric("mae")
    calls = [0]

    def func(y: np.ndarray, pred: np.ndarray, *weights: Any) -> float:
        calls[0] += 1
        now[0] += seconds
        return float(base.func(y, pred, *weights))

    return replace(base, func=func), calls


def test_a_bootstrap_stops_at_the_deadline_and_keeps_its_resamples() -> None:
    now = [0.0]
    budget = Budget.start_now(50.0, clock=lambda: now[0])
    metric, calls = _slow_metric(now, 1.0)
    y = np.arange(200.0)
    pred = y + np.random.default_rng(0).normal(size=200)
    stop = _DeadlineStop(budget)
    lo, hi = bootstrap_ci(y, pred, metric, n_boot=1000, stop=stop)
    assert calls[0] == 50 and stop.cut == 1  # one metric call a resample: 50 fit before the deadline
    assert lo < hi
    full = bootstrap_ci(y, pred, get_metric("mae"), n_boot=50)
    assert (lo, hi) == pytest.approx(full)  # the same seeded resamples, cut where the time ended


def test_past_the_deadline_each_test_still_makes_its_least_resamples() -> None:
    now = [0.0]
    budget = Budget.start_now(1.0, clock=lambda: now[0])
    metric, calls = _slow_metric(now, 1.0)
    y = np.arange(100.0)
    stop = _DeadlineStop(budget)
    test = paired_bootstrap(y, y + 1.0, y + 2.0, metric, n_boot=1000, stop=stop)
    # the observed difference (2 calls), then the least resamples (2 calls each)
    assert calls[0] == 2 + 2 * MIN_BOOT_ROUNDS and stop.cut == 1
    assert test.difference == pytest.approx(1.0) and test.significant
    unbounded = _DeadlineStop(Budget(None))
    bootstrap_ci(y, y + 1.0, metric, n_boot=60, stop=unbounded)
    assert unbounded.cut == 0 and calls[0] == 2 + 2 * MIN_BOOT_ROUNDS + 60  # no clock: never cut


def test_registration_libraries_are_loaded_before_the_budget_is_planned(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Any) -> None:
    order: list[str] = []

    def planned(*args: Any, **kwargs: Any) -> Any:
        order.append("fit")
        raise RuntimeError("stop here")

    loaded = _run._load_later_libraries

    def load(*, saving: bool, plots: bool) -> None:
        loaded(saving=saving, plots=plots)
        order.append(f"saving {saving}, plots {plots}")

    monkeypatch.setattr(_run, "_load_later_libraries", load)
    monkeypatch.setattr(_run, "fit_tabular", planned)
    frame = pd.DataFrame({"x": np.arange(60.0), "y": np.arange(60.0) % 2})
    with pytest.raises(RuntimeError, match="stop here"):
        _run.train(frame, "y", time_budget=30, workspace=tmp_path, report=False)
    assert order == ["saving True, plots False", "fit"] and "skops.io" in sys.modules
    order.clear()
    with pytest.raises(RuntimeError, match="stop here"):  # nothing to save, plots to draw
        _run.train(frame, "y", time_budget=30, register=False)
    assert order == ["saving False, plots True", "fit"] and "matplotlib.figure" in sys.modules
    order.clear()
    with pytest.raises(RuntimeError, match="stop here"):  # no clock: no deadline to protect
        _run.train(frame, "y", deterministic=True, register=False, report=False)
    assert order == ["fit"]


def test_the_plots_stop_at_the_reports_deadline() -> None:
    from mlpilot.evaluate import classification_plots, regression_plots

    now = [0.0]
    report = Budget.start_now(1.0, clock=lambda: now[0])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    proba = np.column_stack([1 - (p := rng.random(200)), p])
    assert list(regression_plots(proba[:, 1], p, stop=_DeadlineStop(report))) == [
        "residuals.png", "predicted_vs_actual.png"]  # time left: all of them
    now[0] = 2.0  # the deadline has passed: the first plot, then no more
    stop = _DeadlineStop(report)
    assert list(classification_plots(y, proba, ["a", "b"], stop=stop)) == ["roc.png"] and stop.cut == 1
    assert list(regression_plots(proba[:, 1], p, stop=_DeadlineStop(report))) == ["residuals.png"]
