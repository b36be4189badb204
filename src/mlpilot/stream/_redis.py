"""The Redis Streams transport: a consumer group over one stream, ``XACK`` with the batch's outputs.

Layout: each input entry has one field ``data`` holding the JSON of a Kafka
message value; each output entry (stream ``output``) and each dead letter
(stream ``dlq``, ``INPUT.dlq`` by default) has a field ``data`` with the
output JSON.

A batch is finished by one server script call (``EVALSHA``, the script
registered once): it appends the outputs and the dead letters (``XADD``) and
then acknowledges the batch's inputs (``XACK``), so a batch costs one command
and one reply. The script runs atomically and stops at the first refused
``XADD``, so the inputs are acknowledged only once every record is stored. A
batch of more than `_CHUNK` records appends the first chunks in one pipeline
and sends the acknowledging call only after their replies came back whole.

Read-ahead: when a read filled the batch (the input is behind), the next
``XREADGROUP`` is sent at once on a connection of its own, and its reply is
taken by the next `poll`; redis-server answers it while this batch is scored.
Entries read ahead are pending with this consumer like the batch in hand:
a SIGKILL leaves them to be claimed; `close` hands back those not scored (they
become claimable at once).

A consumer that dies leaves its entries pending in the group. Every consumer
claims entries pending longer than ``claim_idle_ms`` (``XAUTOCLAIM``) before it
reads new ones, so another member of the group, or the same process
restarted, scores them.
"""

from __future__ import annotations

import logging
import operator
import os
import socket
import time
from typing import Any

from mlpilot.exceptions import SourceConnectionError
from mlpilot.stream._transport import Delivery, Message, Record, host_port, import_client

logger = logging.getLogger(__name__)

