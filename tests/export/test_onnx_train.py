"""What a user gets: churn trained by `mlpilot.train` with CatBoost (the demo's champion kind), then
``mlpilot export --format onnx``, predicts in onnxruntime what the registered model predicts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import mlpilot
from mlpilot.cli import app
from mlpilot.data import Schema
from mlpilot.export._onnx import ATOL
from mlpilot.registry import Registry, Workspace
from tests.export.conftest import onnx_outputs, runtime_outputs

TRAIN_ROWS = 150


@pytest.fixture(scope="module")
def trained(churn: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """``churn`` trained in deterministic mode on real rows, families limited to CatBoost and linear."""
    workspace = Workspace.open(tmp_path_factory.mktemp("train-export") / "ws")
    rows = churn.drop(columns=["rownames"]).iloc[:TRAIN_ROWS]
    mlpilot.train(rows, "churn", name="churn", workspace=workspace, deterministic=True, n_trials=0,
                  families=("catboost", "linear"), report=False)
    registry = Registry(workspace)
    yield registry
    registry.close()


def test_a_trained_catboost_model_exports_to_onnx_and_predicts_what_it_does(
        trained: Registry, churn: pd.DataFrame, tmp_path: Path) -> None:
    registry = trained
    mv = registry.get_version("churn")
    model = registry.load_model(mv)
    weights = dict(zip(model.names_, model.weights_, strict=True))
    assert any(name.startswith("catboost") and w > 0 for name, w in weights.items()), weights
    threshold = float(model.threshold_)
    assert threshold != 0.5  # train chose a decision threshold; the export must label at it

    out = tmp_path / "onnx"
    result = CliRunner().invoke(app, ["export", "churn", "--format", "onnx", "-o", str(out), "--json",
                                      "-w", str(registry.workspace.root)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["verified_rows"] > 100

    frame = churn.drop(columns=["rownames", "churn"]).iloc[TRAIN_ROWS:TRAIN_ROWS + 1200].reset_index(drop=True)
    frame.loc[::7, "total_day_minutes"] = np.nan
    frame.loc[::5, "state"] = None  # missing and unseen categories reach CatBoost's category tables
    frame.loc[3::9, "area_code"] = "area_code_999"
    frame.loc[4::11, "international_plan"] = "maybe"
    got = onnx_outputs(out / "model.onnx", frame, Schema.from_dict(mv.schema or {}))
    want = runtime_outputs(registry, "churn", frame)
    np.testing.assert_allclose(got["probabilities"], want[["probability_no", "probability_yes"]].to_numpy(),
                               rtol=0, atol=ATOL)
    assert list(got["label"]) == list(want["prediction"]) and len(set(got["label"])) == 2
    positive = got["probabilities"][:, 1]
    near = (positive >= min(threshold, 0.5)) & (positive < max(threshold, 0.5))
    assert near.any()  # rows between the threshold and 0.5: labelled by the threshold, not by 0.5
    assert set(got["label"][near]) == {"yes" if threshold < 0.5 else "no"}
