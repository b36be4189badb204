"""Every answer carries a request id (JSON and X-Request-ID); the log stores it with each row."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mlpilot.monitor import read_prediction_log, record_feedback
from mlpilot.registry import Registry
from mlpilot.serve import ServeSettings, create_app
from tests.serve.conftest import TestClient


@pytest.fixture
def small_chunks(registry: Registry, churn_model: Any) -> Any:
    settings = ServeSettings(home=registry.workspace.root, log_flush_interval=0.02, csv_chunk_rows=4,
                             max_feedback_items=6)
    with TestClient(create_app(settings, registry=registry)) as client:
        yield client


def test_ids_are_returned_logged_and_joined(small_chunks: TestClient, registry: Registry,
                                             rows: list[dict[str, Any]], churn_frame: pd.DataFrame) -> None:
    client = small_chunks
    made = client.post("/v1/models/churn/predict", json={"rows": rows[:2]})
    assert made.status_code == 200
    server_id = made.json()["request_id"]
    assert made.headers["x-request-id"] == server_id and len(server_id) == 32
    own = client.post("/v1/models/churn/predict", json={"rows": rows[:1]}, headers={"X-Request-ID": "order-17:a"})
    assert own.json()["request_id"] == own.headers["x-request-id"] == "order-17:a"
    assert client.get("/healthz").headers["x-request-id"]  # every answer, not only predictions
    csv = churn_frame.drop(columns=["churn"]).head(10).to_csv(index=False)
    scored = client.post("/v1/models/churn/predict.csv", content=csv, headers={"content-type": "text/csv",
                                                                                 "x-request-id": "batch-1"})
    assert scored.status_code == 200 and scored.headers["x-request-id"] == "batch-1"
    form = {k: str(v) for k, v in rows[0].items()}
    assert client.post("/ui/models/churn/predict", data=form, headers={"x-request-id": "ui-1"}).status_code == 200
    client.app.state.prediction_log.flush()  # type: ignore[attr-defined]
    log = read_prediction_log(registry.workspace, "churn")
    keys = list(zip(log["request_id"], log["row"], strict=True))
    assert (server_id, 0) in keys and (server_id, 1) in keys and ("order-17:a", 0) in keys
    batch = log[log["request_id"] == "batch-1"]
    assert batch["row"].tolist() == list(range(10))  # numbered across the CSV's chunks of 4
    assert log.loc[log["request_id"] == "ui-1", "source"].tolist() == ["ui"]
    assert not log.duplicated(["request_id", "row"]).any()
    labels = pd.DataFrame({"request_id": ["batch-1", "batch-1"], "row": [9, 10], "label": ["yes", "no"]})
    result = record_feedback(registry.workspace, "churn", labels)
    assert result.accepted == 1 and result.unknown_ids[0]["row"] == 10


def test_a_bad_client_id_is_refused_before_any_work(small_chunks: TestClient, rows: list[dict[str, Any]],
                                                     registry: Registry) -> None:
    for bad in ("x" * 129, "has space", "-leading", "semi;colon", "ünï"):
        answer = small_chunks.post("/v1/models/churn/predict", json={"rows": rows[:1]},
                                   headers={"X-Request-ID": bad.encode()})
        assert answer.status_code == 400, bad
        assert "X-Request-ID" in answer.json()["detail"] and "1 to 128 characters" in answer.json()["detail"]
    small_chunks.app.state.prediction_log.flush()  # type: ignore[attr-defined]
    assert read_prediction_log(registry.workspace, "churn").empty


def test_feedback_route_reports_every_label(small_chunks: TestClient, registry: Registry,
                                            rows: list[dict[str, Any]]) -> None:
    client = small_chunks
    one = client.post("/v1/models/churn/predict", json={"rows": rows[:1]}).json()["request_id"]
    two = client.post("/v1/models/churn/predict", json={"rows": rows[:2]}).json()["request_id"]
    answer = client.post("/v1/models/churn/feedback", json=[
        {"request_id": one, "label": "yes"},
        {"request_id": two, "label": "no", "row": 1},
        {"request_id": two, "label": "no"},  # two rows: which?
        {"request_id": "never-made", "label": "no"},
        {"request_id": one, "label": "no"},  # a second label for the same row
        {"request_id": one, "label": "maybe"},
    ])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == 2
    assert [u["request_id"] for u in body["unknown_ids"]] == [two, "never-made"]
    assert "has 2 rows" in body["unknown_ids"][0]["reason"]
    assert [d["request_id"] for d in body["duplicates"]] == [one]
    assert body["wrong_type"][0]["label"] == "maybe" and body["counts"]["wrong_type"] == 1
    again = client.post("/v1/models/churn/feedback", json=[{"request_id": two, "row": 0, "label": 3.5}]).json()
    assert again["accepted"] == 0 and "not one of the model's classes ('no', 'yes')" in again["wrong_type"][0]["reason"]
    assert client.post("/v1/models/churn/feedback", json=[{"request_id": one}]).status_code == 422
    assert client.post("/v1/models/churn/feedback", json={"request_id": one}).status_code == 400
    oversize = client.post("/v1/models/churn/feedback", json=[{"request_id": one, "label": "no"}] * 7)
    assert oversize.status_code == 413 and "limit is 6" in oversize.json()["detail"]
    assert client.post("/v1/models/nope/feedback", json=[{"request_id": one, "label": "no"}]).status_code == 404
    events = registry.list_events(name="churn", kind="feedback")
    assert [e["payload"]["accepted"] for e in events] == [2, 0]
