"""The Kafka transport (confluent-kafka, which carries librdkafka in its wheel).

Offsets are committed by hand: once every delivery report of a batch's
outputs and dead letters came back without error, the consumer commits the
offset after the last message of each partition in the batch, asynchronously
(the next batch is not held up by the round trip). A consumer killed before
that commit reached the broker leaves the batch uncommitted; the group hands
it out again. `close` commits the last offsets synchronously.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Mapping
from itertools import repeat
from typing import Any

from mlpilot.exceptions import SourceConnectionError
from mlpilot.stream._transport import Delivery, Message, Record, addressed, host_port, import_client

logger = logging.getLogger(__name__)

_HANDLE = operator.itemgetter(3)  # a `Message`'s handle: (topic, partition, offset)
_PARTITION, _OFFSET = operator.itemgetter(0, 1), operator.itemgetter(2)

#: Consumer settings unless the caller overrides them (``options``).
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    # A fetch returns within 10 ms when nothing arrives (librdkafka waits up to 500 ms by default, and
    # brokers that do not answer a fetch as soon as data comes hold a lone message that long).
    "fetch.wait.max.ms": 10,
    # Small requests leave at once (TCP_NODELAY): with Nagle on, a commit or lag query queued behind a
    # fetch the broker holds waits for the peer's delayed ACK.
    "socket.nagle.disable": True,
}
#: Producer settings unless the caller overrides them (``linger.ms`` 0: a lone output leaves at once;
#: a batch's records still travel together, as they are all queued before the sender thread wakes).
#: ``delivery.report.only.error``: librdkafka reports only the records it could not deliver, so a batch
#: costs no Python callback per record; `KafkaTransport.confirm` waits for the queue to empty instead.
PRODUCER_DEFAULTS: dict[str, Any] = {"acks": "all", "linger.ms": 0, "socket.nagle.disable": True,
                                     "delivery.report.only.error": True}
_PRODUCER_KEYS = frozenset({"acks", "linger.ms", "compression.type", "batch.size", "message.max.bytes",
                            "enable.idempotence", "retries", "delivery.timeout.ms"})


class KafkaTransport:
    """Consume ``input`` in group ``group``; produce outputs to ``output`` and dead letters to ``dlq``.

    Parameters
    ----------
    brokers : str
        ``HOST:PORT`` of a bootstrap broker (a comma-separated list works too).
    input, output, dlq : str
        Topic names.
    group : str
        Consumer group id: processes with the same group split the partitions.
    options : mapping, optional
        librdkafka settings (``session.timeout.ms``, ``security.protocol``, ...);
        producer settings among them go to the producer, the rest to both.
    delivery_timeout : float
        Seconds to wait for the broker to confirm a batch's records.
    """

    name = "kafka"

    def __init__(
        self,
        brokers: str,
        input: str,
        output: str,
        dlq: str,
        group: str,
        *,
        options: Mapping[str, Any] | None = None,
        delivery_timeout: float = 30.0,
    ) -> None:
        kafka = import_client("confluent_kafka", "confluent-kafka", "Streaming from Kafka")
        for part in brokers.split(","):
            host_port(part, 9092)
        self._kafka = kafka
        self.input, self.output, self.dlq = input, output, dlq
        self.delivery_timeout = delivery_timeout
        extra = dict(options or {})
        producer_extra = {k: v for k, v in extra.items() if k in _PRODUCER_KEYS}
        shared = {k: v for k, v in extra.items() if k not in _PRODUCER_KEYS and not _consumer_only(k)}
        consumer_conf = {"bootstrap.servers": brokers, "group.id": group, **CONSUMER_DEFAULTS,
                         **{k: v for k, v in extra.items() if k not in _PRODUCER_KEYS},
                         "on_commit": _committed}
        producer_conf = {"bootstrap.servers": brokers, **PRODUCER_DEFAULTS, **shared, **producer_extra,
                         "on_delivery": self._delivered}
        #: The batch whose records are on their way (one at a time: `confirm` comes before the next `send`).
        self._delivery = Delivery()
        try:
            self._consumer = kafka.Consumer(consumer_conf, logger=logger)
            self._producer = kafka.Producer(producer_conf, logger=logger)
        except kafka.KafkaException as exc:
            raise SourceConnectionError(f"Kafka client settings were refused: {exc}") from None
        self._check_reachable(brokers)
        #: Partitions of the input this consumer holds now (updated on each rebalance).
        self.partitions: frozenset[int] = frozenset()
        self._consumer.subscribe([input], on_assign=self._assigned, on_revoke=self._revoked,
                                 on_lost=self._revoked)
        #: The offsets acknowledged last, per (topic, partition): `close` commits them synchronously.
        self._acknowledged: dict[tuple[str, int], int] = {}

    def _assigned(self, _consumer: Any, partitions: list[Any]) -> None:
        self.partitions = self.partitions | {tp.partition for tp in partitions}
        logger.info("kafka: assigned partitions %s of %s", sorted(self.partitions), self.input)

    def _revoked(self, _consumer: Any, partitions: list[Any]) -> None:
        self.partitions = self.partitions - {tp.partition for tp in partitions}

    def _check_reachable(self, brokers: str) -> None:
        try:
            topics = self._consumer.list_topics(timeout=10).topics
        except self._kafka.KafkaException as exc:
            raise SourceConnectionError(
                f"Kafka brokers at {brokers} cannot be reached ({exc}); check --brokers and that the broker is up."
            ) from None
        if self.input not in topics:
            logger.warning("topic %r does not exist yet on %s; waiting for it", self.input, brokers)

    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        raw = [first]
        if max_messages > 1:
            raw.extend(self._consumer.consume(max_messages - 1, 0))
        fast = _plain_messages(raw, self.input)
        if fast is not None:
            return fast
        out: list[Message] = []
        append, new, topic = out.append, tuple.__new__, self.input  # the one topic subscribed to
        for msg in raw:
            error = msg.error()
            if error is not None:
                if error.code() != self._kafka.KafkaError._PARTITION_EOF:
                    logger.warning("kafka consumer: %s", error)
                continue
            key, partition, offset = msg.key(), msg.partition(), msg.offset()
            # key, value, request id, handle; made in C (tuple.__new__), not by Message's own __new__
            append(new(Message, (key.decode("utf-8", "replace") if isinstance(key, bytes) else key, msg.value(),
                                 f"{topic}:{partition}:{offset}", (topic, partition, offset))))
        return out

    def _delivered(self, err: Any, _msg: Any) -> None:
        """The producer's delivery report: with ``delivery.report.only.error`` only refusals come here."""
        if err is not None:
            self._delivery.failures.append(str(err))

    def send(self, outputs: list[Record], dead_letters: list[Record],
             messages: list[Message] | None = None) -> Delivery:
        """Queue the batch's records (no callback per record); `confirm` waits until the queue is empty.

        The consumer confirms a batch before it sends the next, so the queue holds one batch's records.
        ``messages`` are not acknowledged here (offsets are committed by `acknowledge`, after `confirm`).
        """
        delivery = self._delivery = Delivery(len(outputs) + len(dead_letters))
        produce = self._producer.produce
        for topic, (key, value) in addressed(outputs, dead_letters, self.output, self.dlq):
            try:
                produce(topic, value, key)
            except BufferError:  # the local queue is full: let deliveries drain it, then queue the record
                self._queue_when_room(topic, value, key)
        self._producer.poll(0)
        return delivery

    def _queue_when_room(self, topic: str, value: bytes, key: str | None) -> None:
        while True:
            self._producer.poll(0.05)
            try:
                self._producer.produce(topic, value, key)
                return
            except BufferError:
                continue

    def confirm(self, delivery: Delivery) -> None:
        deadline = time.monotonic() + self.delivery_timeout
        # Wait for every record's outcome, refusals included, so the queue is empty when the next batch is
        # sent (and a batch that failed is reported whole, not from its first refusal).
        while delivery.pending > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # the records not yet delivered, or delivered with a report still to serve (refusals only)
            delivery.pending = self._producer.flush(min(left, 0.1))
        if delivery.pending or delivery.failures:
            raise SourceConnectionError(
                f"Kafka did not confirm {delivery.pending + len(delivery.failures)} record(s) within "
                f"{self.delivery_timeout:g} s ({'; '.join(delivery.failures[:3]) or 'timed out'}); "
                "nothing of this batch was committed, so it will be consumed again."
            )

    def acknowledge(self, messages: list[Message]) -> None:
        last: dict[tuple[str, int], int] = {}
        handles = list(map(_HANDLE, messages))
        partitions = set(map(_PARTITION, handles))
        if len(partitions) == 1:  # the usual batch, from one partition: its highest offset, found in C
            last[partitions.pop()] = max(map(_OFFSET, handles))
        else:
            for topic, partition, offset in handles:
                if offset > last.get((topic, partition), -1):
                    last[(topic, partition)] = offset
        if not last:
            return
        self._acknowledged.update(last)
        self._commit(last, asynchronous=True)

    def _commit(self, last: dict[tuple[str, int], int], *, asynchronous: bool) -> None:
        offsets = [self._kafka.TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except self._kafka.KafkaException as exc:
            # A partition revoked in a rebalance: its new owner consumes these messages again.
            logger.warning("kafka commit refused (%s); the group will hand these messages out again", exc)

    def lag(self) -> int | None:
        if not self.partitions:
            return None
        assigned = [self._kafka.TopicPartition(self.input, p) for p in sorted(self.partitions)]
        total = 0
        for tp in self._consumer.position(assigned):
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                total += max(0, high - tp.offset)
        return total

    def close(self) -> None:
        started = time.monotonic()
        try:
            self._producer.flush(5)
            held = {k: o for k, o in self._acknowledged.items() if k[1] in self.partitions}
            if held:  # the asynchronous commits made final
                self._commit(held, asynchronous=False)
            self._consumer.close()
        except (RuntimeError, self._kafka.KafkaException) as exc:
            logger.warning("closing the kafka consumer: %s", exc)
        logger.info("kafka transport closed in %.2f s", time.monotonic() - started)


def _plain_messages(raw: list[Any], topic: str) -> list[Message] | None:
    """`KafkaTransport.poll`'s messages when none is an error and every key is bytes, in C-level passes.

    Each accessor is mapped over the batch (``Message.key`` and the others are C methods), instead of
    five Python-level calls per message. ``None`` otherwise: `poll` then goes message by message.
    """
    kind = type(raw[0])
    if set(map(type, raw)) != {kind} or list(map(kind.error, raw)).count(None) != len(raw):
        return None
    keys = list(map(kind.key, raw))
    if set(map(type, keys)) != {bytes}:
        return None
    partitions, offsets = list(map(kind.partition, raw)), list(map(kind.offset, raw))
    texts = map(bytes.decode, keys, repeat("utf-8"), repeat("replace"))
    request_ids = map((topic.replace("{", "{{").replace("}", "}}") + ":{}:{}").format, partitions, offsets)
    # key, value, request id, handle; made in C (tuple.__new__), not by Message's own __new__
    return list(map(tuple.__new__, repeat(Message),
                    zip(texts, map(kind.value, raw), request_ids, zip(repeat(topic), partitions, offsets), strict=True)))


def _committed(err: Any, partitions: list[Any]) -> None:
    """An asynchronous commit's answer: only a refusal is worth a line (its messages will be consumed again)."""
    if err is not None:
        logger.warning("kafka commit refused (%s); the group will hand these messages out again", err)


def _consumer_only(key: str) -> bool:
    return key.startswith(("session.", "heartbeat.", "group.", "auto.", "enable.auto", "max.poll", "fetch.",
                           "partition.assignment", "isolation."))


__all__ = ["CONSUMER_DEFAULTS", "PRODUCER_DEFAULTS", "KafkaTransport"]
