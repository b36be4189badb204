"""One clock for every time decision: the learners' deadlines, the measured costs and the
evaluation's scaling all read the budget's (injected) clock, never the machine's own."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pandas as pd
import pytest

from mlpilot.evaluate import permutation_importance
from mlpilot.evaluate._evaluation import bootstrap_call_seconds
from mlpilot.features import column_roles
from mlpilot.search import Learner, SearchConfig, run_search
from mlpilot.tasks import get_metric
from mlpilot.tune import Budget
from tests.search.test_budget_decisions import ProgressClock
from tests.search.test_search import _table

BOOSTED = ["lightgbm", "catboost"] + (["xgboost"] if importlib.util.find_spec("xgboost") else [])


def _matrix(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)


@pytest.mark.parametrize("family", BOOSTED)
def test_a_boosted_fit_stops_at_a_deadline_read_on_the_given_clock(family: str) -> None:
    X, y = _matrix()
    params = {"n_estimators": 40}
    passed = Learner(family=family, params=params, n_jobs=1).fit(X, y, stop_at=5.0, clock=lambda: 10.0)
    assert passed.n_iterations_ == 1  # the first round ends past the deadline on that clock
    # real time passes during the fit, but on a clock that stands still before the deadline it never comes
    still = Learner(family=family, params=params, n_jobs=1).fit(X, y, stop_at=5.0, clock=lambda: 0.0)
    assert still.n_iterations_ == 40


def test_measured_costs_are_read_on_the_budget_clock() -> None:
    # a clock that moves only between candidates: every fit, prediction and metric call costs 0 s on it,
    # so no candidate is refused or cut for what it cost and the reserves are 0, however slow the machine
    frame, y = _table("binary", n=200)
    clock = ProgressClock(step=1.0)
    result = run_search(
        frame.iloc[:160], y[:160], task="binary", metric=get_metric("roc_auc"), roles=column_roles(frame),
        n_classes=2, holdout=frame.iloc[160:], on_progress=clock.on_progress,
        config=SearchConfig(budget=Budget(8.5, 0.0, clock), families=("lightgbm", "linear", "random_forest"),
                            n_folds=3, n_jobs=2),
    )
    # candidates begin 1 s apart: the 8 begun before 8.5 s ran, the 9th was refused as the time was spent
    assert [c.status for c in result.candidates] == ["ok"] * 8 + ["skipped"]
    assert result.candidates[-1].note.startswith("time budget spent: 0.00s left")
    assert all(c.fit_seconds == 0.0 and c.work_seconds == 0.0 and c.predict_seconds == 0.0
               for c in result.candidates)
    assert not any(c.cut_by_deadline for c in result.candidates)
    assert result.refit_reserve == 0.0


def test_the_bootstrap_cost_and_importance_limit_are_read_on_the_given_clock() -> None:
    ticks = itertools.count(0.0, 0.25)  # each reading a quarter second after the last
    y = np.array([0, 1] * 50)
    assert bootstrap_call_seconds(get_metric("roc_auc"), y, "binary", 2, clock=lambda: next(ticks)) == 0.25

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 5)), columns=list("abcde"))
    target = frame["a"].to_numpy()
    readings = itertools.count(0.0, 1.0)
    done = permutation_importance(lambda f: np.zeros(len(f)), frame, target, get_metric("rmse"),
                                  list(frame.columns), n_repeats=1, time_limit=2.5, clock=lambda: next(readings))
    # the start reads 0 s, the checks before the columns 1, 2, 3 s: two of the five fit a 2.5 s limit
    assert len(done) == 2
