"""`mlpilot predict`, ``predict.csv`` and the JSON route score through one runtime function and agree."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from typer.testing import CliRunner

from mlpilot.cli import app as cli
from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime import load_version, score_frame
from tests.serve.conftest import TestClient

RUNTIME = Path(__file__).resolve().parents[2] / "src" / "mlpilot" / "runtime"
OUTPUT_COLUMNS = ["prediction", "probability_no", "probability_yes", "warnings"]


def _batch(rows: list[dict[str, Any]], churn_frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Real rows, one out of range and one with a null where training had none."""
    batch = [dict(r) for r in churn_frame.drop(columns=["churn"]).iloc[100:130].to_dict("records")] + [dict(r) for r in rows]
    batch[1]["total_day_minutes"] = 1e9
    batch[2]["state"] = None
    return batch


def _cli(registry: Registry, source: Path, out: Path) -> pd.DataFrame:
    result = CliRunner().invoke(cli, ["predict", "churn", str(source), "-o", str(out), "-w", str(registry.workspace.root)])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out, keep_default_na=False)


def test_cli_csv_route_and_json_route_give_the_same_names_and_values(
    registry: Registry, churn_model: ModelVersion, client: TestClient, rows: list[dict[str, Any]],
    churn_frame: pd.DataFrame, tmp_path: Path,
) -> None:
    batch = _batch(rows, churn_frame)
    source = tmp_path / "new.csv"
    pd.DataFrame(batch).to_csv(source, index=False)

    by_cli = _cli(registry, source, tmp_path / "scored.csv")
    response = client.post("/v1/models/churn/predict.csv", content=source.read_bytes(), headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    by_route = pd.read_csv(io.StringIO(response.text), keep_default_na=False)
    answer = client.post("/v1/models/churn/predict", json={"rows": batch})
    assert answer.status_code == 200, answer.text
    by_json = answer.json()

    inputs = list(pd.DataFrame(batch).columns)
    assert list(by_cli.columns) == list(by_route.columns) == inputs + OUTPUT_COLUMNS
    pd.testing.assert_frame_equal(by_cli, by_route)
    assert by_route["prediction"].tolist() == by_json["predictions"]
    for cls in ("no", "yes"):
        assert by_route[f"probability_{cls}"].tolist() == [p[cls] for p in by_json["probabilities"]]
    assert by_route["warnings"].tolist()[:3] == ["", "out_of_range:total_day_minutes", "missing_value:state"]
    flagged = {(w["kind"], w["field"]): w["rows"] for w in by_json["warnings"]}
    assert flagged == {("out_of_range", "total_day_minutes"): [1], ("missing_value", "state"): [2]}


def test_an_input_column_named_prediction_is_kept_by_the_cli_as_by_the_route(
    registry: Registry, churn_model: ModelVersion, client: TestClient, rows: list[dict[str, Any]], tmp_path: Path,
) -> None:
    source = tmp_path / "new.csv"
    pd.DataFrame(rows).assign(prediction="mine").to_csv(source, index=False)
    by_cli = _cli(registry, source, tmp_path / "scored.csv")
    response = client.post("/v1/models/churn/predict.csv", content=source.read_bytes(), headers={"content-type": "text/csv"})
    by_route = pd.read_csv(io.StringIO(response.text), keep_default_na=False)
    assert by_cli["prediction"].tolist() == ["mine"] * len(rows)
    assert list(by_cli.columns)[-4:] == ["prediction_", "probability_no", "probability_yes", "warnings"]
    pd.testing.assert_frame_equal(by_cli, by_route)


def test_score_frame_numbers_rows_from_its_offset(
    registry: Registry, churn_model: ModelVersion, rows: list[dict[str, Any]], churn_frame: pd.DataFrame,
) -> None:
    loaded = load_version(registry, churn_model, fast_path=False)
    frame = pd.DataFrame(_batch(rows, churn_frame)[:3])
    scored = score_frame(loaded, frame, offset=100)
    assert scored.flags == ["", "out_of_range:total_day_minutes", "missing_value:state"]
    assert sorted(p.rows for p in scored.warnings) == [(101,), (102,)]
    assert list(scored.inputs.columns) == list(loaded.feature_names)
    assert list(frame.columns) == list(pd.DataFrame(_batch(rows, churn_frame)[:3]).columns)  # the input is not changed


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_runtime_imports_no_web_framework() -> None:
    imported = {name for path in RUNTIME.glob("*.py") for name in _imported_modules(path)}
    assert imported, "no runtime modules found"
    assert not {n for n in imported if n.split(".")[0] in ("fastapi", "starlette", "uvicorn")}
    assert not {n for n in imported if n.startswith("mlpilot.serve") or n.startswith("mlpilot.cli")}
    code = "import sys, mlpilot.runtime; print(sorted(m for m in ('fastapi', 'starlette') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
