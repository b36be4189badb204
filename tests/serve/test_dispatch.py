"""Which small requests a compiled model scores on the event loop: what fits the budget, measured at load."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime import _dispatch, load_version
from mlpilot.runtime._compile import CompiledModel
from mlpilot.serve import ServeSettings, create_app
from tests.serve.conftest import TestClient


class _Burner(CompiledModel):
    """A compiled model that spends ``fixed + per_row * n`` seconds of CPU per call."""

    def __init__(self, fixed: float, per_row: float) -> None:
        self.fixed, self.per_row = fixed, per_row

    def predict(self, table: Any, n_rows: int) -> tuple[np.ndarray, None]:
        end = time.thread_time() + self.fixed + self.per_row * n_rows
        while time.thread_time() < end:
            pass
        return np.zeros(n_rows), None


@pytest.mark.parametrize(("fixed", "per_row", "expected"), [
    (0.0, 0.0, 64),  # free: every small request on the loop
    (1e-3, 0.0, 0),  # one row alone is over the budget: all to the threads
    (20e-6, 10e-6, range(15, 24)),  # about (250 - 30) / 10 rows fit
])
def test_the_rows_that_fit_the_budget_go_on_the_event_loop(fixed: float, per_row: float, expected: Any) -> None:
    rows, evidence = _dispatch.inline_rows(_Burner(fixed, per_row), [{"x": 1.0}])
    assert rows in expected if isinstance(expected, range) else rows == expected, evidence
    assert "µs CPU" in evidence and ("event loop" in evidence) == (rows > 0)


def test_a_library_member_always_goes_to_the_threads() -> None:
    burner = _Burner(0.0, 0.0)
    burner.inline = False
    assert _dispatch.inline_rows(burner, [{"x": 1.0}])[0] == 0


def test_a_costly_model_is_scored_in_worker_threads_with_the_same_answers(
    registry: Registry, churn_model: ModelVersion, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    cheap = load_version(registry, churn_model)
    assert cheap.compiled is not None and cheap.compiled.inline_rows > len(rows), cheap.dispatch
    monkeypatch.setattr(_dispatch, "INLINE_BUDGET_SECONDS", 0.0)  # as if it cost more than any budget
    answers = {}
    for label in ("costly", "general"):
        settings = ServeSettings(home=registry.workspace.root, prediction_log=False, fast_path=label == "costly")
        app = create_app(settings, registry=registry)
        with TestClient(app) as client:
            answers[label] = client.post("/v1/models/churn/predict", json={"rows": rows}).json()
            answers[label].pop("request_id")
            selected = client.get("/v1/models/churn").json()["selected"]
        assert app.state.batcher.batched_requests == 1  # not on the event loop
        if label == "costly":  # compiled, and scored by the compiled model in the worker thread
            assert selected["fast_path"].startswith("compiled") and "scored in worker threads" in selected["dispatch"]
    assert answers["costly"] == answers["general"]
