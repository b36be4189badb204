"""A real uvicorn server on 127.0.0.1: hot swap under load, and the log across restarts."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pandas as pd
import pytest

from mlpilot.monitor import read_prediction_log
from mlpilot.registry import ModelVersion, Registry
from mlpilot.serve import ServeSettings, create_app
from tests.serve.conftest import fit_churn_pipeline, register_churn, running_server


def _hammer(url: str, rows: list[dict[str, Any]], stop: threading.Event, results: list[Any]) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = http.post("/v1/models/churn/predict", json={"rows": rows})
                results.append((response.status_code, response.json().get("version"), sent, time.monotonic()))
            except Exception as exc:  # a dropped connection counts as a failure
                results.append((type(exc).__name__, None, sent, time.monotonic()))


def _wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_hot_swap_under_concurrent_requests(
    registry: Registry, churn_model: ModelVersion, churn_frame: pd.DataFrame, rows: list[dict[str, Any]]
) -> None:
    settings = ServeSettings(home=registry.workspace.root, poll_interval=0.1)
    app = create_app(settings, registry=registry)
    v2 = register_churn(registry, churn_frame, fit_churn_pipeline(churn_frame, C=0.05), aliases=())
    with running_server(app) as url:
        results: list[Any] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_hammer, args=(url, rows, stop, results)) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            _wait_for(lambda: len(results) > 50)
            registry.set_alias("churn", "champion", v2.version)
            _wait_for(lambda: any(r[1] == 2 for r in results[-20:]))
            n_after = len(results)
            _wait_for(lambda: len(results) > n_after + 50)

            # A version whose artifact was tampered with is never swapped in.
            v3 = register_churn(registry, churn_frame, fit_churn_pipeline(churn_frame, C=0.2), aliases=())
            v3.artifact_path.write_bytes(v3.artifact_path.read_bytes() + b"tampered")
            registry.set_alias("churn", "champion", v3.version)
            _wait_for(lambda: app.state.models.load_failures >= 1)
            n_bad = len(results)
            _wait_for(lambda: len(results) > n_bad + 50)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        statuses = Counter(r[0] for r in results)
        assert statuses == Counter({200: len(results)}), statuses
        versions = [r[1] for r in results]
        first_v2 = versions.index(2)
        assert set(versions[:first_v2]) == {1}
        assert 3 not in versions
        # Once one answer came from version 2 the swap is done: every request sent after it is answered
        # by version 2 (requests in flight at the moment of the swap may finish on version 1, however late).
        swapped = results[first_v2][3]
        after = [r[1] for r in results if r[2] > swapped]
        assert len(after) > 50 and set(after) == {2}
        metrics = httpx.get(f"{url}/metrics").text
        assert "mlpilot_model_swaps_total 1" in metrics
        assert "mlpilot_model_load_failures_total 1" in metrics


def test_prediction_log_survives_a_restart(registry: Registry, churn_model: ModelVersion, rows: list[dict[str, Any]]) -> None:
    settings = ServeSettings(home=registry.workspace.root, log_flush_interval=0.05)
    for round_ in range(2):
        with running_server(create_app(settings, registry=registry)) as url, httpx.Client(base_url=url) as http:
            for i in range(3):
                batch = [dict(r, account_length=1000 * round_ + i) for r in rows[:2]]
                assert http.post("/v1/models/churn/predict", json={"rows": batch}).status_code == 200
        # The server has stopped: everything it accepted is on disk.
        log = read_prediction_log(registry.workspace, "churn")
        assert len(log) == 6 * (round_ + 1)
    assert sorted(set(log["account_length"])) == [0, 1, 2, 1000, 1001, 1002]
    assert log["timestamp"].is_monotonic_increasing
    assert (log["latency_ms"] > 0).all()
    directory = registry.workspace.logs_dir / "predictions" / "churn"  # each server's segment, compacted at exit
    assert not list(directory.glob("*.jsonl")) and len(list(directory.glob("date=*/*.parquet"))) == 2


@pytest.mark.parametrize("fast_path", [True, False])
def test_concurrent_clients_each_get_their_own_rows(
    registry: Registry, churn_model: ModelVersion, churn_frame: pd.DataFrame, fast_path: bool
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mlpilot.runtime import load_version

    features = churn_frame.drop(columns=["churn"]).head(120)
    expected = load_version(registry, churn_model).model.predict(features).tolist()
    records = features.to_dict("records")
    settings = ServeSettings(home=registry.workspace.root, prediction_log=False, fast_path=fast_path)
    app = create_app(settings, registry=registry)
    with running_server(app) as url, httpx.Client(base_url=url, limits=httpx.Limits(max_connections=16)) as http:

        def send(i: int) -> bool:
            k = 1 + i % 3
            answer = http.post("/v1/models/churn/predict", json={"rows": records[i : i + k]}).json()
            return bool(answer["predictions"] == expected[i : i + k])

        with ThreadPoolExecutor(16) as pool:
            assert all(pool.map(send, range(118)))
    # compiled models score small requests on the event loop; the others go through the batcher
    assert app.state.batcher.batched_requests == (0 if fast_path else 118)
