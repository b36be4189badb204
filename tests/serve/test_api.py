"""Model metadata, health, metrics, OpenAPI and the API key."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mlpilot.registry import Registry
from mlpilot.serve import ServeSettings, create_app
from tests.serve.conftest import TestClient


def test_list_and_show_models(client: TestClient) -> None:
    listing = client.get("/v1/models").json()["models"]
    assert [m["name"] for m in listing] == ["churn"]
    assert listing[0]["aliases"] == {"champion": 1}
    detail = client.get("/v1/models/churn").json()
    selected = detail["selected"]
    assert selected["task"] == "binary" and selected["classes"] == ["no", "yes"]
    features = {f["name"]: f for f in selected["features"]}
    assert "churn" not in features and "state" in features
    assert "KS" in features["state"]["categories"]
    assert features["total_day_minutes"]["dtype"] == "float"
    assert selected["model_card"]["intended_use"]
    assert selected["files"] == ["report.html"]
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/v1/models/bad%20name").status_code == 400


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 60  # generous: a busy machine loads slowly
    while (ready := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.json() == {"status": "ready", "models": {"churn@champion": 1}}


def test_metrics_count_requests_and_predictions(client: TestClient, rows: list[dict[str, Any]]) -> None:
    client.post("/v1/models/churn/predict", json={"rows": rows})
    client.post("/v1/models/churn/predict", json={"rows": []})
    client.post("/v1/models/ghost/predict", json={"rows": rows})
    text = client.get("/metrics").text
    assert 'mlpilot_http_requests_total{model="churn",route="/v1/models/{name}/predict",method="POST",status="200"} 1' in text
    assert 'status="400"} 1' in text
    assert 'mlpilot_predictions_total{model="churn",version="1"} 5' in text
    assert 'mlpilot_http_request_duration_seconds_bucket{model="churn",route="/v1/models/{name}/predict",le="+Inf"} 2' in text
    assert 'mlpilot_model_load_seconds{model="churn",version="1"}' in text
    assert "mlpilot_prediction_log_dropped_total 0" in text
    assert "ghost" not in text  # unknown names do not create label values


def test_openapi_has_the_model_schema(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    row = doc["components"]["schemas"]["churnRow"]
    assert row["properties"]["total_day_minutes"]["type"] == ["number", "null"]
    assert "KS" in row["properties"]["state"]["examples"]
    assert "state" in row["required"] and "churn" not in row["properties"]
    assert "/v1/models/churn/predict" in doc["paths"]
    assert "/v1/models/{name}/predict" in doc["paths"]
    assert client.get("/docs").status_code == 200


def test_api_key(registry: Registry, churn_model: Any, rows: list[dict[str, Any]]) -> None:
    settings = ServeSettings(home=registry.workspace.root, api_key="s3cret-key")
    with TestClient(create_app(settings, registry=registry)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code in (200, 503)
        denied = client.post("/v1/models/churn/predict", json={"rows": rows})
        assert denied.status_code == 401 and "Bearer" in denied.json()["detail"]
        assert "s3cret" not in denied.text
        wrong = client.post("/v1/models/churn/predict", json={"rows": rows}, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = client.post("/v1/models/churn/predict", json={"rows": rows}, headers={"authorization": "Bearer s3cret-key"})
        assert ok.status_code == 200
        assert client.get("/metrics").status_code == 401
        assert client.get("/openapi.json").status_code == 401
        page = client.get("/", headers={"accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert client.post("/login", data={"api_key": "nope"}).status_code == 401
        login = client.post("/login", data={"api_key": "s3cret-key"}, follow_redirects=False)
        assert login.status_code == 303
        assert client.get("/").status_code == 200  # the cookie now authorises the UI


@pytest.mark.parametrize("env", [{"MLPILOT_MAX_ROWS": "7", "MLPILOT_API_KEY": "k"}])
def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = ServeSettings()
    assert settings.max_rows == 7
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k"
    assert "k" not in repr(settings.api_key)


def test_prediction_log_receives_requests(client: TestClient, rows: list[dict[str, Any]], registry: Registry) -> None:
    from mlpilot.monitor import read_prediction_log

    client.post("/v1/models/churn/predict", json={"rows": rows})
    client.app.state.prediction_log.flush()  # type: ignore[attr-defined]
    log = read_prediction_log(registry.workspace, "churn")
    assert len(log) == 5
    assert log["state"].tolist() == [r["state"] for r in rows]
    assert set(log["version"]) == {1}
    assert set(log["probabilities"].iloc[0]) == {"no", "yes"}
    assert log["prediction"].tolist() == client.post("/v1/models/churn/predict", json={"rows": rows}).json()["predictions"]


def test_recommend_router_is_included_when_present(client: TestClient) -> None:
    import importlib.util

    present = importlib.util.find_spec("mlpilot.serve._recommend_routes") is not None
    paths = client.get("/openapi.json").json()["paths"]
    assert ("/v1/models/{name}/recommend" in paths) == present
