"""The Redis Streams transport: a consumer group over one stream, ``XACK`` after delivery.

Layout: each input entry has one field ``data`` holding the JSON of a Kafka
message value; each output entry (stream ``output``) and each dead letter
(stream ``dlq``, ``INPUT.dlq`` by default) has a field ``data`` with the
output JSON. Outputs and dead letters of a batch are appended by one server
script call per stream and 1,000 records (``EVALSHA``: one command and one
reply, where a pipeline of ``XADD`` costs the client a command and a reply per
record); its reply is the delivery confirmation, and only then are the inputs
acknowledged (``XACK``, all ids of the batch in one command).

A consumer that dies leaves its entries pending in the group. Every consumer
claims entries pending longer than ``claim_idle_ms`` (``XAUTOCLAIM``) before it
reads new ones, so another member of the group, or the same process
restarted, scores them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from mlpilot.exceptions import SourceConnectionError
from mlpilot.stream._transport import Delivery, Message, Record, addressed, host_port, import_client

logger = logging.getLogger(__name__)

FIELD = "data"
_FIELD = FIELD.encode()
#: Records appended per script call (a call holds the server for its length: ~1 µs per record).
_CHUNK = 1000
#: Append each argument as an entry of stream KEYS[1] (field ``data``); the reply is how many were appended.
_APPEND = f"for i = 1, #ARGV do redis.call('XADD', KEYS[1], '*', '{FIELD}', ARGV[i]) end return #ARGV"
#: Waits shorter than this do not use ``XREADGROUP BLOCK`` (see `RedisTransport.poll`).
_SHORTEST_BLOCK = 0.15


class RedisTransport:
    """Read ``input`` in consumer group ``group``; write to ``output`` and ``dlq``.

    Parameters
    ----------
    brokers : str
        ``HOST:PORT`` of the Redis server, or a ``redis://`` URL.
    input, output, dlq : str
        Stream names.
    group : str
        Consumer group; it is created (at the stream's start) when missing.
    consumer : str, optional
        This consumer's name in the group (default: host name and process id).
    claim_idle_ms : int
        Entries pending this long with another consumer are taken over.
    """

    name = "redis"

    def __init__(
        self,
        brokers: str,
        input: str,
        output: str,
        dlq: str,
        group: str,
        *,
        consumer: str | None = None,
        claim_idle_ms: int = 30_000,
    ) -> None:
        redis = import_client("redis", "redis", "Streaming from Redis Streams")
        self._redis = redis
        # One quick retry of a dropped connection, not the client's default backoff of seconds.
        retry = redis.retry.Retry(redis.backoff.NoBackoff(), 1)
        if brokers.startswith(("redis://", "rediss://", "unix://")):
            self._client = redis.Redis.from_url(brokers, retry=retry)
        else:
            host, port = host_port(brokers, 6379)
            self._client = redis.Redis(host=host, port=port, retry=retry)
        self.input, self.output, self.dlq, self.group = input, output, dlq, group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._append = self._client.register_script(_APPEND)  # EVALSHA, loading the script when the server lacks it
        # XREADGROUP's reply as the parser gives it: redis-py's own callback makes a dict of each entry's
        # fields, which `_messages` does not need (one per message, ~1 ms of a 1,000-entry read)
        self._client.set_response_callback("XREADGROUP", _raw)
        try:
            self._client.xgroup_create(input, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise SourceConnectionError(f"Redis refused to create consumer group {group!r}: {exc}") from None
        except redis.ConnectionError as exc:
            raise SourceConnectionError(
                f"Redis at {brokers} cannot be reached ({exc}); check --brokers and that redis-server is up."
            ) from None

    def _messages(self, entries: list[Any]) -> list[Message]:
        """Messages of stream entries: ``[id, [field, value, ...]]`` (a raw read) or ``(id, {field: value})``.

        The key and the request id carry the id as text; the handle (what `acknowledge` sends) its bytes.
        """
        out: list[Message] = []
        append, prefix, new = out.append, f"{self.input}:", tuple.__new__
        for entry_id, fields in entries:
            if fields is None:  # deleted from the stream while pending
                continue
            ident = entry_id.decode() if type(entry_id) is bytes else str(entry_id)
            # the usual entry, one field 'data'; None (no 'data' field): dead-lettered, saying so
            value = fields[1] if type(fields) is list and len(fields) == 2 and fields[0] == _FIELD \
                else _data(fields)
            append(new(Message, (ident, value, prefix + ident, entry_id)))  # in C, not Message's __new__
        return out

    def _claim(self, max_messages: int) -> list[Message]:
        now = time.monotonic()
        if now < self._next_claim:
            return []
        reply = self._client.xautoclaim(self.input, self.group, self.consumer, self.claim_idle_ms,
                                        start_id=self._claim_cursor, count=max_messages)
        cursor, entries = reply[0], reply[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        if self._claim_cursor == "0-0":  # a full pass over the pending list: rest a while
            self._next_claim = now + max(self.claim_idle_ms / 4000, 0.05)
        return self._messages(entries)

    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        try:
            claimed = self._claim(max_messages)
            if claimed:
                return claimed
            if timeout >= _SHORTEST_BLOCK:
                return self._read(max_messages, max(1, int(timeout * 1000)))
            # A shorter BLOCK would end late: redis-server times blocked clients out on its clock tick
            # (``hz`` 10: every 100 ms), which made a 20 ms --max-wait-ms last ~100 ms. Ask without
            # blocking instead, every millisecond, until the wait is over.
            deadline = time.monotonic() + timeout
            while True:
                messages = self._read(max_messages, None)
                left = deadline - time.monotonic()
                if messages or left <= 0:
                    return messages
                time.sleep(min(left, 0.001))
        except self._redis.ConnectionError as exc:
            raise SourceConnectionError(f"Lost the connection to Redis: {exc}") from None

    def _read(self, max_messages: int, block_ms: int | None) -> list[Message]:
        reply = self._client.xreadgroup(self.group, self.consumer, {self.input: ">"}, count=max_messages,
                                        block=block_ms)
        if not reply:
            return []
        # the raw reply (see __init__): {stream: entries} (RESP3) or [[stream, entries]] (RESP2)
        return self._messages(next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1])

    def send(self, outputs: list[Record], dead_letters: list[Record]) -> Delivery:
        """Append the records (one script call per stream and `_CHUNK` records); the replies are the confirmation."""
        delivery = Delivery()
        streams: dict[str, list[bytes]] = {}
        for stream, record in addressed(outputs, dead_letters, self.output, self.dlq):
            streams.setdefault(stream, []).append(record.value)
        try:
            for stream, values in streams.items():
                for start in range(0, len(values), _CHUNK):
                    chunk = values[start:start + _CHUNK]
                    appended = int(self._append(keys=[stream], args=chunk))
                    if appended != len(chunk):
                        delivery.failures.append(f"{stream}: {appended} of {len(chunk)} records appended")
        except self._redis.ConnectionError as exc:
            delivery.failures.append(f"the connection was lost: {exc}")
        except self._redis.ResponseError as exc:  # an XADD refused (out of memory, a key of another type, ...)
            delivery.failures.append(str(exc))
        return delivery

    def confirm(self, delivery: Delivery) -> None:
        if delivery.failures:
            raise SourceConnectionError(
                f"Redis did not confirm {len(delivery.failures)} record(s) of the batch ({delivery.failures[0]}); "
                "nothing of it was acknowledged, so it will be consumed again."
            )

    def acknowledge(self, messages: list[Message]) -> None:
        if messages:
            self._client.xack(self.input, self.group, *[m.handle for m in messages])

    def lag(self) -> int | None:
        try:
            for info in self._client.xinfo_groups(self.input):
                name = info.get("name")
                if (name.decode() if isinstance(name, bytes) else name) == self.group:
                    lag = info.get("lag")
                    pending = info.get("pending") or 0
                    return int(lag) + int(pending) if lag is not None else None
        except self._redis.RedisError:
            return None
        return None

    def close(self) -> None:
        self._client.close()


def _raw(response: Any, **_options: Any) -> Any:
    return response


def _data(fields: Any) -> bytes | None:
    """The ``data`` field of an entry's fields (a flat ``[field, value, ...]`` list or a dict), if it has one."""
    if isinstance(fields, dict):
        return fields.get(_FIELD)
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == _FIELD:
            return fields[i + 1]  # type: ignore[no-any-return]
    return None


__all__ = ["FIELD", "RedisTransport"]
