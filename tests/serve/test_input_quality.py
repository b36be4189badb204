"""Predictions say when the input is unlike the training data: JSON, predict.csv and mlpilot predict agree."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlpilot.cli import app as cli
from mlpilot.data import ColumnSchema, Schema, infer_schema
from mlpilot.monitor import read_prediction_log
from mlpilot.registry import Registry
from mlpilot.runtime._inputs import convert_columns
from mlpilot.runtime._quality import RANGE_MARGIN, input_problems, row_flags, value_bounds
from mlpilot.runtime._validator import SchemaValidator
from tests.serve.conftest import TestClient


def _odd(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Row 0 clean; row 1 out of range twice; row 2 with a null where training had none."""
    batch = [dict(r) for r in rows[:3]]
    batch[1]["account_length"] = -5
    batch[1]["total_day_minutes"] = 1e9
    batch[2]["state"] = None
    return batch


def _by_kind(warnings: list[dict[str, Any]]) -> dict[tuple[str, str], list[int]]:
    return {(w["kind"], w["field"]): w["rows"] for w in warnings}


def test_every_null_row_is_refused_naming_the_row(client: TestClient, rows: list[dict[str, Any]]) -> None:
    batch = [dict(r) for r in rows[:3]]
    batch[1] = dict.fromkeys(batch[1])
    for body in ({"rows": batch}, {"columns": {k: [r[k] for r in batch] for k in batch[0]}}, {"rows": batch[1:2]}):
        response = client.post("/v1/models/churn/predict", json=body)
        assert response.status_code == 422, response.text
        problems = response.json()["problems"]
        assert [(p["kind"], p["rows"]) for p in problems] == [("empty_row", [1 if len(body.get("rows", batch)) > 1 else 0])]
        assert "No usable feature value at row(s)" in problems[0]["message"]
    text = client.get("/metrics").text
    assert 'mlpilot_input_flags_total{model="churn",kind="empty_row"} 3' in text


def test_unlike_values_get_a_warning_per_field_and_row(client: TestClient, rows: list[dict[str, Any]]) -> None:
    response = client.post("/v1/models/churn/predict", json={"rows": _odd(rows)})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer["predictions"]) == 3
    assert _by_kind(answer["warnings"]) == {
        ("out_of_range", "account_length"): [1],
        ("out_of_range", "total_day_minutes"): [1],
        ("missing_value", "state"): [2],
    }
    messages = " ".join(w["message"] for w in answer["warnings"])
    assert "'account_length' is outside the training range [1, 243]" in messages and "-5 at row(s) 1" in messages
    assert "1e+09" in messages and "'state' is null at row(s) 2" in messages


def test_a_clean_row_stays_on_the_fast_path(client: TestClient, rows: list[dict[str, Any]]) -> None:
    loaded = client.app.state.models.get("churn")  # type: ignore[attr-defined]
    assert loaded.validator is not None
    assert loaded.validator.clean_rows({"rows": rows[:1]}, 100) is not None
    assert loaded.validator.clean_rows({"rows": rows}, 100) is not None
    for row in _odd(rows)[1:]:
        assert loaded.validator.clean_rows({"rows": [row]}, 100) is None
    assert "warnings" not in client.post("/v1/models/churn/predict", json={"rows": rows[:1]}).json()


