"""``mlpilot models list | compare | archive | delete`` on a real registry with real scikit-learn models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from typer.testing import CliRunner

from mlpilot.automl._promote import ROWS_FILE, training_record
from mlpilot.cli import app
from mlpilot.registry import Registry, Workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.copy()
    frame["target"] = np.where(frame["target"] == 1, "benign", "malignant")
    return frame


def _register(reg: Registry, frame: pd.DataFrame, rows: slice, model: object, **kw: object) -> None:
    part = frame.iloc[rows]
    fitted = model.fit(part.drop(columns=["target"]), part["target"])  # type: ignore[attr-defined]
    features = [c for c in frame.columns if c != "target"]
    data, record = training_record(part, [*features, "target"])
    proba = fitted.predict_proba(part.drop(columns=["target"]))[:, 1]
    reg.register_model(
        "cancer", fitted, kind="tabular", headline_metric="holdout_roc_auc",
        metrics={"holdout_roc_auc": float(roc_auc_score(part["target"] == "malignant", proba)),
                 "holdout_roc_auc_ci": [0.9, 0.99]},
        info={"task": "binary", "target": "target", "metric": "roc_auc", "training_rows": record},
        files={ROWS_FILE: data}, **kw,  # type: ignore[arg-type]
    )


@pytest.fixture()
def workspace(tmp_path: Path, cancer: pd.DataFrame) -> Path:
    reg = Registry(Workspace.open(tmp_path))
    _register(reg, cancer, slice(0, 200), make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)))
    _register(reg, cancer, slice(100, 300), DecisionTreeClassifier(max_depth=2, random_state=0), aliases=("champion",))
    reg.close()
    return tmp_path


def test_compare_is_paired_on_rows_neither_version_saw(workspace: Path, cancer: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    cancer.to_csv(path, index=False)
    result = runner.invoke(app, ["models", "compare", "cancer:1", "cancer:2", "--data", str(path), "--json",
                                 "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    test = out["test"]
    assert test["n_rows"] == len(cancer) - 300  # rows 0-299 were seen by one version or the other
    reg = Registry(Workspace.open(workspace))
    unseen = cancer.iloc[300:]
    y = unseen["target"] == "malignant"  # classes_ sorted: column 1
    scores = [roc_auc_score(y, reg.load_model(f"cancer:{v}").predict_proba(unseen.drop(columns=["target"]))[:, 1])
              for v in (1, 2)]
    assert test["a"] == pytest.approx(scores[0]) and test["b"] == pytest.approx(scores[1])
    assert test["difference"] == pytest.approx(scores[1] - scores[0])
    assert out["metrics"]["holdout_roc_auc"]["a"] != out["metrics"]["holdout_roc_auc"]["b"]
    shown = runner.invoke(app, ["models", "compare", "cancer:1", "cancer:2", "--data", str(path), "-w", str(workspace)])
    assert shown.exit_code == 0 and "[0.9000, 0.9900]" in shown.stdout and f"{len(cancer) - 300} rows" in shown.stdout


def test_compare_without_unseen_rows_says_why(workspace: Path, cancer: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "seen.csv"
    cancer.iloc[:300].to_csv(path, index=False)
    result = runner.invoke(app, ["models", "compare", "cancer:1", "cancer:2", "--data", str(path), "--json",
                                 "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["test"] is None and "only 0 of the 300 rows are unseen by both" in out["reason"]


def test_archive_and_delete_never_touch_the_champion_without_force(workspace: Path) -> None:
    refused = runner.invoke(app, ["models", "delete", "cancer:2", "-w", str(workspace)])
    assert refused.exit_code == 2 and "champion" in refused.output and "--force" in refused.output
    refused = runner.invoke(app, ["models", "archive", "cancer:2", "-w", str(workspace)])
    assert refused.exit_code == 2
    bare = runner.invoke(app, ["models", "delete", "cancer", "-w", str(workspace)])
    assert bare.exit_code == 2 and "NAME:VERSION" in bare.output
    reg = Registry(Workspace.open(workspace))
    assert reg.get_version("cancer@champion").version == 2 and len(reg.list_versions("cancer")) == 2

    archived = runner.invoke(app, ["models", "archive", "cancer:1", "--reason", "superseded", "-w", str(workspace)])
    assert archived.exit_code == 0, archived.output
    listing = runner.invoke(app, ["models", "list", "--json", "-w", str(workspace)])
    assert json.loads(listing.stdout)["models"][0]["n_archived"] == 1
    assert reg.load_model("cancer:1") is not None  # archived versions stay loadable
    assert reg.list_events(name="cancer", kind="model_archived")[0]["payload"]["reason"] == "superseded"

    directory = reg.get_version("cancer:2").directory
    forced = runner.invoke(app, ["models", "delete", "cancer:2", "--force", "-w", str(workspace)])
    assert forced.exit_code == 0, forced.output
    assert not directory.exists() and [v.version for v in reg.list_versions("cancer")] == [1]
    assert "champion" not in reg.get_aliases("cancer")
    new = reg.register_model("cancer", {"w": 1}, kind="test")
    assert new.version == 3  # a deleted version's number is never reused


def test_delete_sweeps_what_a_crash_left(workspace: Path) -> None:
    reg = Registry(Workspace.open(workspace))
    mv = reg.get_version("cancer:1")
    leftover = mv.directory.with_name(".deleted-crashed")
    leftover.mkdir()
    (leftover / "model.skops").write_bytes(b"half removed")
    reg.delete_version("cancer:1")
    assert not leftover.exists() and not mv.directory.exists()
    assert reg.get_version("cancer:2").artifact_path.exists()


def test_history_says_who_moved_an_alias_from_where_and_why(workspace: Path) -> None:
    moved = runner.invoke(app, ["models", "promote", "cancer", "1", "--reason", "v2 overfits", "-w", str(workspace)])
    assert moved.exit_code == 0, moved.output
    history = runner.invoke(app, ["models", "history", "cancer", "--json", "-w", str(workspace)])
    move = [e for e in json.loads(history.stdout) if e["kind"] == "alias_set"][-1]
    assert (move["alias"], move["from_version"], move["version"]) == ("champion", 2, 1)
    assert move["by"].startswith("mlpilot promote (user ") and move["reason"] == "v2 overfits"
    table = runner.invoke(app, ["models", "history", "cancer", "-w", str(workspace)], env={"COLUMNS": "200"})
    assert "champion: v2 → v1 by mlpilot promote" in table.output and "v2 overfits" in table.output


def test_a_version_registered_as_champion_records_what_it_replaced_who_and_why(
        workspace: Path, cancer: pd.DataFrame) -> None:
    reg = Registry(Workspace.open(workspace))
    _register(reg, cancer, slice(0, 300), DecisionTreeClassifier(max_depth=3, random_state=0), aliases=("champion",),
              by="mlpilot train", reason="beats v2 on rows neither saw")
    reg.close()
    history = runner.invoke(app, ["models", "history", "cancer", "--json", "-w", str(workspace)])
    first, _, third = [e for e in json.loads(history.stdout) if e["kind"] == "model_registered"]
    assert first["aliases"] == [] and "from_versions" not in first
    assert third["from_versions"] == {"champion": 2}
    assert (third["by"], third["reason"]) == ("mlpilot train", "beats v2 on rows neither saw")
    table = runner.invoke(app, ["models", "history", "cancer", "-w", str(workspace)], env={"COLUMNS": "200"})
    assert "v3 registered as champion (champion was v2) by mlpilot train: beats v2 on rows neither saw" in table.output