FIELD = "data"
_FIELD = FIELD.encode()
#: Records appended per script call (a call holds the server for its length: ~1 µs per record).
_CHUNK = 1000
#: Append ARGV[4 .. 3 + n_out] to stream KEYS[1] and the next n_dead to KEYS[2] (field ``data``), then
#: acknowledge the ids after them in group ARGV[1] of KEYS[3] (``XACK``, 1,000 per call: Lua's ``unpack``
#: has a stack limit). ARGV[2], ARGV[3]: n_out, n_dead. The reply: {appended, dead-lettered, acknowledged}.
_FINISH = f"""
local n_out, n_dead = tonumber(ARGV[2]), tonumber(ARGV[3])
local last = 3 + n_out + n_dead
for i = 4, 3 + n_out do redis.call('XADD', KEYS[1], '*', '{FIELD}', ARGV[i]) end
for i = 4 + n_out, last do redis.call('XADD', KEYS[2], '*', '{FIELD}', ARGV[i]) end
local acked = 0
for s = last + 1, #ARGV, 1000 do
  acked = acked + redis.call('XACK', KEYS[3], ARGV[1], unpack(ARGV, s, math.min(s + 999, #ARGV)))
end
return {{n_out, n_dead, acked}}
"""
#: Hand entries read ahead and never scored back to the group: those still pending with consumer ARGV[2]
#: of group ARGV[1] on KEYS[1] are claimed by it with an idle time of ARGV[3] ms, so that any consumer's
#: next ``XAUTOCLAIM`` takes them (an entry another consumer claimed meanwhile is left alone).
_RELEASE = """
local n = 0
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    n = n + 1
  end
end
return n
"""
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
        self._finish = self._client.register_script(_FINISH)  # EVALSHA, loading the script when the server lacks it
        self._ahead: Any = None  # the connection whose XREADGROUP reply is awaited (read-ahead), if any
        self._ahead_connection: Any = None
        self._buffer: list[Message] = []  # read ahead, not yet handed out
        self._send_connection: Any = None  # where a batch's script goes when its reply is read by `confirm`
        self._deferred: tuple[Delivery, list[Any], int, int] | None = None  # that batch: args, records, ids
        # XREADGROUP's reply as the parser gives it: redis-py's own callback makes a dict of each entry's
        # fields, which `_messages` does not need (one per message, ~1 ms of a 1,000-entry read)
        self._client.set_response_callback("XREADGROUP", _raw)
        try:
            self._client.script_load(_FINISH)  # registered once: the batches' EVALSHA finds it
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
            messages = self._poll(max_messages, timeout)
            if len(messages) >= max_messages and not self._buffer and self._ahead is None:
                self._read_ahead(max_messages)  # the input is behind: its next batch comes while this one is scored
            return messages
        except self._redis.ConnectionError as exc:
            self._drop_ahead()
            raise SourceConnectionError(f"Lost the connection to Redis: {exc}") from None

    def _poll(self, max_messages: int, timeout: float) -> list[Message]:
        if self._buffer:
            return self._take(max_messages)
        claimed = self._claim(max_messages)
        if claimed:
            return claimed
        if self._ahead is not None:
            self._buffer = self._ahead_reply()
            if self._buffer:
                return self._take(max_messages)
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

    def _take(self, max_messages: int) -> list[Message]:
        taken, self._buffer = self._buffer[:max_messages], self._buffer[max_messages:]
        return taken

    def _read_ahead(self, max_messages: int) -> None:
        """Send the next ``XREADGROUP`` (no ``BLOCK``) without waiting for its reply."""
        if self._ahead_connection is None:
            self._ahead_connection = self._client.connection_pool.get_connection()
        self._ahead_connection.send_command("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", max_messages,
                                            "STREAMS", self.input, ">")
        self._ahead = self._ahead_connection

    def _ahead_reply(self) -> list[Message]:
        connection, self._ahead = self._ahead, None
        reply = connection.read_response()
        if not reply:
            return []
        return self._messages(next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1])

    def _drop_ahead(self) -> None:
        """Forget a read-ahead whose connection failed (its entries, if read, stay pending: claimed later)."""
        if self._ahead_connection is not None:
            self._ahead_connection.disconnect()
        self._ahead = None

    def _read(self, max_messages: int, block_ms: int | None) -> list[Message]:
        reply = self._client.xreadgroup(self.group, self.consumer, {self.input: ">"}, count=max_messages,
                                        block=block_ms)
        if not reply:
            return []
        # the raw reply (see __init__): {stream: entries} (RESP3) or [[stream, entries]] (RESP2)
        return self._messages(next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1])

    def send(self, outputs: list[Record], dead_letters: list[Record],
               messages: list[Message] | None = None) -> Delivery:
        """Append the records and then acknowledge ``messages``, in one script call per `_CHUNK` records.

        The replies are the confirmation (``delivery.pending`` is 0); ``delivery.acknowledged`` says
        that ``messages`` were acknowledged too, which happens only if every record was appended.
        """
        delivery = Delivery()
        ids = list(map(_HANDLE, messages)) if messages else []
        chunks = _chunks(list(map(_VALUE, outputs)), list(map(_VALUE, dead_letters)))
        try:
            if len(chunks) > 1:  # the first chunks together; the acknowledging one only once they are stored
                pipe = self._client.pipeline(transaction=False)
                for chunk in chunks[:-1]:
                    self._call(chunk, [], pipe)
                for chunk, reply in zip(chunks[:-1], pipe.execute(raise_on_error=False), strict=True):
                    self._check(_length(chunk), reply, 0, delivery)
                if delivery.failures:
                    return delivery
            chunk = chunks[-1]
            if (_length(chunk) or ids) and (self._ahead is not None or self._buffer):
                # the input is behind: redis-server runs the script while the next batch is scored, and
                # `confirm` reads its reply then (at-least-once holds: the script acknowledges after storing)
                self._send_script(chunk, ids, delivery)
            elif _length(chunk) or ids:
                self._check(_length(chunk), self._call(chunk, ids, None), len(ids), delivery)
                delivery.acknowledged = bool(ids) and not delivery.failures
        except self._redis.ConnectionError as exc:
            delivery.failures.append(f"the connection was lost: {exc}")
        except self._redis.ResponseError as exc:  # an XADD refused (out of memory, a key of another type, ...)
            delivery.failures.append(str(exc))
        return delivery

    def _args(self, chunk: _Chunk, ids: list[Any]) -> list[Any]:
        outputs, dead = chunk
        return [self.group, len(outputs), len(dead), *outputs, *dead, *ids]

    def _call(self, chunk: _Chunk, ids: list[Any], pipe: Any) -> Any:
        return self._finish(keys=[self.output, self.dlq, self.input], args=self._args(chunk, ids), client=pipe)

    def _send_script(self, chunk: _Chunk, ids: list[Any], delivery: Delivery) -> None:
        """Send the batch's script call without reading its reply (`confirm` reads it)."""
        if self._deferred is not None:  # a batch sent before and not confirmed: its reply comes first
            self._read_deferred()
        if self._send_connection is None:
            self._send_connection = self._client.connection_pool.get_connection()
        args = self._args(chunk, ids)
        head = ["EVALSHA", self._finish.sha, 3, self.output, self.dlq, self.input, *args[:3]]
        packed = _pack(head, args[3:])
        if packed is None:
            self._send_connection.send_command(*head, *args[3:])
        else:
            self._send_connection.send_packed_command([packed])
        delivery.pending = _length(chunk) + len(ids)
        self._deferred = (delivery, args, _length(chunk), len(ids))

    def _read_deferred(self) -> None:
        """Read the reply of the script call `_send_script` sent; note on its delivery what it says."""
        assert self._deferred is not None
        delivery, args, n_records, n_ids = self._deferred
        self._deferred = None
        delivery.pending = 0
        try:
            try:
                reply = self._send_connection.read_response()
            except self._redis.exceptions.NoScriptError:  # the server lost the script (restart, SCRIPT FLUSH): run
                reply = self._finish(keys=[self.output, self.dlq, self.input], args=args)  # nothing ran
        except self._redis.ConnectionError as exc:
            self._send_connection.disconnect()
            delivery.failures.append(f"the connection was lost: {exc}")
            return
        except self._redis.ResponseError as exc:
            delivery.failures.append(str(exc))
            return
        self._check(n_records, reply, n_ids, delivery)
        delivery.acknowledged = bool(n_ids) and not delivery.failures

    @staticmethod
    def _check(n_records: int, reply: Any, n_ids: int, delivery: Delivery) -> None:
        if isinstance(reply, Exception):
            delivery.failures.append(str(reply))
            return
        appended, dead, acked = (int(v) for v in reply)
        if appended + dead != n_records:
            delivery.failures.append(f"{appended + dead} of {n_records} records appended")
        elif acked != n_ids:  # not a failure: entries claimed meanwhile by another consumer are not ours
            logger.debug("redis: %d of %d inputs acknowledged", acked, n_ids)

    def confirm(self, delivery: Delivery) -> None:
        if self._deferred is not None and self._deferred[0] is delivery:
            self._read_deferred()
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
        """Hand back the entries read ahead and not scored, then close the connections."""
        try:
            if self._deferred is not None:
                self._read_deferred()
            if self._ahead is not None:
                self._buffer.extend(self._ahead_reply())
            if self._buffer:
                self._client.eval(_RELEASE, 1, self.input, self.group, self.consumer, self.claim_idle_ms,
                                  *[m.handle for m in self._buffer])
        except self._redis.RedisError as exc:  # they stay pending with this consumer: claimed after claim_idle_ms
            logger.warning("redis: could not hand back %d entries read ahead: %s", len(self._buffer), exc)
        self._buffer = []
        for connection in (self._ahead_connection, self._send_connection):
            if connection is not None:
                self._client.connection_pool.release(connection)
        self._ahead_connection = self._send_connection = None
        self._client.close()


