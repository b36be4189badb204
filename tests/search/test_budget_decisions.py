"""The search's budget decisions, driven by a fake clock (none depends on the machine's speed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlpilot.evaluate import evaluate_search
from mlpilot.features import column_roles
from mlpilot.search import SearchConfig, fit_final, run_search
from mlpilot.tasks import get_metric
from mlpilot.tune import Budget
from tests.search.test_search import _search, _table


class ProgressClock:
    """A fake clock that moves only when the search reports the candidate it starts.

    Each report moves it to ``at[name]`` when given, else ``step`` seconds on
    (``"ensemble"``, reported when the search ends, moves it only through ``at``).
    ``started`` records the fake time each candidate began at.
    """

    def __init__(self, at: dict[str, float] | None = None, *, step: float = 0.0) -> None:
        self.now, self.at, self.step = 0.0, at or {}, step
        self.started: dict[str, float] = {}

    def __call__(self) -> float:
        return self.now

    def on_progress(self, event: dict[str, Any]) -> None:
        name = event["current"]
        self.now = self.at.get(name, self.now + (self.step if name != "ensemble" else 0.0))
        self.started.setdefault(name, self.now)


def test_a_spent_budget_skips_later_candidates_and_says_why() -> None:
    frame, y = _table("binary", n=200)
    clock = ProgressClock({"random_forest": 1000.0})  # the budget runs out as random_forest is reached
    result = run_search(
        frame.iloc[:160], y[:160], task="binary", metric=get_metric("roc_auc"), roles=column_roles(frame),
        n_classes=2, holdout=frame.iloc[160:], on_progress=clock.on_progress,
        config=SearchConfig(budget=Budget(60.0, 0.0, clock), families=("linear", "random_forest", "knn"), n_folds=3),
    )
    status = {c.name: (c.status, c.note) for c in result.candidates}
    assert status["linear"][0] == "ok"
    assert status["random_forest"][0] == "skipped" and status["random_forest"][1].startswith("time budget spent")
    assert "knn" not in status  # not even tried
    assert any(n.startswith("random_forest: time budget spent: 0.00s left") for n in result.notes)
    assert any(n.startswith("the time budget ended before knn") and "s kept for the refit" in n for n in result.notes)


def test_deterministic_search_never_reads_the_clock() -> None:
    def clock() -> float:
        raise AssertionError("the clock was read in deterministic mode")

    result, _, _ = _search("binary", budget=Budget(None, 0.0, clock), families=("lightgbm", "linear"), n_trials=1,
                           n_folds=3)
    assert any(c.name == "lightgbm_tuned_1" for c in result.candidates)  # type: ignore[attr-defined]


def test_a_member_dropped_at_refit_is_not_scored() -> None:
    # the issue: a member dropped to keep the budget while the registry advertised the two-member score
    result, frame, y = _search("binary", families=("lightgbm", "linear", "knn"), n_trials=2, n_folds=3)
    assert len(result.weights) >= 2  # type: ignore[attr-defined]
    spent = Budget(10.0, 0.0, lambda: 10.0)  # nothing left: only the best member alone is refit
    members, names, weights, notes = fit_final(
        frame.iloc[:160], y[:160], result, task="binary", roles=column_roles(frame), n_classes=2,  # type: ignore[arg-type]
        random_state=0, n_jobs=1, deterministic=False, budget=spent,
    )
    top = max(result.weights, key=lambda name: result.candidate(name).cv_mean)  # type: ignore[attr-defined]
    assert names == [top] and weights == [1.0] and len(members) == 1
    dropped = [n for n in notes if n.startswith("dropped ensemble member")]
    assert all("to keep the time budget: its refit is expected to take" in n for n in dropped)
    assert len(dropped) == len(result.weights) - 1  # type: ignore[attr-defined]
    kept = result.with_weights(dict(zip(names, weights, strict=True)), y[:160], get_metric("roc_auc"))  # type: ignore[attr-defined]
    member = kept.candidate(top)
    np.testing.assert_array_equal(kept.ensemble_holdout, member.holdout)
    assert kept.ensemble_fold_scores == member.fold_scores
    metric = get_metric("roc_auc")
    evaluation = evaluate_search(kept, y[:160], y[160:], task="binary", metric=metric, n_boot=50, n_boot_others=20)
    assert evaluation.champion == top
    assert evaluation.metrics["holdout_roc_auc"] == pytest.approx(metric(y[160:], member.holdout))



def test_the_member_kept_alone_is_the_best_one_not_the_heaviest() -> None:
    searched, frame, y = _search("binary", families=("lightgbm", "linear", "knn"), n_trials=0, n_folds=3)
    by_score = sorted(searched.weights, key=lambda name: searched.candidate(name).cv_mean)  # type: ignore[attr-defined]
    worst, best = by_score[0], by_score[-1]
    assert searched.candidate(worst).cv_mean < searched.candidate(best).cv_mean  # type: ignore[attr-defined]
    result = searched.with_weights({worst: 0.7, best: 0.3}, y[:160], get_metric("roc_auc"))  # type: ignore[attr-defined]
    spent = Budget(10.0, 0.0, lambda: 10.0)
    _, names, weights, notes = fit_final(
        frame.iloc[:160], y[:160], result, task="binary", roles=column_roles(frame), n_classes=2,  # type: ignore[arg-type]
        random_state=0, n_jobs=1, deterministic=False, budget=spent,
    )
    assert names == [best] and weights == [1.0]  # by weight alone, the worse member would have been kept
    assert notes and notes[-1].startswith(f"dropped ensemble member {worst} (weight 0.70)")
    _, names, _, _ = fit_final(  # without a clock nothing is dropped and the order stays by weight
        frame.iloc[:160], y[:160], result, task="binary", roles=column_roles(frame), n_classes=2,  # type: ignore[arg-type]
        random_state=0, n_jobs=1, deterministic=True,
    )
    assert names == [worst, best]


def test_a_boosted_refit_stops_at_its_deadline_and_says_so() -> None:
    searched, frame, y = _search("binary", families=("lightgbm",), n_trials=0, n_folds=3)
    top = max(searched.weights, key=searched.weights.get)  # type: ignore[attr-defined]
    result = searched.with_weights({top: 1.0}, y[:160], get_metric("roc_auc"))  # type: ignore[attr-defined]
    best = result.candidate(top)
    best.work_seconds = 0.0  # expected to cost nothing: no floor of time beyond the deadline
    spent = Budget(10.0, 0.0, lambda: 10.0)
    members, names, _, notes = fit_final(
        frame.iloc[:160], y[:160], result, task="binary", roles=column_roles(frame), n_classes=2,  # type: ignore[arg-type]
        random_state=0, n_jobs=1, deterministic=False, budget=spent,
    )
    planned = best.refit_params()["n_estimators"]
    learner = members[0][1]
    assert names == [best.name] and learner.n_iterations_ < planned
    assert notes == [f"the refit of {best.name} stopped at its deadline after {learner.n_iterations_} of {planned} "
                     "boosting rounds to keep the time budget"]
    # without a clock the same refit runs every round
    members, _, _, notes = fit_final(
        frame.iloc[:160], y[:160], result, task="binary", roles=column_roles(frame), n_classes=2,  # type: ignore[arg-type]
        random_state=0, n_jobs=1, deterministic=True,
    )
    assert members[0][1].n_iterations_ > learner.n_iterations_ and notes == []


def test_a_fold_that_starts_late_still_gets_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    # the issue (nycflights13/flights, 330k rows, 60 s): a fold's predictions on a large holdout ran past
    # the next fold's planned deadline, which then fitted one round: folds of 2,847, 2,999 and 1 rounds,
    # a cross-validation no better than the dummy's. Here a LightGBM prediction costs 45 s of a fake clock
    # that stands still while anything else runs (fits included), so only the deadlines decide the rounds.
    from mlpilot.search import Learner

    frame, y = _table("binary", n=240)
    clock = ProgressClock()
    original = Learner.predict_values

    def slow_predict(self: Learner, X: Any, *, n_jobs: int | None = None) -> np.ndarray:
        if self.family == "lightgbm":
            clock.now += 36.0
        return original(self, X, n_jobs=n_jobs)

    monkeypatch.setattr(Learner, "predict_values", slow_predict)
    result = run_search(
        frame, y, task="binary", metric=get_metric("roc_auc"), roles=column_roles(frame), n_classes=2,
        holdout=None, on_progress=clock.on_progress,
        config=SearchConfig(budget=Budget(100.0, 0.0, clock), families=("lightgbm",), n_folds=5, n_jobs=1,
                            stacking="off"),
    )
    first = result.candidates[1]
    assert first.name == "lightgbm" and first.workers == 1
    # one fold after another. With its own refit provided for (1 + 5/4 x 1/5 x 0.7), the search may give
    # this candidate 85.1 s; its cap is 85% of that (72.3 s), 14.5 s a fold. Fold 2 starts at 36 s, past its
    # planned end (28.9 s): it fits until min(36 + 14.5, 85.1 - the 36 s a prediction took) = 49.1 s, so all
    # its rounds. Fold 3 starts at 72 s, already past that (a prediction begun later could not end within
    # the 85.1 s): it fits one round, as do the folds after it
    assert first.n_iterations[0] > 5 and first.n_iterations[1] > 5 and first.n_iterations[2:] == [1, 1, 1]
    assert first.cut_by_deadline


def test_a_late_fold_leaves_the_holdout_to_the_folds_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # as above, with a holdout: each LightGBM prediction costs 20 s of the fake clock, validation rows and
    # holdout rows alike. A late fold predicts only its validation rows, so more of them fit their rounds.
    from mlpilot.search import Learner

    frame, y = _table("binary", n=300)
    clock = ProgressClock()
    original = Learner.predict_values
    predicted_rows: list[int] = []

    def slow_predict(self: Learner, X: Any, *, n_jobs: int | None = None) -> np.ndarray:
        if self.family == "lightgbm":
            clock.now += 20.0
            predicted_rows.append(X.shape[0])
        return original(self, X, n_jobs=n_jobs)

    monkeypatch.setattr(Learner, "predict_values", slow_predict)
    result = run_search(
        frame.iloc[:240], y[:240], task="binary", metric=get_metric("roc_auc"), roles=column_roles(frame),
        n_classes=2, holdout=frame.iloc[240:], on_progress=clock.on_progress,
        config=SearchConfig(budget=Budget(100.0, 0.0, clock), families=("lightgbm",), n_folds=5, n_jobs=1,
                            stacking="off"),
    )
    first = result.candidates[1]
    assert first.name == "lightgbm"
    # fold 1 predicts its 48 validation rows and the 60 holdout rows (40 s); folds 2 and 3 start late (40 s,
    # 60 s) and fit until min(start + 14.5, 85.1 - 20) s: all their rounds, their validation rows only;
    # folds 4 and 5 start at 80 and 100 s, past 65.1 s: one round each
    assert min(first.n_iterations[:3]) > 5 and first.n_iterations[3:] == [1, 1]
    assert predicted_rows[:6] == [48, 60, 48, 48, 48, 48]
    # the holdout's prediction is the first fold's alone (the folds that predicted it)
    assert first.holdout is not None and first.holdout.shape[0] == 60


def test_folds_that_all_start_late_still_predict_the_holdout() -> None:
    # CI, demo at 8 s beside busy processes: folds fitted side by side all started past their share of a
    # small cap, none predicted the holdout, and the ensemble's holdout sum failed on None (a TypeError
    # that ended `train`). Here two "threads" each start 30 s late on the fake clock.
    from mlpilot.tune._executor import LocalExecutor

    clock = ProgressClock()

    class LateExecutor(LocalExecutor):
        @property
        def n_workers(self) -> int:
            return 2

        def map(self, fn: Any, items: Any) -> list[Any]:
            def late(item: Any) -> Any:
                clock.now += 30.0
                return fn(item)

            return [late(item) for item in items]

    frame, y = _table("binary", n=300)
    result = run_search(
        frame.iloc[:240], y[:240], task="binary", metric=get_metric("roc_auc"), roles=column_roles(frame),
        n_classes=2, holdout=frame.iloc[240:], on_progress=clock.on_progress,
        config=SearchConfig(budget=Budget(1000.0, 0.0, clock), families=("lightgbm", "linear"), n_folds=3,
                            stacking="off", executor=LateExecutor(1)),
    )
    fitted = [c for c in result.candidates if c.usable and c.family != "dummy"]
    assert fitted and all(c.workers == 2 for c in fitted)
    # each candidate's first fold predicted the holdout although it started late; the folds after it did not
    assert all(c.holdout is not None and c.holdout.shape[0] == 60 for c in fitted)
    assert result.ensemble_holdout is not None and result.ensemble_holdout.shape[0] == 60
