"""The prediction API with real rows of mlc_churn."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline


def test_predict_rows_matches_the_pipeline(
    client: TestClient, rows: list[dict[str, Any]], churn_pipeline: Pipeline
) -> None:
    response = client.post("/v1/models/churn/predict", json={"rows": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "churn" and body["version"] == 1
    expected = churn_pipeline.predict(pd.DataFrame(rows)).tolist()
    assert body["predictions"] == expected
    proba = churn_pipeline.predict_proba(pd.DataFrame(rows))
    got = np.array([[p["no"], p["yes"]] for p in body["probabilities"]])
    np.testing.assert_allclose(got, proba, atol=1e-6)
    assert "warnings" not in body


def test_predict_columns_form(client: TestClient, rows: list[dict[str, Any]]) -> None:
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    by_rows = client.post("/v1/models/churn/predict", json={"rows": rows}).json()
    by_columns = client.post("/v1/models/churn/predict", json={"columns": columns}).json()
    assert by_columns["predictions"] == by_rows["predictions"]


def test_version_and_alias_pins(client: TestClient, rows: list[dict[str, Any]]) -> None:
    assert client.post("/v1/models/churn/predict?version=1", json={"rows": rows}).json()["version"] == 1
    assert client.post("/v1/models/churn/predict?alias=champion", json={"rows": rows}).json()["version"] == 1
    missing = client.post("/v1/models/churn/predict?version=7", json={"rows": rows})
    assert missing.status_code == 404
    assert "churn:7" in missing.json()["detail"]
    no_alias = client.post("/v1/models/churn/predict?alias=staging", json={"rows": rows})
    assert no_alias.status_code == 404 and "staging" in no_alias.json()["detail"]
    both = client.post("/v1/models/churn/predict?alias=champion&version=1", json={"rows": rows})
    assert both.status_code == 400


def test_unknown_model_is_404_with_a_suggestion(client: TestClient, rows: list[dict[str, Any]]) -> None:
    response = client.post("/v1/models/churm/predict", json={"rows": rows})
    assert response.status_code == 404
    assert response.json()["error"] == "ModelNotFoundError"
    assert "churn" in response.json()["detail"]


def _post(client: TestClient, body: Any, **kwargs: Any) -> Any:
    content = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post("/v1/models/churn/predict", content=content, headers={"content-type": "application/json"}, **kwargs)


@pytest.mark.parametrize(
    ("mutate", "status", "fragments"),
    [
        (lambda r: r[1].pop("state"), 422, ["'state'", "row(s) 1"]),
        (lambda r: r[2].update(total_day_minutes="lots"), 422, ["'total_day_minutes'", "number", "row(s) 2"]),
        (lambda r: r[0].update(total_day_calls=[1, 2]), 422, ["'total_day_calls'", "row(s) 0"]),
        (lambda r: r[3].update(state=5), 422, ["'state'", "string", "row(s) 3"]),
        (lambda r: r[4].update(account_length=True), 422, ["'account_length'", "row(s) 4"]),
        (lambda r: r[0].update(total_eve_calls=10**400), 422, ["'total_eve_calls'", "finite"]),
    ],
    ids=["missing-field", "string-in-number", "list-value", "number-in-string", "bool-in-number", "overflow"],
)
def test_bad_values_name_the_field_and_row(
    client: TestClient, rows: list[dict[str, Any]], mutate: Any, status: int, fragments: list[str]
) -> None:
    mutate(rows)
    response = _post(client, {"rows": rows})
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    for fragment in fragments:
        assert fragment in detail, detail
    assert response.json()["problems"][0]["field"]


def test_number_literal_overflowing_to_infinity(client: TestClient, rows: list[dict[str, Any]]) -> None:
    rows[2]["total_eve_minutes"] = 123456.0
    body = json.dumps({"rows": rows}).replace("123456.0", "1e400")
    response = _post(client, body)
    assert response.status_code == 422
    assert "'total_eve_minutes'" in response.json()["detail"] and "row(s) 2" in response.json()["detail"]


def test_huge_integers_do_not_overflow(client: TestClient, rows: list[dict[str, Any]]) -> None:
    rows[0]["account_length"] = 2**70
    assert _post(client, {"rows": rows}).status_code == 200


def test_missing_column_everywhere(client: TestClient, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        del r["voice_mail_plan"]
    response = _post(client, {"rows": rows})
    assert response.status_code == 422
    assert "'voice_mail_plan'" in response.json()["detail"] and "missing" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"rows": [{"total_day_minutes": NaN}]}', "NaN"),
        (b'{"rows": [{"total_day_minutes": Infinity}]}', "Infinity"),
        (b'{"rows": [', "not valid JSON"),
        (b"", "empty"),
        (b"\xff\xfe", "UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'{"rows": []}', "no rows"),
        (b'{"rows": {}}', "list"),
        (b'{"rows": [1]}', "rows [0]"),
        (b'{"rows": [], "columns": {}}', "exactly one"),
        (b'{"columns": {"a": [1], "b": [1, 2]}}', "same number"),
        (b'{"rows": [{}], "extra": 1}', "Unknown field"),
    ],
)
def test_malformed_bodies_are_400(client: TestClient, body: bytes, fragment: str) -> None:
    response = _post(client, body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["detail"]


def test_extra_column_and_unseen_category_are_flagged(client: TestClient, rows: list[dict[str, Any]]) -> None:
    rows[0]["favourite_colour"] = "blue"
    rows[1]["state"] = "Atlantis"
    response = _post(client, {"rows": rows})
    assert response.status_code == 200, response.text
    warnings = {w["kind"]: w for w in response.json()["warnings"]}
    assert warnings["extra_column"]["field"] == "favourite_colour"
    assert warnings["unseen_category"]["field"] == "state"
    assert warnings["unseen_category"]["rows"] == [1]
    assert len(response.json()["predictions"]) == 5


def test_null_values_are_imputed(client: TestClient, rows: list[dict[str, Any]]) -> None:
    rows[0]["total_day_minutes"] = None
    rows[1]["state"] = None
    response = _post(client, {"rows": rows})
    assert response.status_code == 200, response.text


def test_size_limits(registry: Any, churn_model: Any, rows: list[dict[str, Any]]) -> None:
    from mlpilot.serve import ServeSettings, create_app

    app = create_app(ServeSettings(home=registry.workspace.root, max_body_bytes=4096, max_rows=3), registry=registry)
    with TestClient(app) as small:
        too_many = _post(small, {"rows": rows[:4]})
        assert too_many.status_code == 413 and "limit is 3" in too_many.json()["detail"]
        big = json.dumps({"rows": rows * 10}).encode()
        declared = _post(small, big)
        assert declared.status_code == 413 and "4096" in declared.json()["detail"]

        def chunks() -> Any:  # no Content-Length: the streamed body is capped
            yield big[:3000]
            yield big[3000:]

        streamed = small.post("/v1/models/churn/predict", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413


def test_predict_csv_appends_predictions(
    client: TestClient, churn_frame: pd.DataFrame, churn_pipeline: Pipeline
) -> None:
    frame = churn_frame.drop(columns=["churn"]).head(300)
    csv = frame.to_csv(index=False).encode()
    response = client.post("/v1/models/churn/predict.csv", content=csv, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.headers["x-mlpilot-rows"] == "300"
    import io

    scored = pd.read_csv(io.StringIO(response.text))
    assert list(scored.columns[-4:]) == ["prediction", "probability_no", "probability_yes", "warnings"]
    assert scored["warnings"].isna().all()  # rows like the training data carry no flag
    assert scored["prediction"].tolist() == churn_pipeline.predict(frame).tolist()
    upload = client.post("/v1/models/churn/predict.csv", files={"file": ("x.csv", csv, "text/csv")})
    assert upload.status_code == 200 and upload.text == response.text


def test_predict_csv_small_chunks_report_the_global_row(registry: Any, churn_model: Any, churn_frame: pd.DataFrame) -> None:
    from mlpilot.serve import ServeSettings, create_app

    frame = churn_frame.drop(columns=["churn"]).head(50).astype({"total_day_minutes": object})
    frame.loc[42, "total_day_minutes"] = "oops"
    app = create_app(ServeSettings(home=registry.workspace.root, csv_chunk_rows=10), registry=registry)
    with TestClient(app) as small:
        response = small.post("/v1/models/churn/predict.csv", content=frame.to_csv(index=False), headers={"content-type": "text/csv"})
    assert response.status_code == 422
    assert "'total_day_minutes'" in response.json()["detail"] and "42" in response.json()["detail"]


@pytest.mark.parametrize("content", [b"", b"a,b\n", b"\x00\x01\x02\xff\xfe", b'state\n"unterminated'])
def test_predict_csv_bad_files_are_4xx(client: TestClient, content: bytes) -> None:
    response = client.post("/v1/models/churn/predict.csv", content=content, headers={"content-type": "text/csv"})
    assert 400 <= response.status_code < 500, response.text


def test_models_that_do_not_predict_rows_answer_400(client: TestClient, registry: Any) -> None:
    registry.register_model("recs", {"item_factors": [1, 2]}, kind="recommender", aliases=("champion",))
    response = client.post("/v1/models/recs/predict", json={"rows": [{"user": 1}]})
    assert response.status_code == 400 and "recommend" in response.json()["detail"]
    csv = client.post("/v1/models/recs/predict.csv", content=b"user\n1\n", headers={"content-type": "text/csv"})
    assert csv.status_code == 400


class NaNFirstRow:
    """The churn pipeline, except that the first row's probabilities are NaN (a model gone wrong on a row)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.classes_ = pipeline.classes_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        proba = np.array(self.pipeline.predict_proba(X), dtype=float)
        proba[0] = np.nan
        return proba

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict(X))


def test_a_nan_in_the_answer_is_json_null_not_a_500(
    client: TestClient, registry: Any, churn_frame: pd.DataFrame, churn_pipeline: Pipeline, rows: list[dict[str, Any]]
) -> None:
    from tests.serve.conftest import register_churn

    register_churn(registry, churn_frame, NaNFirstRow(churn_pipeline), name="nan_churn")
    response = client.post("/v1/models/nan_churn/predict", json={"rows": rows[:3]})
    assert response.status_code == 200, response.text
    probabilities = response.json()["probabilities"]
    assert probabilities[0] == {"no": None, "yes": None}
    assert all(p is not None for row in probabilities[1:] for p in row.values())
