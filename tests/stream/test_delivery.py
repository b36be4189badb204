"""At-least-once across a SIGKILL of a real `mlpilot stream` process, and a graceful SIGTERM shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from mlpilot.registry import Registry, Workspace
from mlpilot.stream import StreamConsumer, make_transport, stream_config
from tests.stream._kafka import TopicReader, committed, create_topics, produce
from tests.stream.conftest import KAFKA_OPTIONS, topic, wait_for

BATCH = 5


def test_kill_9_then_restart_loses_nothing_and_sigterm_finishes_the_batch(
    kafka_brokers: str, churn_rows: list[dict[str, Any]], stream_workspace: Workspace,
) -> None:
    source, sink = topic(), topic()
    group = f"g-{source}"
    create_topics(kafka_brokers, source, sink, f"{source}.dlq")
    produce(kafka_brokers, source, [(f"a{i}", json.dumps(churn_rows[i])) for i in range(200)])
    reader = TopicReader(kafka_brokers, sink)
    options = [arg for key, value in KAFKA_OPTIONS.items() for arg in ("--option", f"{key}={value}")]
    killed = subprocess.Popen(
        [sys.executable, "-m", "mlpilot", "stream", "churn", "--brokers", kafka_brokers, "--input", source,
         "--output", sink, "--group", group, "--batch", str(BATCH), "--max-wait-ms", "5",
         "-w", str(stream_workspace.root), *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        reader.read(20, timeout=90)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.read() if killed.stderr else ""
    produce(kafka_brokers, source, [(f"b{i}", json.dumps(churn_rows[i])) for i in range(100)])

    # The restart, in this process's main thread, so that a real SIGTERM reaches its handler.
    config = stream_config(name="churn", brokers=kafka_brokers, input=source, output=sink, group=group,
                           batch=BATCH, max_wait_ms=5, options=KAFKA_OPTIONS)
    restarted = StreamConsumer(config, make_transport(config), Registry(stream_workspace))
    wanted = {f"{source}:0:{offset}" for offset in range(300)}

    def terminate_when_done() -> None:
        wait_for(lambda: wanted <= {r["request_id"] for r in reader.read(0, timeout=0.2)}, timeout=60,
                 what="an output for every input")
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=terminate_when_done, daemon=True)
    watcher.start()
    previous = signal.getsignal(signal.SIGTERM)
    stats = restarted.run()  # returns (rather than dying) on SIGTERM
    watcher.join(5)
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is put back
    ids = [r["request_id"] for r in reader.records]
    assert wanted <= set(ids)
    # At most the batches in flight at the kill are repeated (the one sent and the one whose asynchronous
    # commit was on its way), and their copies carry the same request_id.
    assert len(ids) - len(set(ids)) <= 2 * BATCH
    assert stats.consumed >= 100 and stats.dead_lettered == 0
    # Everything the restarted consumer took was committed before it returned: the group is at the end.
    assert committed(kafka_brokers, group, source) == 300
    reader.close()
