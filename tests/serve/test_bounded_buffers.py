"""Many requests leave the server's buffers bounded: a stalled prediction log drops (and counts) beyond its queue."""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlpilot.registry import Registry
from mlpilot.serve import ServeSettings, create_app
from tests.serve.conftest import TestClient, register_churn


def test_requests_beyond_a_stalled_log_queue_are_dropped_and_counted(
    registry: Registry, churn_frame: pd.DataFrame, churn_pipeline: Pipeline, rows: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register_churn(registry, churn_frame, churn_pipeline)
    app = create_app(ServeSettings(home=registry.workspace.root, log_queue_size=8, log_flush_interval=0.01),
                     registry=registry)
    log = app.state.prediction_log
    release, held = threading.Event(), threading.Event()
    in_hand: list[int] = []
    write = log._write

    def stalled(entries: list[Any]) -> None:  # the writer takes one batch, then waits (a slow disk)
        in_hand.append(len(entries))
        held.set()
        release.wait(30)
        write(entries)

    monkeypatch.setattr(log, "_write", stalled)
    n = 20
    with TestClient(app) as client:
        assert client.post("/v1/models/churn/predict", json={"rows": rows[:1]}).status_code == 200
        assert held.wait(10)
        for i in range(n - 1):
            assert client.post("/v1/models/churn/predict", json={"rows": rows[i % 5: i % 5 + 1]}).status_code == 200
        metrics = client.get("/metrics").text
        loaded = len(app.state.models.loaded())
        release.set()
        log.flush()
    assert log.pending == 0 and sum(in_hand) + log.dropped == n  # every request written or counted as dropped
    assert log.dropped == n - in_hand[0] - 8  # the queue held its 8, no more
    assert f"mlpilot_prediction_log_dropped_total {log.dropped}\n" in metrics
    assert "mlpilot_prediction_log_queue 8\n" in metrics
    assert loaded == 1 and len(app.state.batcher._pending) == 0
