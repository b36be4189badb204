"""``pipeline=2``: the next batch is scored in a second thread, and the delivery contract is unchanged.

Real brokers; a recording transport around the real one holds or refuses one batch's confirmation.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any

import pytest
import redis

from mlpilot.exceptions import SourceConnectionError
from mlpilot.registry import Registry, Workspace
from mlpilot.stream import StreamConsumer, make_transport, stream_config
from mlpilot.stream._transport import Delivery, Message, Record, Transport
from tests.stream._kafka import TopicReader, committed, create_topics, produce
from tests.stream.conftest import KAFKA_OPTIONS, Running, topic, wait_for

BATCH = 5


class Recording:
    """A real transport, with every batch's send, confirmation and acknowledgement noted in order.

    The ``hold``-th batch sent (0-based) waits in `confirm` until `release`; the ``refuse``-th is refused
    (a failure noted on its `Delivery` before the real confirmation, as a broker's refusal would be).
    """

    def __init__(self, inner: Transport, *, hold: int | None = None, refuse: int | None = None) -> None:
        self.inner, self.name = inner, inner.name
        self.hold, self.refuse = hold, refuse
        self.holding, self.released = threading.Event(), threading.Event()
        self.polled: list[Message] = []
        self.sent: list[list[Message]] = []
        self.events: list[tuple[str, int]] = []
        self._batch_of: dict[int, int] = {}

    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        messages = self.inner.poll(max_messages, timeout)
        self.polled.extend(messages)
        return messages

    def send(self, outputs: list[Record], dead_letters: list[Record],
             messages: list[Message] | None = None) -> Delivery:
        assert messages is not None
        k = len(self.sent)
        self.sent.append(messages)
        self.events.append(("send", k))
        delivery = self.inner.send(outputs, dead_letters, messages)
        self._batch_of[id(delivery)] = k
        return delivery

    def confirm(self, delivery: Delivery) -> None:
        k = self._batch_of[id(delivery)]
        if k == self.hold:
            self.holding.set()
            assert self.released.wait(60)
        if k == self.refuse:
            delivery.failures.append("refused by the test")
        self.inner.confirm(delivery)
        self.events.append(("confirm", k))

    def acknowledge(self, messages: list[Message]) -> None:
        k = next(i for i, sent in enumerate(self.sent) if sent is messages)
        self.events.append(("ack", k))
        self.inner.acknowledge(messages)

    def lag(self) -> int | None:
        return self.inner.lag()

    def close(self) -> None:
        self.inner.close()

    def sent_offsets(self, k: int) -> list[int]:
        return [m.handle[2] for m in self.sent[k]]


def _assert_contract(events: list[tuple[str, int]]) -> None:
    """Each batch acknowledged after its confirmation, in order, and the next sent only after it is acknowledged."""
    acks = [k for what, k in events if what == "ack"]
    assert acks == sorted(acks)
    for what, k in events:
        if what == "ack":
            assert events.index(("confirm", k)) < events.index(("ack", k))
        if what == "send" and k > 0:
            assert events.index(("ack", k - 1)) < events.index(("send", k))


def _kafka_consumer(brokers: str, workspace: Workspace, source: str, sink: str, **recording: Any,
                    ) -> tuple[StreamConsumer, Recording]:
    config = stream_config(name="churn", brokers=brokers, input=source, output=sink, group=f"g-{source}",
                           batch=BATCH, max_wait_ms=5, pipeline=2, options=KAFKA_OPTIONS)
    transport = Recording(make_transport(config), **recording)
    return StreamConsumer(config, transport, Registry(workspace)), transport


def test_pipelined_round_trip_keeps_the_order_of_each_partition_and_dead_letters(
    kafka_brokers: str, churn_rows: list[dict[str, Any]], stream_workspace: Workspace,
) -> None:
    source, sink = topic(), topic()
    create_topics(kafka_brokers, source, sink, f"{source}.dlq", partitions=3)
    messages = [(f"k{i % 9}", b"{not json" if i % 13 == 0 else json.dumps(churn_rows[i % 50])) for i in range(300)]
    produce(kafka_brokers, source, messages)
    consumer, transport = _kafka_consumer(kafka_brokers, stream_workspace, source, sink)
    running = Running(consumer)
    out, dlq = TopicReader(kafka_brokers, sink, partitions=3), TopicReader(kafka_brokers, f"{source}.dlq", partitions=3)
    n_bad = sum(1 for _, v in messages if v == b"{not json")
    outputs, dead = out.read(300 - n_bad, timeout=90), dlq.read(n_bad, timeout=30)
    wait_for(lambda: sum(map(len, transport.sent)) >= 300, what="every input sent")
    stats = running.stop()
    assert stats.consumed == 300 and stats.produced == 300 - n_bad and stats.dead_lettered == n_bad
    assert len({o["request_id"] for o in outputs}) == 300 - n_bad  # no duplicate without a kill
    assert {d["reason"] for d in dead} == {"not_json"} and len(dead) == n_bad
    # One key lives on one partition: its outputs come in the order of its inputs' offsets.
    by_key: dict[str, list[int]] = defaultdict(list)
    for o, key in zip(outputs, out.keys, strict=True):
        assert o["key"] == key
        by_key[key].append(int(o["request_id"].rpartition(":")[2]))
    assert len(by_key) == 9 and all(offsets == sorted(offsets) for offsets in by_key.values())
    _assert_contract(transport.events)
    assert [k for what, k in transport.events if what == "ack"] == list(range(len(transport.sent)))
    out.close()
    dlq.close()


def test_commits_never_pass_a_batch_whose_outputs_are_not_confirmed_and_a_stop_finishes_those_in_flight(
    kafka_brokers: str, churn_rows: list[dict[str, Any]], stream_workspace: Workspace,
) -> None:
    source, sink = topic(), topic()
    create_topics(kafka_brokers, source, sink, f"{source}.dlq")
    produce(kafka_brokers, source, [(f"k{i}", json.dumps(churn_rows[i])) for i in range(200)])
    consumer, transport = _kafka_consumer(kafka_brokers, stream_workspace, source, sink, hold=1)
    running = Running(consumer)
    assert transport.holding.wait(60)
    # Batch 1's confirmation is held: batch 0 only is acknowledged, batch 2 waits scored and unsent,
    # and batch 3 is with the scoring thread.
    wait_for(lambda: len(transport.polled) >= sum(map(len, transport.sent)) + 2, what="the next batches polled")
    assert len(transport.sent) == 2
    assert [e for e in transport.events if e[0] == "ack"] == [("ack", 0)]
    assert committed(kafka_brokers, f"g-{source}", source) <= transport.sent_offsets(1)[0]

    running.consumer.stop()  # the stop arrives with batches in flight: they are finished, not dropped
    transport.released.set()
    stats = running.stop()
    polled = [m.request_id for m in transport.polled]
    assert sorted(m.request_id for batch in transport.sent for m in batch) == sorted(polled)
    assert len(transport.sent) >= 4 and stats.consumed == len(polled)
    _assert_contract(transport.events)
    assert committed(kafka_brokers, f"g-{source}", source) == len(polled)  # offsets 0..n-1, all committed
    reader = TopicReader(kafka_brokers, sink)
    assert sorted(o["request_id"] for o in reader.read(len(polled))) == sorted(polled)
    reader.close()


def test_a_refused_batch_stops_the_run_and_nothing_from_it_on_is_committed(
    kafka_brokers: str, churn_rows: list[dict[str, Any]], stream_workspace: Workspace,
) -> None:
    source, sink = topic(), topic()
    create_topics(kafka_brokers, source, sink, f"{source}.dlq")
    produce(kafka_brokers, source, [(f"k{i}", json.dumps(churn_rows[i])) for i in range(200)])
    consumer, transport = _kafka_consumer(kafka_brokers, stream_workspace, source, sink, refuse=2)
    running = Running(consumer)
    running.thread.join(60)
    with pytest.raises(SourceConnectionError, match="refused by the test"):
        running.stop()
    # Batches 0 and 1 committed (at close), batch 2 not; batch 3, scored meanwhile, was never sent.
    assert len(transport.sent) == 3
    assert [k for what, k in transport.events if what == "ack"] == [0, 1]
    assert committed(kafka_brokers, f"g-{source}", source) == transport.sent_offsets(2)[0]
    assert len(transport.polled) > sum(map(len, transport.sent))


def test_pipelined_redis_round_trip_in_entry_order_with_dead_letters(
    redis_brokers: str, churn_rows: list[dict[str, Any]], stream_workspace: Workspace,
) -> None:
    source, sink = topic(), topic()
    host, port = redis_brokers.split(":")
    client = redis.Redis(host=host, port=int(port))
    ids = [client.xadd(source, {"data": "[1, 2" if i % 11 == 0 else json.dumps(churn_rows[i % 50])}).decode()
           for i in range(200)]
    bad = {ids[i] for i in range(0, 200, 11)}
    config = stream_config(name="churn", brokers=redis_brokers, input=source, output=sink, transport="redis",
                           batch=BATCH, max_wait_ms=5, pipeline=2)
    transport = Recording(make_transport(config))
    running = Running(StreamConsumer(config, transport, Registry(stream_workspace)))
    wait_for(lambda: client.xlen(sink) + client.xlen(f"{source}.dlq") >= 200, timeout=90, what="every answer")
    stats = running.stop()
    outputs = [json.loads(f[b"data"]) for _, f in client.xrange(sink)]
    dead = [json.loads(f[b"data"]) for _, f in client.xrange(f"{source}.dlq")]
    assert [o["key"] for o in outputs] == [i for i in ids if i not in bad]  # in entry order, once each
    assert sorted(d["key"] for d in dead) == sorted(bad) and {d["reason"] for d in dead} == {"not_json"}
    assert stats.consumed == 200 and stats.dead_lettered == len(bad)
    assert int(client.xpending(source, config.group_id)["pending"]) == 0
    sends = [k for what, k in transport.events if what == "send"]
    assert sends == list(range(len(transport.sent)))
    client.close()
