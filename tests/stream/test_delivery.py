"""At-least-once across a SIGKILL of a real `mlpilot stream` process (Kafka and Redis), and a graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

from mlpilot.registry import Registry, Workspace
from mlpilot.stream import StreamConsumer, StreamStats, make_transport, stream_config
from tests.stream._kafka import TopicReader, committed, create_topics, produce
from tests.stream.conftest import KAFKA_OPTIONS, topic, wait_for

BATCH = 5


def _stream_process(workspace: Workspace, *args: str) -> subprocess.Popen[bytes]:
    """A real `mlpilot stream churn` process with these arguments."""
    return subprocess.Popen(
        [sys.executable, "-m", "mlpilot", "stream", "churn", "--batch", str(BATCH), "--max-wait-ms", "5",
         "-w", str(workspace.root), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def _kill_when(proc: subprocess.Popen[bytes], started: Callable[[], Any]) -> None:
    """SIGKILL ``proc`` once ``started()`` is true (it has scored some messages)."""
    try:
        wait_for(started, timeout=90, what="the first outputs of the process to kill")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""


def _run_until_sigterm(consumer: StreamConsumer, done: Callable[[], bool]) -> StreamStats:
    """Run ``consumer`` in this (the main) thread, so that a real SIGTERM reaches its handler once ``done()``."""

    def terminate_when_done() -> None:
        wait_for(done, timeout=60, what="an output for every input")
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=terminate_when_done, daemon=True)
    watcher.start()
    previous = signal.getsignal(signal.SIGTERM)
    stats = consumer.run()  # returns (rather than dying) on SIGTERM
    watcher.join(5)
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is put back
    return stats


@pytest.mark.parametrize("pipeline", [1, 2])
def test_kill_9_then_restart_loses_nothing_and_sigterm_finishes_the_batch(
    kafka_brokers: str, churn_rows: list[dict[str, Any]], stream_workspace: Workspace, pipeline: int,
) -> None:
    source, sink = topic(), topic()
    group = f"g-{source}"
    create_topics(kafka_brokers, source, sink, f"{source}.dlq")
    produce(kafka_brokers, source, [(f"a{i}", json.dumps(churn_rows[i])) for i in range(200)])
    reader = TopicReader(kafka_brokers, sink)
    options = [arg for key, value in KAFKA_OPTIONS.items() for arg in ("--option", f"{key}={value}")]
    killed = _stream_process(stream_workspace, "--brokers", kafka_brokers, "--input", source, "--output", sink,
                             "--group", group, "--pipeline", str(pipeline), *options)
    _kill_when(killed, lambda: len(reader.read(0, timeout=0.2)) >= 20)
    produce(kafka_brokers, source, [(f"b{i}", json.dumps(churn_rows[i])) for i in range(100)])

    config = stream_config(name="churn", brokers=kafka_brokers, input=source, output=sink, group=group,
                           batch=BATCH, max_wait_ms=5, pipeline=pipeline, options=KAFKA_OPTIONS)
    wanted = {f"{source}:0:{offset}" for offset in range(300)}
    stats = _run_until_sigterm(StreamConsumer(config, make_transport(config), Registry(stream_workspace)),
                               lambda: wanted <= {r["request_id"] for r in reader.read(0, timeout=0.2)})
    ids = [r["request_id"] for r in reader.records]
    assert wanted <= set(ids)
    # At most the batches in flight at the kill are repeated (the one sent and the one whose asynchronous
    # commit was on its way), and their copies carry the same request_id.
    assert len(ids) - len(set(ids)) <= 2 * BATCH
    assert stats.consumed >= 100 and stats.dead_lettered == 0
    # Everything the restarted consumer took was committed before it returned: the group is at the end.
    assert committed(kafka_brokers, group, source) == 300
    reader.close()


@pytest.mark.parametrize("pipeline", [1, 2])
def test_redis_kill_9_then_restart_loses_nothing(
    redis_brokers: str, churn_rows: list[dict[str, Any]], stream_workspace: Workspace, pipeline: int,
) -> None:
    source, sink = topic(), topic()
    group = f"g-{source}"
    host, port = redis_brokers.split(":")
    client = redis.Redis(host=host, port=int(port))
    ids = [client.xadd(source, {"data": json.dumps(churn_rows[i])}).decode() for i in range(200)]
    # small batches, so that the kill lands while most of the input is still to come: a batch is
    # acknowledged as soon as its outputs are confirmed, so one big batch could be all done and acked
    killed = _stream_process(stream_workspace, "--transport", "redis", "--brokers", redis_brokers,
                             "--input", source, "--output", sink, "--group", group, "--batch", str(BATCH),
                             "--pipeline", str(pipeline))
    _kill_when(killed, lambda: client.xlen(sink) >= 10)
    ids += [client.xadd(source, {"data": json.dumps(churn_rows[i])}).decode() for i in range(30)]
    # The kill may land between a batch's XACK and the next read; a reader that took entries and died
    # before acknowledging them (what a kill mid-batch leaves) makes sure some are pending in the group.
    client.xreadgroup(group, "killed-mid-batch", {source: ">"}, count=BATCH)
    # The dead consumers' entries stay pending: the restarted one (another name) claims them.
    assert int(client.xpending(source, group)["pending"]) > 0

    config = stream_config(name="churn", brokers=redis_brokers, input=source, output=sink, group=group,
                           transport="redis", batch=BATCH, max_wait_ms=5, claim_idle_ms=200,
                           pipeline=pipeline)
    wanted = {f"{source}:{i}" for i in ids}

    def answered() -> set[str]:
        return {json.loads(fields[b"data"])["request_id"] for _id, fields in client.xrange(sink)}

    def done() -> bool:  # every entry answered, and the claimed ones acknowledged too
        return wanted <= answered() and int(client.xpending(source, group)["pending"]) == 0

    stats = _run_until_sigterm(StreamConsumer(config, make_transport(config), Registry(stream_workspace)), done)
    outputs = [json.loads(fields[b"data"]) for _id, fields in client.xrange(sink)]
    request_ids = [o["request_id"] for o in outputs]
    assert wanted <= set(request_ids)
    assert all(o["key"] == o["request_id"].rpartition(":")[2] for o in outputs)  # the input entry id
    # XACK follows the batch's confirmed XADDs: at most the batch in flight at the kill is repeated.
    assert len(request_ids) - len(set(request_ids)) <= BATCH
    assert stats.consumed >= 30 and stats.dead_lettered == 0
    # Nothing is left pending: every entry was acknowledged after its output was written.
    assert int(client.xpending(source, group)["pending"]) == 0
    client.close()
