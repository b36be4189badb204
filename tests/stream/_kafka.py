"""Kafka helpers for the tests: topics, producing, and reading a topic whole (no group join)."""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic


def create_topics(brokers: str, *names: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result(10)


def produce(brokers: str, topic: str, messages: list[tuple[str | None, bytes | str]]) -> None:
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
    for key, value in messages:
        producer.produce(topic, key=key, value=value.encode() if isinstance(value, str) else value)
    assert producer.flush(10) == 0


def committed(brokers: str, group: str, topic: str, partition: int = 0) -> int:
    """The group's committed offset of one partition (asked without joining the group)."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        return int(consumer.committed([TopicPartition(topic, partition)], timeout=10)[0].offset)
    finally:
        consumer.close()


class TopicReader:
    """Everything on a topic's partitions from the start, read by assignment (no consumer group)."""

    def __init__(self, brokers: str, topic: str, partitions: int = 1) -> None:
        self.consumer = Consumer({"bootstrap.servers": brokers, "group.id": "test-reader", "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self.records: list[dict[str, Any]] = []
        self.keys: list[str | None] = []

    def read(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until at least ``n`` records were read; return all read so far."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.consumer.consume(1000, 0.1):
                if msg.error() is None:
                    value = msg.value()
                    assert value is not None, "a record without a value"
                    self.records.append(json.loads(value))
                    key = msg.key()
                    self.keys.append(key.decode() if key is not None else None)
            if len(self.records) >= n or time.monotonic() > deadline:
                break
        assert len(self.records) >= n, f"read {len(self.records)} of {n} records"
        return self.records

    def close(self) -> None:
        self.consumer.close()