_BYTES = {bytes}
_VALUE, _HANDLE = operator.itemgetter(1), operator.itemgetter(3)  # a `Record`'s value, a `Message`'s handle
#: One script call's records: the outputs' values and the dead letters' values.
_Chunk = tuple[list[bytes], list[bytes]]


def _chunks(outputs: list[bytes], dead: list[bytes]) -> list[_Chunk]:
    """The records in order (outputs, then dead letters) cut into `_CHUNK`-record script calls (one at least)."""
    n = len(outputs)
    return [(outputs[start:start + _CHUNK], dead[max(0, start - n):max(0, start + _CHUNK - n)])
            for start in range(0, n + len(dead), _CHUNK)] or [([], [])]


def _length(chunk: _Chunk) -> int:
    return len(chunk[0]) + len(chunk[1])


def _pack(head: list[str | int], body: list[Any]) -> bytes | None:
    """The RESP encoding of the command ``head + body`` (what redis-py sends for it), in a few C-level passes.

    redis-py's own packing walks the arguments in Python, one generator step each (~0.7 ms for a
    batch's 2,000). ``None`` when some argument of ``body`` is not bytes: redis-py packs those.
    """
    if not set(map(type, body)) <= _BYTES:
        return None
    items = [a.encode() if isinstance(a, str) else b"%d" % a for a in head] + body
    # "*<n>", then "$<length>" and the bytes of each item, then "" (for the last CRLF), joined by CRLF: one copy
    parts: list[bytes] = [b""] * (2 * len(items) + 2)
    parts[0] = b"*%d" % len(items)
    parts[1:-1:2] = map(b"$%d".__mod__, map(len, items))
    parts[2:-1:2] = items
    return b"\r\n".join(parts)


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
