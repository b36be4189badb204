"""What a broker must do for the stream consumer: the `Transport` protocol and the messages it moves.

A transport hands out input messages in micro-batches, sends output and
dead-letter records, confirms their delivery, and only then acknowledges the
inputs (Kafka: commits offsets; Redis Streams: ``XACK``). That order is the
whole at-least-once promise: an input is acknowledged only once everything it
produced is on the broker. Sending and confirming are two steps so that the
consumer can score the next batch while the broker confirms this one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

from mlpilot.exceptions import InvalidParameterError, MissingDependencyError


class Message(NamedTuple):
    """One input message.

    ``key`` is what every output and dead letter of it carries (the Kafka
    message key, or the Redis entry id); ``request_id`` identifies the message
    itself (topic, partition and offset, or stream and entry id), so a message
    delivered twice gives outputs with the same ``request_id``. ``handle`` is
    the transport's own reference, used to acknowledge it. (A named tuple: a
    batch makes one per message, and a tuple is the cheapest immutable record.)
    """

    key: str | None
    value: bytes | None
    request_id: str
    handle: Any = None


class Record(NamedTuple):
    """One record to produce: its JSON (UTF-8 bytes) and the key to send it with."""

    key: str | None
    value: bytes


class Delivery:
    """The records of one batch handed to the broker, and what the broker has said of them so far.

    ``pending`` is how many are not yet confirmed (Kafka: the producer's queue
    length, read as it drains; Redis: 0 at once, the script's reply being the
    confirmation); each refusal is noted in ``failures``. ``acknowledged`` is true when the send
    also acknowledged the batch's inputs, after its records were stored (Redis: the same script).
    """

    __slots__ = ("acknowledged", "failures", "pending")

    def __init__(self, pending: int = 0) -> None:
        self.pending = pending
        self.failures: list[str] = []
        self.acknowledged = False


def addressed(outputs: list[Record], dead_letters: list[Record], output: str,
              dlq: str) -> Iterator[tuple[str, Record]]:
    """Each record with the topic (or stream) it goes to: outputs to ``output``, dead letters to ``dlq``."""
    for record in outputs:
        yield output, record
    for record in dead_letters:
        yield dlq, record


class Transport(Protocol):
    """A broker connection: consume a batch, send its records, confirm their delivery, then acknowledge."""

    name: str

    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` messages; waits at most ``timeout`` seconds, returns as soon as one is there."""
        ...

    def send(self, outputs: list[Record], dead_letters: list[Record],
             messages: list[Message] | None = None) -> Delivery:
        """Hand the records to the broker without waiting for it (the next batch is scored meanwhile).

        A transport that can acknowledge ``messages`` in the same step, only once the records are stored,
        does so and sets ``acknowledged`` on the `Delivery` (Redis); the others leave it to `acknowledge`.
        """
        ...

    def confirm(self, delivery: Delivery) -> None:
        """Wait until the broker confirmed every record of ``delivery``; raise `SourceConnectionError` if not."""
        ...

    def acknowledge(self, messages: list[Message]) -> None:
        """Mark the messages done (after `confirm` returned), so the group never hands them out again."""
        ...

    def lag(self) -> int | None:
        """Messages waiting for this consumer (or its group), ``None`` when unknown."""
        ...

    def close(self) -> None:
        """Make the acknowledgements final, leave the group and close the connections."""
        ...


def import_client(module: str, package: str, purpose: str) -> Any:
    """Import a broker client, or raise `MissingDependencyError` naming the ``stream`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package, "stream", purpose) from None


def host_port(brokers: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``) as a pair, with a clear message for anything else."""
    text = brokers.strip()
    host, _, port = text.rpartition(":") if ":" in text else (text, "", str(default_port))
    if not host or not port.isdigit():
        raise InvalidParameterError(f"--brokers must be HOST:PORT (such as 127.0.0.1:{default_port}); got {brokers!r}.")
    return host, int(port)


__all__ = ["Delivery", "Message", "Record", "Transport", "addressed", "host_port", "import_client"]
