"""The micro-batching loop: consume, score with the champion, produce, confirm, acknowledge.

With ``pipeline=1`` one thread does the work, as a two-stage pipeline: batch
k's records are on their way to the broker while batch k+1 is collected and
scored (``pipeline=2``, the default, moves the scoring to a second thread: see
the end).

1. collect up to ``batch`` messages, waiting at most ``max_wait_ms`` after the
   first one arrived (size or wait, whichever comes first);
2. take the model the `ModelCache` serves now (its poller swaps in a new
   champion between batches, never within one);
3. score the batch (`score_messages`: outputs and dead letters);
4. wait for the broker's confirmation of the previous batch's records, then
   acknowledge that batch's inputs (commit offsets / ``XACK``), and hand its
   predictions to the prediction log's writer thread (``source="stream"``, one
   request id per row);
5. send this batch's records (not waiting for the broker), and go to 1; a
   transport whose send already has the broker's answer (Redis: the script's
   reply) has the batch finished (4) at once, before the next wait.

An input is acknowledged only after everything it produced was confirmed: a
kill repeats at most the batches whose records were sent but not yet
acknowledged (one, or two while an asynchronous Kafka commit is on its way),
and their outputs carry the same ``request_id`` the second time. When the input
is idle the batch in flight is finished at once. SIGTERM and SIGINT set a flag
read between steps: the batch in hand is finished and acknowledged, then the
loop ends.

With ``pipeline=2`` (``--pipeline 2``) the scoring of step 3 runs in a second
thread: batch k+1 is scored (NumPy and the model's predict release the GIL)
while this thread finishes batch k-1, sends batch k and collects batch k+2.
Everything else stays in this thread and in this order: batches are sent and
acknowledged in the order they were collected, batch k-1 is acknowledged
before batch k is sent (so the bound above on what a kill repeats is
unchanged), the model is taken for each batch when it is handed to the
scoring thread (a swap still falls between batches), and a stop finishes the
batch sent and then the one being scored. A kill also drops the batches
collected and not yet sent; they were never produced, so they are simply
consumed again.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlpilot._workspace import Workspace
from mlpilot.exceptions import InvalidParameterError
from mlpilot.monitor import PredictionLog
from mlpilot.registry import Registry
from mlpilot.runtime import LoadedModel, ModelCache
from mlpilot.runtime._collector import freeze_loaded, scoring_collector
from mlpilot.runtime._quality import flag_counts
from mlpilot.stream._config import StreamConfig
from mlpilot.stream._metrics import MetricsServer, StreamMetrics
from mlpilot.stream._scoring import Limits, ScoredBatch, score_messages
from mlpilot.stream._transport import Delivery, Message, Transport

logger = logging.getLogger(__name__)

# How long one poll waits while the input is idle (the stop flag is read between polls).
_IDLE_POLL = 0.2
# Seconds between two lag queries.
_LAG_INTERVAL = 1.0
# Kafka client settings of ``pipeline=2`` unless --option overrides them. ``linger.ms`` 2: a batch's records,
# sent while the next batch is scored, wait up to 2 ms to travel in fewer, larger requests (Tansu's CPU per
# 1,000 rows fell from ~7 to ~3.5 ms); a lone output does not wait, as the batch is confirmed at once
# (`KafkaTransport.confirm` flushes, which sends at once): batch-1 p50 6.1-6.7 ms with it, 6.0-6.2 ms
# without, under load. With ``pipeline=1`` it would wait (8.6-9.2 ms), so there the producer keeps 0.
_PIPELINED_KAFKA = {"linger.ms": 2}


@dataclass(frozen=True)
class _InFlight:
    """A batch whose records were sent and are not yet confirmed: what finishing it needs."""

    messages: list[Message]
    loaded: LoadedModel
    scored: ScoredBatch
    delivery: Delivery
    start: float  # when its scoring began (perf_counter)
    work: float  # seconds of scoring and sending (the latency logged per row)


@dataclass(frozen=True)
class _Ready:
    """A batch scored and not yet sent."""

    messages: list[Message]
    loaded: LoadedModel
    scored: ScoredBatch
    start: float


@dataclass(frozen=True)
class _Scoring:
    """A batch being scored in the pipeline's second thread (``pipeline=2``)."""

    messages: list[Message]
    loaded: LoadedModel
    start: float  # when it was handed to the scoring thread, idle then (perf_counter): its scoring began
    future: Future[ScoredBatch]

    def result(self) -> _Ready:
        return _Ready(self.messages, self.loaded, self.future.result(), self.start)


@dataclass(frozen=True)
class StreamStats:
    """What a stream consumer did before it stopped."""

    consumed: int
    produced: int
    dead_lettered: int
    batches: int
    swaps: int
    versions: tuple[int, ...]


