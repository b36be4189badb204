"""The stream consumer against a real Kafka-protocol broker: round trip, dead letters, metrics, groups."""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlpilot.exceptions import SourceConnectionError
from mlpilot.monitor import read_prediction_log
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version, score
from mlpilot.stream import KafkaTransport
from mlpilot.stream._transport import Record
from tests.stream._kafka import TopicReader, create_topics, produce
from tests.stream.conftest import BROKER_PROCESSES, Running, free_port, topic, wait_for


def _expected(workspace: Workspace, rows: list[dict[str, Any]]) -> list[Any]:
    registry = Registry(workspace)
    loaded = load_version(registry, registry.get_version("churn:1"), fast_path=False)
    return score(loaded, pd.DataFrame(rows))[0]


@pytest.mark.parametrize("pipeline", [1, 2])
def test_round_trip_dead_letters_log_and_metrics(
    kafka_brokers: str, start_consumer: Callable[..., Running], churn_rows: list[dict[str, Any]],
    stream_workspace: Workspace, pipeline: int,
) -> None:
    source, sink = topic(), topic()
    create_topics(kafka_brokers, source, sink, f"{source}.dlq")
    rows = churn_rows[:6]
    missing = {k: v for k, v in rows[0].items() if k != "state"}
    wrong = {**rows[0], "account_length": "long"}
    produce(kafka_brokers, source, [
        *[(f"k{i}", json.dumps(r)) for i, r in enumerate(rows[:4])],
        ("multi", json.dumps({"rows": rows[4:6]})),
        ("bad-json", b"{not json"),
        ("missing", json.dumps(missing)),
        ("wrong", json.dumps(wrong)),
        ("huge", json.dumps({**rows[0], "pad": "x" * 5000})),
        ("mixed", json.dumps({"rows": [rows[0], wrong]})),
    ])
    port = free_port()
    running = start_consumer(brokers=kafka_brokers, input=source, output=sink, batch=100, max_wait_ms=50,
                             metrics_port=port, max_message_bytes=4096, pipeline=pipeline)
    out = TopicReader(kafka_brokers, sink)
    dlq = TopicReader(kafka_brokers, f"{source}.dlq")
    outputs = out.read(7)
    dead = dlq.read(5)
    def scrape() -> str:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return text if "mlpilot_stream_lag 0" in text else ""  # the lag is asked for once a second

    metrics = wait_for(scrape, what="the lag in /metrics")
    stats = running.stop()

    by_key = {o["key"]: o for o in outputs if o.get("row") is None}
    expected = _expected(stream_workspace, [*rows, rows[0]])
    assert [by_key[f"k{i}"]["prediction"] for i in range(4)] == expected[:4]
    multi = sorted((o for o in outputs if o["key"] == "multi"), key=lambda o: o["row"])
    assert [o["prediction"] for o in multi] == expected[4:6]
    assert multi[0]["request_id"].endswith(":0") and multi[1]["request_id"].endswith(":1")
    assert {o["version"] for o in outputs} == {1} and {o["model"] for o in outputs} == {"churn"}
    assert all(abs(o["probability_no"] + o["probability_yes"] - 1) < 1e-6 for o in outputs)
    assert all(o["key"] == k for o, k in zip(outputs, out.keys, strict=True))  # the Kafka key, kept
    good_mixed = [o for o in outputs if o["key"] == "mixed"]
    assert [(o["row"], o["prediction"]) for o in good_mixed] == [(0, expected[6])]
    assert len(outputs) == 7 and len({o["request_id"] for o in outputs}) == 7

    reasons = {d["key"]: d for d in dead}
    assert reasons["bad-json"]["reason"] == "not_json" and reasons["bad-json"]["payload"] == "{not json"
    assert "not valid JSON" in reasons["bad-json"]["error"]
    assert reasons["missing"]["reason"] == "schema" and "state" in reasons["missing"]["error"]
    assert json.loads(reasons["missing"]["payload"]) == missing
    assert reasons["wrong"]["problems"][0]["field"] == "account_length"
    assert reasons["huge"]["reason"] == "oversize" and "4096" in reasons["huge"]["error"]
    assert reasons["mixed"]["row"] == 1 and "Row 1 of the message" in reasons["mixed"]["error"]

    assert stats.consumed == 10 and stats.produced == 7 and stats.dead_lettered == 5
    assert "mlpilot_stream_consumed_total 10" in metrics
    assert 'mlpilot_stream_produced_total{model="churn",version="1"} 7' in metrics
    assert 'mlpilot_stream_dead_letters_total{reason="schema"} 3' in metrics
    assert "mlpilot_stream_batch_duration_seconds_count" in metrics

    log = read_prediction_log(stream_workspace, "churn")
    log = log[log["request_id"].str.startswith(source)]
    assert set(log["source"]) == {"stream"}
    assert sorted(log["request_id"]) == sorted(o["request_id"] for o in outputs)
    out.close()
    dlq.close()


