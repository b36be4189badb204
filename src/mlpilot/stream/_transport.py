"""What a broker must do for the stream consumer: the `Transport` protocol and the messages it moves.

A transport hands out input messages in micro-batches, produces output and
dead-letter records, confirms their delivery, and only then acknowledges the
inputs (Kafka: commits offsets; Redis Streams: ``XACK``). That order is the
whole at-least-once promise: an input is acknowledged only once everything it
produced is on the broker.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from mlpilot.exceptions import InvalidParameterError, MissingDependencyError


@dataclass(frozen=True)
class Message:
    """One input message.

    ``key`` is what every output and dead letter of it carries (the Kafka
    message key, or the Redis entry id); ``request_id`` identifies the message
    itself (topic, partition and offset, or stream and entry id), so a message
    delivered twice gives outputs with the same ``request_id``. ``handle`` is
    the transport's own reference, used to acknowledge it.
    """

    key: str | None
    value: bytes | None
    request_id: str
    handle: Any = None


@dataclass(frozen=True)
class Record:
    """One record to produce: a JSON text and the key to send it with."""

    key: str | None
    value: str


class Transport(Protocol):
    """A broker connection: consume a batch, produce, confirm delivery, then acknowledge."""

    name: str

    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` messages; waits at most ``timeout`` seconds, returns as soon as one is there."""
        ...

    def produce(self, outputs: list[Record], dead_letters: list[Record]) -> None:
        """Send the records and wait until the broker has confirmed every one; raise `SourceConnectionError` if not."""
        ...

    def acknowledge(self, messages: list[Message]) -> None:
        """Mark the messages done (after `produce` returned), so the group never hands them out again."""
        ...

    def lag(self) -> int | None:
        """Messages waiting for this consumer (or its group), ``None`` when unknown."""
        ...

    def close(self) -> None:
        """Leave the group and close the connections."""
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


__all__ = ["Message", "Record", "Transport", "host_port", "import_client"]
