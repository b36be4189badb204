"""``mlpilot export``: ONNX and MLflow predict what the runtime predicts; bad input is refused whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.data import Schema
from mlpilot.registry import Registry
from mlpilot.runtime import load_version, score_frame

runner = CliRunner()


def _export(root: Path, *args: str) -> object:
    return runner.invoke(app, ["export", *args, "-w", str(root)])


def _expected(registry: Registry, ref: str, frame: pd.DataFrame) -> pd.DataFrame:
    loaded = load_version(registry, registry.get_version(ref))
    return score_frame(loaded, frame).frame.iloc[:, frame.shape[1]:].reset_index(drop=True)


@pytest.fixture(scope="module")
def inputs(churn_rows: pd.DataFrame) -> pd.DataFrame:
    frame = churn_rows.drop(columns=["churn"]).iloc[:300].copy()
    frame.loc[::7, "total_day_minutes"] = np.nan  # missing values go through the imputers
    frame.loc[::11, "voice_mail_plan"] = None
    return frame


def test_onnx_graph_gives_the_runtime_probabilities(export_registry: Registry, workspace_root: Path,
                                                    inputs: pd.DataFrame, tmp_path: Path) -> None:
    import onnxruntime as ort

    from mlpilot.export._onnx import ATOL, feeds

    out = tmp_path / "onnx"
    result = _export(workspace_root, "churn", "--format", "onnx", "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    details = json.loads(result.output)
    assert details["ref"] == "churn:1" and details["verified_rows"] > 100
    assert "lightgbm, linear" in details["preprocessing"]
    described = json.loads((out / "inputs.json").read_text())
    assert {i["column"] for i in described["inputs"]} == set(inputs.columns)

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    rows = inputs.astype(object).where(inputs.notna(), None).to_dict("records")
    labels, proba = session.run(["label", "probabilities"], feeds(rows, _schema(export_registry), names))
    want = _expected(export_registry, "churn", inputs)
    np.testing.assert_allclose(proba, want[["probability_no", "probability_yes"]].to_numpy(), rtol=0, atol=ATOL)
    assert list(labels) == list(want["prediction"])
    assert len(set(want["prediction"])) == 2  # both classes occur: the labels are really compared
    between = (proba[:, 1] >= 0.3) & (proba[:, 1] < 0.5)
    assert between.any() and set(labels[between]) == {"yes"}  # labelled at the model's threshold, not 0.5


def _schema(registry: Registry) -> Schema:
    return Schema.from_dict(registry.get_version("churn").schema or {})


def test_mlflow_pyfunc_predicts_what_the_runtime_does(export_registry: Registry, workspace_root: Path,
                                                      inputs: pd.DataFrame, tmp_path: Path) -> None:
    from importlib import metadata

    out = tmp_path / "mlflow"
    result = _export(workspace_root, "churn:1", "--format", "mlflow", "-o", str(out))
    assert result.exit_code == 0, result.output
    import mlflow.pyfunc  # after the export has imported it, with mlflow's import-time warnings silenced
    requirements = (out / "requirements.txt").read_text().splitlines()
    assert f"lightgbm=={metadata.version('lightgbm')}" in requirements
    signature = (out / "MLmodel").read_text().split("signature:")[1]
    assert '"name": "account_length"' in signature and '"type": "long"' in signature
    got = mlflow.pyfunc.load_model(str(out)).predict(inputs)
    pd.testing.assert_frame_equal(got, _expected(export_registry, "churn:1", inputs), check_column_type=False)


def test_bad_input_is_refused_and_nothing_is_half_written(workspace_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    unknown = _export(workspace_root, "chrun", "--format", "bundle", "-o", str(out))
    assert unknown.exit_code == 2 and "chrun" in unknown.output and "churn" in unknown.output
    version = _export(workspace_root, "churn:9", "--format", "bundle", "-o", str(out))
    assert version.exit_code == 2 and "9" in version.output
    fmt = _export(workspace_root, "churn", "--format", "pmml", "-o", str(out))
    assert fmt.exit_code == 2 and "mlflow, onnx, bundle" in fmt.output
    rec = _export(workspace_root, "rec", "--format", "onnx", "-o", str(out))
    assert rec.exit_code == 2 and "recommender" in rec.output and "--format bundle" in rec.output
    knn = _export(workspace_root, "churn_knn", "--format", "onnx", "-o", str(out))
    assert knn.exit_code == 2 and "knn" in knn.output and "Traceback" not in knn.output
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no staging directory left behind

    out.mkdir()
    (out / "keep.txt").write_text("mine")
    busy = _export(workspace_root, "churn", "--format", "onnx", "-o", str(out))
    assert busy.exit_code == 2 and "--force" in busy.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    forced = _export(workspace_root, "churn", "--format", "onnx", "-o", str(out), "--force")
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in out.iterdir()) == ["inputs.json", "model.onnx", "schema.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