def test_two_consumers_in_one_group_split_partitions_and_survive_one_stopping(
    kafka_brokers: str, start_consumer: Callable[..., Running], churn_rows: list[dict[str, Any]],
) -> None:
    source, sink = topic(), topic()
    create_topics(kafka_brokers, source, partitions=2)
    create_topics(kafka_brokers, sink, f"{source}.dlq")
    settings = {"brokers": kafka_brokers, "input": source, "output": sink, "group": f"g-{source}", "batch": 20}
    first, second = start_consumer(**settings), start_consumer(**settings)
    reader = TopicReader(kafka_brokers, sink)
    wait_for(lambda: first.consumer.transport.partitions and second.consumer.transport.partitions,
             what="both consumers to get partitions")
    produce(kafka_brokers, source, [(f"k{i}", json.dumps(churn_rows[i])) for i in range(60)])
    reader.read(60)
    # A batch is counted once its outputs are confirmed, which may come just after they are readable.
    wait_for(lambda: first.consumer.metrics.consumed + second.consumer.metrics.consumed >= 60,
             what="both consumers to count the 60 messages")
    a, b = first.consumer.metrics.consumed, second.consumer.metrics.consumed
    assert a > 0 and b > 0 and a + b == 60  # the partitions were split
    first.stop()
    produce(kafka_brokers, source, [(f"n{i}", json.dumps(churn_rows[i])) for i in range(40)])
    records = reader.read(100)
    assert {r["key"] for r in records} == {f"k{i}" for i in range(60)} | {f"n{i}" for i in range(40)}
    assert second.stop().consumed == b + 40
    reader.close()


def _stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is stopped (state T in /proc)."""
    tasks = Path(f"/proc/{pid}/task")
    states = [(task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in tasks.iterdir()]
    return bool(states) and all(state in ("T", "t") for state in states)


def test_records_the_broker_never_confirms_fail_the_batch_and_a_later_batch_is_confirmed(
    kafka_brokers: str, churn_rows: list[dict[str, Any]],
) -> None:
    """Only refused records are reported (``delivery.report.only.error``): a batch whose records time out
    while the broker is paused is not confirmed; once it answers again, the next batch is."""
    source, sink = topic(), topic()
    create_topics(kafka_brokers, source, sink, f"{source}.dlq")
    transport = KafkaTransport(kafka_brokers, source, sink, f"{source}.dlq", f"g-{source}",
                               options={"delivery.timeout.ms": 1000, "request.timeout.ms": 500}, delivery_timeout=20)
    broker = BROKER_PROCESSES[kafka_brokers]
    try:
        transport.confirm(transport.send([Record("ok", b'{"i": 0}')], []))  # connected, delivered
        broker.send_signal(signal.SIGSTOP)
        try:
            # the records go out only once every broker thread is stopped (a thread still running could answer)
            wait_for(lambda: _stopped(broker.pid), timeout=10, what="the broker's threads to stop")
            delivery = transport.send([Record(str(i), b'{"i": %d}' % i) for i in range(3)], [Record("d", b"{}")])
            with pytest.raises(SourceConnectionError, match=r"did not confirm 4 record\(s\)"):
                transport.confirm(delivery)
            assert len(delivery.failures) == 4 and delivery.pending == 0
        finally:
            broker.send_signal(signal.SIGCONT)
        later = transport.send([Record("after", b'{"i": 9}')], [])
        transport.confirm(later)  # the failures of the batch before are not this one's
        assert later.pending == 0 and not later.failures
        reader = TopicReader(kafka_brokers, sink)  # (the timed-out records may have reached it too)
        wait_for(lambda: 9 in [r["i"] for r in reader.read(0, timeout=0.2)], what="the later batch's record")
        reader.close()
    finally:
        transport.close()