def test_flags_reach_csv_log_and_metrics(client: TestClient, rows: list[dict[str, Any]], registry: Registry) -> None:
    csv = pd.DataFrame(_odd(rows)).to_csv(index=False).encode()
    response = client.post("/v1/models/churn/predict.csv", content=csv, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    scored = pd.read_csv(io.StringIO(response.text), keep_default_na=False)
    expected = ["", "out_of_range:account_length; out_of_range:total_day_minutes", "missing_value:state"]
    assert scored["warnings"].tolist() == expected
    client.post("/v1/models/churn/predict", json={"rows": _odd(rows)})
    client.app.state.prediction_log.flush()  # type: ignore[attr-defined]
    log = read_prediction_log(registry.workspace, "churn")
    assert sorted(log["warnings"].tolist()) == sorted(expected * 2)
    text = client.get("/metrics").text
    assert 'mlpilot_input_flags_total{model="churn",kind="out_of_range"} 4' in text
    assert 'mlpilot_input_flags_total{model="churn",kind="missing_value"} 2' in text


def test_csv_all_null_row_is_422_with_its_file_row(registry: Registry, churn_model: Any, rows: list[dict[str, Any]]) -> None:
    from mlpilot.serve import ServeSettings, create_app

    frame = pd.DataFrame([*rows, dict.fromkeys(rows[0])])  # row 5 of the file is empty
    app = create_app(ServeSettings(home=registry.workspace.root, csv_chunk_rows=2), registry=registry)
    with TestClient(app) as small:
        response = small.post("/v1/models/churn/predict.csv", content=frame.to_csv(index=False),
                              headers={"content-type": "text/csv"})
    assert response.status_code == 422, response.text
    assert [(p["kind"], p["rows"]) for p in response.json()["problems"]] == [("empty_row", [5])]


def test_mlpilot_predict_flags_the_same_rows(
    registry: Registry, churn_model: Any, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    source, out = tmp_path / "new.csv", tmp_path / "scored.csv"
    pd.DataFrame(_odd(rows)).to_csv(source, index=False)
    result = CliRunner().invoke(cli, ["predict", "churn", str(source), "-o", str(out), "-w", str(registry.workspace.root)])
    assert result.exit_code == 0, result.output
    assert "outside the training range" in result.output and "'state' is null" in result.output
    scored = pd.read_csv(out, keep_default_na=False)
    assert scored["warnings"].tolist() == [
        "", "out_of_range:account_length; out_of_range:total_day_minutes", "missing_value:state"]
    pd.DataFrame([rows[0], dict.fromkeys(rows[0])]).to_csv(source, index=False)
    empty = CliRunner().invoke(cli, ["predict", "churn", str(source), "-o", str(out), "-w", str(registry.workspace.root)])
    assert empty.exit_code == 2 and "No usable feature value at row(s) 1" in empty.output


def test_value_bounds_margin_and_sign() -> None:
    counts = ColumnSchema("n", "integer", "numeric", False, 100, minimum=1.0, maximum=101.0)
    assert value_bounds(counts) == (0.0, 101.0 + RANGE_MARGIN * 100)
    signed = ColumnSchema("t", "float", "numeric", False, 100, minimum=-10.0, maximum=10.0)
    assert value_bounds(signed) == (-12.0, 12.0)
    negative = ColumnSchema("d", "float", "numeric", False, 100, minimum=-10.0, maximum=-1.0)
    assert value_bounds(negative) == pytest.approx((-10.9, -0.1))  # widened, but never to positive values
    zero = ColumnSchema("z", "float", "numeric", False, 100, minimum=-10.0, maximum=0.0)
    assert value_bounds(zero) == (-11.0, 0.0)
    assert value_bounds(ColumnSchema("c", "integer", "categorical", False, 3, ("1", "2", "3"), 1.0, 3.0)) is None


def test_row_flags_place_problems_by_row() -> None:
    x = ColumnSchema("x", "float", "numeric", False, 10, minimum=0.0, maximum=10.0)
    y = ColumnSchema("y", "float", "numeric", True, 10, minimum=0.0, maximum=10.0)
    problems = input_problems({"x": [None, 50.0, 1.0], "y": [1.0, -3.0, None]}, 3, Schema((x, y)))
    assert row_flags(problems, 3) == ["missing_value:x", "out_of_range:x; out_of_range:y", ""]
    assert row_flags([], 3) is None


_VALUES = st.none() | st.integers(-400, 400) | st.floats(-1000, 1000, allow_nan=False) | st.sampled_from(["a", "b", "zz"])


_FRAMES = {
    "mixed": {"n": [i % 37 * 3 + 1 for i in range(100)], "f": [i / 3 for i in range(100)], "c": ["a", "b"] * 50,
              "m": [None, 1.5, 2.5, -4.0] * 25},
    "all nullable": {"m": [None, 1.5, 2.5, -4.0] * 25, "c": ["a", None, "b", "a"] * 25, "b": [True, False, None, True] * 25},
}


@pytest.mark.parametrize("columns", list(_FRAMES))
def test_validator_and_full_check_agree(columns: str) -> None:
    """A request the fast validator passes gets no warning nor error from the full path, and back."""
    frame = pd.DataFrame({**_FRAMES[columns], "y": [0, 1] * 50})
    schema = infer_schema(frame, target="y")
    validator = SchemaValidator(schema)
    names = schema.feature_names
    assert len(names) == len(frame.columns) - 1

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(*[_VALUES | st.booleans()] * len(names)), min_size=1, max_size=3))
    def run(values: list[tuple[Any, ...]]) -> None:
        rows = [dict(zip(names, v, strict=True)) for v in values]
        clean = validator.clean_rows({"rows": rows}, 100) is not None
        columns = {name: [r[name] for r in rows] for name in names}
        assert validator.is_clean(columns) == clean
        try:
            data, warnings = convert_columns(columns, schema)
        except Exception:
            assert not clean
            return
        problems = input_problems(data, len(rows), schema)
        assert clean == (not warnings and not problems), (rows, warnings, problems)

    run()


@pytest.mark.parametrize("form", ["rows", "columns"])
def test_ui_and_json_share_the_rules(client: TestClient, rows: list[dict[str, Any]], form: str) -> None:
    batch = _odd(rows)
    body = {"rows": batch} if form == "rows" else {"columns": {k: [r[k] for r in batch] for k in batch[0]}}
    warnings = client.post("/v1/models/churn/predict", json=body).json()["warnings"]
    assert {(w["kind"], w["field"]) for w in warnings} == {
        ("out_of_range", "account_length"), ("out_of_range", "total_day_minutes"), ("missing_value", "state")}


def test_ui_form_shows_and_logs_the_flags(client: TestClient, rows: list[dict[str, Any]], registry: Registry) -> None:
    form = {k: str(v) for k, v in rows[0].items()}
    page = client.post("/ui/models/churn/predict", data={**form, "account_length": "-5"})
    assert page.status_code == 200, page.text
    assert "is outside the training range [1, 243]" in page.text
    client.app.state.prediction_log.flush()  # type: ignore[attr-defined]
    assert read_prediction_log(registry.workspace, "churn")["warnings"].tolist() == ["out_of_range:account_length"]
    assert 'mlpilot_input_flags_total{model="churn",kind="out_of_range"} 1' in client.get("/metrics").text


def test_a_date_that_does_not_read_gets_a_warning_not_silence() -> None:
    """The date features take an unreadable date as missing; the answer says which rows, as for a null."""
    when = ColumnSchema("when", "string", "datetime", True, 100)
    x = ColumnSchema("x", "float", "numeric", False, 10, minimum=0.0, maximum=10.0)
    values = {"when": ["2016 Q3", "someday", None, "2024-05-01T12:00:00+02:00", "31/02/2024"], "x": [1.0] * 5}
    problems = input_problems(values, 5, Schema((when, x)))
    assert [(p.kind, p.column, p.rows) for p in problems] == [("missing_value", "when", (1, 4))]
    assert "'someday', '31/02/2024' at row(s) 1, 4" in problems[0].message and problems[0].severity == "warning"
    assert input_problems({"when": ["1991 W06", None], "x": [1.0, 2.0]}, 2, Schema((when, x))) == []
