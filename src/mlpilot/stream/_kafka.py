"""The Kafka transport (confluent-kafka, which carries librdkafka in its wheel).

Offsets are stored and committed by hand: after a batch's outputs and dead
letters are confirmed by the broker (``flush`` and every delivery report
without error), the consumer commits, synchronously, the offset after the last
message of each partition in the batch. A consumer killed before that commit
leaves the batch uncommitted; the group hands it out again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from mlpilot.exceptions import SourceConnectionError
from mlpilot.stream._transport import Message, Record, host_port, import_client

logger = logging.getLogger(__name__)

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
}
#: Producer settings unless the caller overrides them.
PRODUCER_DEFAULTS: dict[str, Any] = {"acks": "all", "linger.ms": 1}
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
                         **{k: v for k, v in extra.items() if k not in _PRODUCER_KEYS}}
        producer_conf = {"bootstrap.servers": brokers, **PRODUCER_DEFAULTS, **shared, **producer_extra}
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
        self._failures: list[str] = []

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
        out = []
        for msg in raw:
            error = msg.error()
            if error is not None:
                if error.code() != self._kafka.KafkaError._PARTITION_EOF:
                    logger.warning("kafka consumer: %s", error)
                continue
            key = msg.key()
            out.append(Message(
                key=key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
                value=msg.value(),
                request_id=f"{msg.topic()}:{msg.partition()}:{msg.offset()}",
                handle=(msg.topic(), msg.partition(), msg.offset()),
            ))
        return out

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failures.append(str(err))

    def produce(self, outputs: list[Record], dead_letters: list[Record]) -> None:
        self._failures = []
        for topic, records in ((self.output, outputs), (self.dlq, dead_letters)):
            for record in records:
                self._produce_one(topic, record)
        remaining = self._producer.flush(self.delivery_timeout)
        if remaining or self._failures:
            raise SourceConnectionError(
                f"Kafka did not confirm {remaining + len(self._failures)} record(s) within "
                f"{self.delivery_timeout:g} s ({'; '.join(self._failures[:3]) or 'timed out'}); "
                "nothing of this batch was committed, so it will be consumed again."
            )

    def _produce_one(self, topic: str, record: Record) -> None:
        while True:
            try:
                self._producer.produce(topic, value=record.value.encode(), key=record.key, on_delivery=self._delivered)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.05)

    def acknowledge(self, messages: list[Message]) -> None:
        last: dict[tuple[str, int], int] = {}
        for message in messages:
            topic, partition, offset = message.handle
            last[(topic, partition)] = max(offset, last.get((topic, partition), -1))
        if not last:
            return
        offsets = [self._kafka.TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
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
            self._consumer.close()
        except (RuntimeError, self._kafka.KafkaException) as exc:
            logger.warning("closing the kafka consumer: %s", exc)
        logger.info("kafka transport closed in %.2f s", time.monotonic() - started)


def _consumer_only(key: str) -> bool:
    return key.startswith(("session.", "heartbeat.", "group.", "auto.", "enable.auto", "max.poll", "fetch.",
                           "partition.assignment", "isolation."))


__all__ = ["CONSUMER_DEFAULTS", "PRODUCER_DEFAULTS", "KafkaTransport"]