class StreamConsumer:
    """Score the messages of one input with one model until stopped.

    Parameters
    ----------
    config : StreamConfig
    transport : Transport
        A connected broker transport (`KafkaTransport`, `RedisTransport`).
    registry : Registry
        Where the model's versions and its ``champion`` alias live.
    log : PredictionLog, optional
        Where scored rows are logged (default: the registry's workspace log).
    """

    def __init__(self, config: StreamConfig, transport: Transport, registry: Registry, *,
                 log: PredictionLog | None = None) -> None:
        self.config = config
        self.transport = transport
        self.registry = registry
        self.metrics = StreamMetrics()
        self.limits = Limits(config.max_message_bytes, config.max_rows_per_message)
        self.models = ModelCache(registry, poll_interval=config.poll_interval)
        self.log = log if log is not None else PredictionLog(registry.workspace)
        self._stop = threading.Event()
        self._versions: list[int] = []
        self._next_lag = 0.0
        self.metrics_server: MetricsServer | None = None

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, acknowledge it and return."""
        self._stop.set()

    def model(self) -> LoadedModel:
        loaded = self.models.get(self.config.name)
        if loaded.version.kind == "recommender" or not callable(getattr(loaded.model, "predict", None)):
            raise InvalidParameterError(
                f"Model {loaded.version.ref} is a {loaded.version.kind} model and does not predict rows; "
                "only tabular models can score a stream."
            )
        return loaded

    def run(self, *, freeze_gc: bool = False) -> StreamStats:
        """Consume until `stop` (or SIGTERM/SIGINT in the main thread); return what was done.

        With ``freeze_gc`` (what `mlpilot stream` does: the process is the consumer's alone), everything
        alive once the model is loaded is moved out of the garbage collector's sight (`gc.freeze`).
        """
        self.model()  # an unknown model fails here, before anything is consumed
        with scoring_collector() if freeze_gc else contextlib.nullcontext():
            if freeze_gc:
                # What is loaded now (the model, the libraries) lives as long as the process: out of the
                # cyclic collector's sight, so that the collections a batch's many small objects set off stay
                # short (a full collection over the model's objects cost ~10 ms per 1,000-row batch). At the
                # default threshold (700) a batch's objects (freed by their reference counts) still set off
                # ~14 young collections per 1,000-row batch, ~2.5 ms of CPU; `scoring_collector`'s threshold
                # leaves a 20-batch run with none (`runtime/_collector.py`).
                freeze_loaded()
            self.log.start()
            self.models.start(preload=False)
            if self.config.metrics_port is not None:
                self.metrics_server = MetricsServer(self.metrics, self.config.metrics_port,
                                                    self.config.metrics_host)
            try:
                with _stop_on_signals(self.stop):
                    self._loop()
            finally:
                self.models.stop()
                self.transport.close()
                self.log.close()
                if self.metrics_server is not None:
                    self.metrics_server.close()
        return self.stats()

    def _loop(self) -> None:
        if self.config.pipeline == 2:
            self._loop_pipelined()
            return
        in_flight: _InFlight | None = None
        try:
            while not self._stop.is_set():
                messages = self._collect()
                scored = self._score(messages) if messages else None
                if in_flight is not None:
                    self._finish(in_flight)
                    in_flight = None
                if scored is not None:
                    in_flight = self._send(messages, *scored)
                    if in_flight.delivery.pending == 0:  # confirmed by the send itself (Redis): finish it now,
                        self._finish(in_flight)  # not when the next message has arrived and waits on it
                        in_flight = None
                else:
                    self._update_lag()
        finally:
            if in_flight is not None:
                self._finish(in_flight)

    def _loop_pipelined(self) -> None:
        """``pipeline=2``: batch k+1 is scored in a second thread while batch k is sent and k-1 finished.

        Only the scoring (`score_messages`) leaves this thread, and with it only the batch's messages and the
        model taken here: the transport, the log and the metrics stay with this thread. Batches are sent and
        finished in the order they were collected, and batch k-1 is finished (confirmed, then acknowledged)
        before batch k is sent, so at most one batch's records are ever sent and not yet acknowledged, as
        with ``pipeline=1``.
        """
        in_flight: _InFlight | None = None
        scoring: _Scoring | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="mlpilot-stream-score") as scorer:
            try:
                while not self._stop.is_set():
                    messages = self._collect(scoring.future if scoring is not None else None)
                    ready, scoring = (scoring.result() if scoring is not None else None), None
                    if messages:  # scored in the other thread while `ready` is sent and the batch before finished
                        loaded = self._take_model()
                        scoring = _Scoring(messages, loaded, time.perf_counter(),
                                           scorer.submit(score_messages, loaded, messages, self.limits))
                    if in_flight is not None:
                        batch, in_flight = in_flight, None
                        self._finish(batch)
                    if ready is not None:
                        in_flight = self._send(ready.messages, ready.loaded, ready.scored, ready.start)
                        if in_flight.delivery.pending == 0 or scoring is None:  # confirmed by the send (Redis),
                            batch, in_flight = in_flight, None  # or nothing else to wait on: finish it now
                            self._finish(batch)
                    elif scoring is None:
                        self._update_lag()
            except BaseException:
                # An error: the batch already sent is finished (if it was not the one that failed); the one
                # being scored is not sent, so its inputs stay unacknowledged and are consumed again.
                if in_flight is not None:
                    self._finish(in_flight)
                raise
            # Stopped: what is in hand is finished in order, the batch being scored last.
            if in_flight is not None:
                self._finish(in_flight)
            if scoring is not None:
                ready = scoring.result()
                self._finish(self._send(ready.messages, ready.loaded, ready.scored, ready.start))

    def stats(self) -> StreamStats:
        m = self.metrics
        return StreamStats(m.consumed, m.produced, m.dead_lettered, m.batches, m.swaps, tuple(self._versions))

    def _collect(self, busy: Future[Any] | None = None) -> list[Message]:
        """The next batch; while ``busy`` (a batch being scored) the wait ends once it is scored.

        With a batch being scored the first poll does not wait, so that a batch the input has no successor for
        yet is sent as soon as it is scored.
        """
        size = self.config.batch
        messages = self.transport.poll(size, _IDLE_POLL if busy is None else 0)
        if not messages:
            return messages
        deadline = time.monotonic() + self.config.max_wait_ms / 1000
        while len(messages) < size and not self._stop.is_set() and not (busy is not None and busy.done()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            messages.extend(self.transport.poll(size - len(messages), remaining))
        return messages

    def _score(self, messages: list[Message]) -> tuple[LoadedModel, ScoredBatch, float]:
        start = time.perf_counter()
        loaded = self._take_model()
        return loaded, score_messages(loaded, messages, self.limits), start

    def _take_model(self) -> LoadedModel:
        """The model the next batch is scored with (a swap counts here, between batches)."""
        loaded = self.model()
        version = loaded.version.version
        if not self._versions or self._versions[-1] != version:
            if self._versions:
                self.metrics.swaps += 1
                logger.info("stream: %s now scores with version %d", loaded.name, version)
            self._versions.append(version)
        return loaded

    def _send(self, messages: list[Message], loaded: LoadedModel, scored: ScoredBatch, start: float) -> _InFlight:
        delivery = self.transport.send(scored.outputs, scored.dead_letters, messages)
        return _InFlight(messages, loaded, scored, delivery, start, time.perf_counter() - start)

    def _finish(self, batch: _InFlight) -> None:
        """Confirm the batch's records, acknowledge its inputs, log and count it."""
        self.transport.confirm(batch.delivery)
        if not batch.delivery.acknowledged:  # Redis acknowledges with the send's script
            self.transport.acknowledge(batch.messages)
        loaded, scored = batch.loaded, batch.scored
        version = loaded.version.version
        per_row_ms = batch.work * 1000 / max(1, len(scored.outputs))
        for entry in scored.log_entries:
            self.log.log(loaded.name, version, entry.inputs, entry.predictions, per_row_ms * len(entry.predictions),
                         probabilities=entry.probabilities, warnings=entry.flags, request_ids=entry.request_ids,
                         source="stream")
        self.metrics.count_batch(len(batch.messages), time.perf_counter() - batch.start, loaded.name, version,
                                 len(scored.outputs), scored.reasons,
                                 flag_counts(scored.warnings) if scored.warnings else {})
        self._update_lag()  # after the counts: a scrape that sees the lag fall sees the batch counted

    def _update_lag(self) -> None:
        """Ask the broker for the lag at most every `_LAG_INTERVAL` seconds (not once per batch of one).

        Called after a batch is finished and while the input is idle, never with a batch in flight.
        """
        now = time.monotonic()
        if now >= self._next_lag:
            self.metrics.lag = self.transport.lag()
            self._next_lag = now + _LAG_INTERVAL


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call ``stop`` while inside (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        logger.info("stream: %s received; finishing the batch in hand", signal.Signals(signum).name)
        stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def make_transport(config: StreamConfig) -> Transport:
    """The transport ``config.transport`` names, connected."""
    if config.transport == "redis":
        from mlpilot.stream._redis import RedisTransport

        return RedisTransport(config.brokers, config.input, config.output, config.dead_letter_topic,
                              config.group_id, claim_idle_ms=config.claim_idle_ms)
    from mlpilot.stream._kafka import KafkaTransport

    options = {**_PIPELINED_KAFKA, **config.options} if config.pipeline == 2 else config.options
    return KafkaTransport(config.brokers, config.input, config.output, config.dead_letter_topic, config.group_id,
                          options=options)


def open_consumer(config: StreamConfig, workspace: Workspace | None = None) -> StreamConsumer:
    """A `StreamConsumer` for ``config`` on the workspace's registry (checked before connecting)."""
    registry = Registry(workspace if workspace is not None else Workspace.from_env())
    registry.get_version(config.name)  # an unknown model: a clear error before any broker is contacted
    return StreamConsumer(config, make_transport(config), registry)


__all__ = ["StreamConsumer", "StreamStats", "make_transport", "open_consumer"]
