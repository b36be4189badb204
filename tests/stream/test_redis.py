"""The stream consumer on Redis Streams: layout, micro-batching, hot swap, a dead consumer's entries."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis._parsers.encoders import Encoder

from mlpilot.registry import Registry, Workspace
from mlpilot.stream import RedisTransport
from mlpilot.stream._redis import _chunks, _pack
from tests.stream.conftest import Running, topic, wait_for


@pytest.fixture
def client(redis_brokers: str) -> Iterator[redis.Redis]:
    host, port = redis_brokers.split(":")
    with redis.Redis(host=host, port=int(port)) as conn:
        yield conn


def _read(client: redis.Redis, stream: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    def entries() -> list[Any]:
        found = client.xrange(stream)
        return found if len(found) >= n else []

    return [(i.decode(), json.loads(f[b"data"])) for i, f in wait_for(entries, what=f"{n} entries on {stream}")]


@pytest.mark.parametrize("pipeline", [1, 2])
def test_round_trip_layout_and_dead_letters(
    client: redis.Redis, redis_brokers: str, start_consumer: Callable[..., Running], churn_rows: list[dict[str, Any]],
    pipeline: int,
) -> None:
    source, sink = topic(), topic()
    ids = [client.xadd(source, {"data": json.dumps(r)}).decode() for r in churn_rows[:3]]
    bad = client.xadd(source, {"data": "[1, 2"}).decode()
    missing = client.xadd(source, {"data": json.dumps({"state": "KS"})}).decode()
    no_data = client.xadd(source, {"row": json.dumps(churn_rows[0])}).decode()
    running = start_consumer(transport="redis", brokers=redis_brokers, input=source, output=sink, pipeline=pipeline)
    outputs = _read(client, sink, 3)
    dead = {d["key"]: d for _, d in _read(client, f"{source}.dlq", 3)}
    stats = running.stop()
    assert [o["key"] for _, o in outputs] == ids  # the input entry id, in order
    assert [o["request_id"] for _, o in outputs] == [f"{source}:{i}" for i in ids]
    assert all(o["prediction"] in ("yes", "no") and o["model"] == "churn" for _, o in outputs)
    assert dead[bad]["reason"] == "not_json" and dead[bad]["payload"] == "[1, 2"
    assert dead[missing]["reason"] == "schema" and "account_length" in dead[missing]["error"]
    assert dead[no_data]["reason"] == "invalid" and "'data'" in dead[no_data]["error"]
    assert stats.consumed == 6 and stats.produced == 3 and stats.dead_lettered == 3
    group = client.xinfo_groups(source)[0]
    assert group["pending"] == 0  # every entry acknowledged


def test_micro_batches_by_size_then_by_wait(
    client: redis.Redis, redis_brokers: str, start_consumer: Callable[..., Running], churn_rows: list[dict[str, Any]],
) -> None:
    source, sink = topic(), topic()
    for r in churn_rows[:45]:
        client.xadd(source, {"data": json.dumps(r)})
    running = start_consumer(transport="redis", brokers=redis_brokers, input=source, output=sink, batch=20,
                             max_wait_ms=300)
    _read(client, sink, 45)
    stats = running.stop()
    # 20 + 20 by size; the last 5 go when the wait after their first message is over
    assert stats.batches == 3 and stats.consumed == 45
    assert running.consumer.metrics.render().count("mlpilot_stream_batch_duration_seconds_count 3") == 1


@pytest.mark.parametrize("pipeline", [1, 2])
def test_hot_swap_between_batches_when_champion_moves(
    client: redis.Redis, redis_brokers: str, start_consumer: Callable[..., Running], churn_rows: list[dict[str, Any]],
    stream_workspace: Workspace, pipeline: int,
) -> None:
    source, sink = topic(), topic()
    registry = Registry(stream_workspace)
    running = start_consumer(transport="redis", brokers=redis_brokers, input=source, output=sink,
                             poll_interval=0.05, pipeline=pipeline)
    try:
        for r in churn_rows[:5]:
            client.xadd(source, {"data": json.dumps(r)})
        first = _read(client, sink, 5)
        registry.set_alias("churn", "champion", 2)
        wait_for(lambda: running.consumer.models.swaps >= 1, what="the cache to swap in version 2")
        for r in churn_rows[:5]:
            client.xadd(source, {"data": json.dumps(r)})
        records = _read(client, sink, 10)
    finally:
        registry.set_alias("churn", "champion", 1)
    stats = running.stop()
    assert {o["version"] for _, o in first} == {1}
    assert [o["version"] for _, o in records[5:]] == [2] * 5
    assert stats.versions == (1, 2) and stats.swaps == 1
    # the versions differ (C=1 vs C=0.01): version 2 scored with its own model
    assert [o["probability_yes"] for _, o in records[:5]] != [o["probability_yes"] for _, o in records[5:]]


def test_entries_of_a_dead_consumer_are_taken_over(
    client: redis.Redis, redis_brokers: str, start_consumer: Callable[..., Running], churn_rows: list[dict[str, Any]],
) -> None:
    source, sink = topic(), topic()
    group = f"g-{source}"
    for r in churn_rows[:8]:
        client.xadd(source, {"data": json.dumps(r)})
    dead = RedisTransport(redis_brokers, source, sink, f"{source}.dlq", group, consumer="died", claim_idle_ms=200)
    taken = dead.poll(5, 0.5)  # read, never acknowledged: the consumer "died" holding them
    assert len(taken) == 5
    running = start_consumer(transport="redis", brokers=redis_brokers, input=source, output=sink, group=group,
                             claim_idle_ms=200)
    records = _read(client, sink, 8)
    running.stop()
    assert sorted(o["request_id"] for _, o in records) == sorted(f"{source}:{i.decode()}" for i, _ in
                                                                   client.xrange(source))
    assert client.xinfo_groups(source)[0]["pending"] == 0
    dead.close()


def test_records_are_appended_in_order_across_script_calls_and_a_refusal_acknowledges_nothing(
    client: redis.Redis, redis_brokers: str,
) -> None:
    from mlpilot.exceptions import SourceConnectionError
    from mlpilot.stream._redis import _CHUNK
    from mlpilot.stream._transport import Record

    source, sink = topic(), topic()
    transport = RedisTransport(redis_brokers, source, sink, f"{source}.dlq", f"g-{source}")
    try:
        n = _CHUNK + 7  # two script calls on the output stream
        transport.confirm(transport.send([Record(str(i), b'{"i": %d}' % i) for i in range(n)],
                                         [Record("d", b'{"dead": true}')]))
        assert [json.loads(f[b"data"])["i"] for _, f in client.xrange(sink)] == list(range(n))
        assert client.xlen(f"{source}.dlq") == 1
        client.xadd(source, {"data": b"{}"})
        taken = wait_for(lambda: transport.poll(5, 0.5), what="the input entry")
        client.delete(sink)
        client.set(sink, "not a stream")  # XADD to it is refused (WRONGTYPE)
        delivery = transport.send([Record(m.key, b"{}") for m in taken], [])
        with pytest.raises(SourceConnectionError, match="WRONGTYPE"):
            transport.confirm(delivery)
        assert client.xpending(source, f"g-{source}")["pending"] == 1  # not acknowledged: consumed again
    finally:
        transport.close()


def test_one_script_call_appends_then_acknowledges_and_a_refusal_acknowledges_nothing(
    client: redis.Redis, redis_brokers: str,
) -> None:
    from mlpilot.exceptions import SourceConnectionError
    from mlpilot.stream._transport import Record

    source, sink = topic(), topic()
    group = f"g-{source}"
    transport = RedisTransport(redis_brokers, source, sink, f"{source}.dlq", group)
    try:
        for i in range(3):
            client.xadd(source, {"data": b'{"i": %d}' % i})
        taken = wait_for(lambda: transport.poll(3, 0.5), what="the input entries")
        delivery = transport.send([Record(m.key, b"{}") for m in taken[:2]], [Record(taken[2].key, b"{}")], taken)
        transport.confirm(delivery)
        assert delivery.acknowledged and delivery.pending == 0
        assert client.xlen(sink) == 2 and client.xlen(f"{source}.dlq") == 1
        assert client.xpending(source, group)["pending"] == 0  # acknowledged by the same call
        client.xadd(source, {"data": b"{}"})
        taken = wait_for(lambda: transport.poll(5, 0.5), what="the next entry")
        client.delete(sink)
        client.set(sink, "not a stream")
        delivery = transport.send([Record(m.key, b"{}") for m in taken], [], taken)
        assert not delivery.acknowledged
        with pytest.raises(SourceConnectionError, match="WRONGTYPE"):
            transport.confirm(delivery)
        assert client.xpending(source, group)["pending"] == 1  # not acknowledged: consumed again
    finally:
        transport.close()


def test_a_full_read_reads_the_next_batch_ahead_and_close_hands_back_what_was_not_scored(
    client: redis.Redis, redis_brokers: str,
) -> None:
    from mlpilot.stream._transport import Record

    source, sink = topic(), topic()
    group = f"g-{source}"
    for i in range(25):
        client.xadd(source, {"data": b'{"i": %d}' % i})
    transport = RedisTransport(redis_brokers, source, sink, f"{source}.dlq", group, claim_idle_ms=60_000)
    first = transport.poll(10, 0.5)
    assert len(first) == 10 and transport._ahead is not None  # the input is behind: the next read is on its way
    assert client.xpending(source, group)["pending"] == 20  # read ahead: pending with this consumer, not acked
    second = transport.poll(10, 0.5)
    transport.confirm(transport.send([Record(m.key, b"{}") for m in first + second], [], first + second))
    assert [m.value for m in first + second] == [b'{"i": %d}' % i for i in range(20)]
    transport.close()  # the third batch (5 entries) was read ahead and never scored: handed back
    pending = client.xpending_range(source, group, "-", "+", 10)
    assert len(pending) == 5 and all(p["time_since_delivered"] >= 60_000 for p in pending)
    other = RedisTransport(redis_brokers, source, sink, f"{source}.dlq", group, consumer="other",
                           claim_idle_ms=60_000)
    try:
        claimed = other.poll(10, 0.5)  # claimable at once, though the idle time to claim is a minute
        assert [m.value for m in claimed] == [b'{"i": %d}' % i for i in range(20, 25)]
    finally:
        other.close()


def test_a_batch_sent_while_reading_ahead_is_confirmed_later_and_a_refusal_still_acknowledges_nothing(
    client: redis.Redis, redis_brokers: str,
) -> None:
    from mlpilot.exceptions import SourceConnectionError
    from mlpilot.stream._transport import Record

    source, sink = topic(), topic()
    group = f"g-{source}"
    for i in range(30):
        client.xadd(source, {"data": b'{"i": %d}' % i})
    transport = RedisTransport(redis_brokers, source, sink, f"{source}.dlq", group)
    try:
        first = transport.poll(10, 0.5)
        client.script_flush()  # the server forgot the script: the deferred call runs it again, once
        delivery = transport.send([Record(m.key, b"{}") for m in first], [], first)
        assert delivery.pending > 0 and not delivery.acknowledged  # its reply is read by confirm
        transport.confirm(delivery)
        assert delivery.pending == 0 and delivery.acknowledged and client.xlen(sink) == 10
        second = transport.poll(10, 0.5)
        client.delete(sink)
        client.set(sink, "not a stream")
        delivery = transport.send([Record(m.key, b"{}") for m in second], [], second)
        with pytest.raises(SourceConnectionError, match="WRONGTYPE"):
            transport.confirm(delivery)
        assert not delivery.acknowledged
        pending = {p["message_id"] for p in client.xpending_range(source, group, "-", "+", 100)}
        assert {m.handle for m in second} <= pending and not {m.handle for m in first} & pending
    finally:
        transport.close()


@pytest.mark.parametrize("body", [
    [b'{"key":"1-0"}', b"x\r\ny", b"", b"\x00\xff", b"1796234882157-0"],
    [],
])
def test_a_batch_script_call_is_packed_as_redis_py_packs_it(body: list[bytes]) -> None:
    head: list[str | int] = ["EVALSHA", "0123abcd", 3, "out", "out.dlq", "ünput", "group", len(body), 0]
    assert _pack(head, body) == b"".join(redis.connection.PythonRespSerializer(1000, Encoder("utf-8", "strict", False).encode)
                                         .pack(*head, *body))
    assert _pack(head, ["text"]) is None  # not bytes: left to redis-py


@pytest.mark.parametrize(("n_out", "n_dead"), [(0, 0), (3, 0), (0, 2), (1000, 0), (999, 2), (1000, 1), (2500, 700)])
def test_records_are_cut_into_script_calls_in_order(n_out: int, n_dead: int) -> None:
    outputs = [b"o%d" % i for i in range(n_out)]
    dead = [b"d%d" % i for i in range(n_dead)]
    chunks = _chunks(outputs, dead)
    assert len(chunks) == max(1, -(-(n_out + n_dead) // 1000))
    assert all(len(o) + len(d) <= 1000 for o, d in chunks)
    assert [v for o, _ in chunks for v in o] == outputs and [v for _, d in chunks for v in d] == dead
    # each call holds a stretch of the records in order: outputs first, then dead letters
    assert [v for o, d in chunks for v in [*o, *d]] == [*outputs, *dead]
