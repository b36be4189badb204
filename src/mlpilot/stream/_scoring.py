"""A micro-batch of messages scored with the runtime: output records, dead letters and what to log.

Pure over a loaded model and messages: no broker here. Each message is one
row (a JSON object of feature values) or ``{"rows": [...]}``. The work is done
per batch, not per message: the values are decoded with orjson (a message it
refuses is parsed again by the API's `parse_json`, for the API's error
message), the batch's rows go to the runtime in one call of its JSON path
(`prepare`, `score_prepared`: the API's vectorised checks and scoring, the
same call the in-process benchmark times), and the outputs are encoded with
orjson. When the runtime refuses the batch, the rows its errors name are
validated alone (each bad row's dead letter carries the error it gets on its
own, as one API request would), and the others are validated together again;
rows the model itself refuses are scored one by one. A dead letter never stops
the batch.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from mlpilot.data import Problem
from mlpilot.exceptions import MlpilotError, SchemaValidationError
from mlpilot.runtime import (
    LoadedModel,
    Prepared,
    prepare,
    probability_dicts,
    problem_dict,
    score_prepared,
)
from mlpilot.runtime._frames import PREDICTION_COLUMN, PROBABILITY_PREFIX, WARNINGS_COLUMN
from mlpilot.runtime._inputs import parse_json
from mlpilot.runtime._quality import row_flags
from mlpilot.stream._transport import Message, Record, import_client

#: Dead-letter reasons (the ``reason`` field and the metric's label).
REASONS = ("oversize", "not_json", "invalid", "schema")

_KEY, _VALUE, _REQUEST_ID = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)  # of a `Message`
_DICT = {dict}


def _orjson() -> Any:
    return import_client("orjson", "orjson", "Streaming (fast JSON of messages)")


@dataclass(frozen=True)
class Limits:
    """What one message may hold: bytes (checked before parsing) and rows."""

    max_message_bytes: int = 1_048_576
    max_rows_per_message: int = 10_000


@dataclass
class Rows:
    """A batch's decoded rows, by column: each row's values, its message and its place in that message."""

    values: list[Any] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    #: The row's place in a ``{"rows": [...]}`` message, ``None`` for a one-row message.
    indexes: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class LogEntry:
    """Scored rows as `PredictionLog.log` takes them (one id per row)."""

    inputs: Any
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None
    flags: list[str] | None
    request_ids: list[str]


@dataclass
class ScoredBatch:
    """What a batch gives: records to produce, dead letters, and what to log and count."""

    outputs: list[Record] = field(default_factory=list)
    dead_letters: list[Record] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    log_entries: list[LogEntry] = field(default_factory=list)
    #: The scored rows' input-quality warnings (for the input-flag counters).
    warnings: list[Problem] = field(default_factory=list)

    def dead(self, message: Message, reason: str, error: str, payload: str, *, index: int | None = None,
             problems: list[dict[str, Any]] | None = None, model: LoadedModel | None = None) -> None:
        """Add a dead letter for ``message`` (or its row ``index``): the error, the original payload."""
        record: dict[str, Any] = {
            "key": message.key,
            "request_id": message.request_id if index is None else f"{message.request_id}:{index}",
            "reason": reason,
            "error": error,
            "payload": payload,
        }
        if index is not None:
            record["row"] = index
        if problems:
            record["problems"] = problems
        if model is not None:
            record["model"], record["version"] = model.name, model.version.version
        self.dead_letters.append(Record(message.key, _dumps(record)))
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def _dumps(value: Any) -> bytes:
    orjson = _orjson()
    return bytes(orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY))


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def decode(messages: list[Message], limits: Limits, batch: ScoredBatch) -> Rows:
    """The rows of each message; messages that cannot be rows go to ``batch``'s dead letters."""
    loads = _orjson().loads
    rows = _decode_plain(messages, limits, loads)
    if rows is not None:
        return rows
    rows = Rows()
    values, owners, indexes = rows.values, rows.messages, rows.indexes
    for message in messages:
        value = message.value
        if value is None:
            batch.dead(message, "invalid",
                       "The message has no value (a Kafka tombstone, or a Redis entry without a 'data' field); "
                       "send the row's JSON as the message value (Redis: in the field 'data').", "")
            continue
        if len(value) > limits.max_message_bytes:
            batch.dead(message, "oversize",
                       f"The message has {len(value)} bytes; the limit is {limits.max_message_bytes} "
                       "(--max-message-bytes). Split it into smaller messages.",
                       _text(value[:1024]) + "...")
            continue
        try:
            payload = loads(value)
        except ValueError:  # the API's parser says what is wrong (or reads what orjson refuses: a BOM, huge ints)
            try:
                payload = parse_json(value)
            except MlpilotError as exc:
                batch.dead(message, "not_json", str(exc).replace("request body", "message"), _text(value))
                continue
        if type(payload) is dict:
            if len(payload) == 1 and type(payload.get("rows")) is list:
                items = payload["rows"]
                if not items or len(items) > limits.max_rows_per_message:
                    reason = "oversize" if items else "invalid"
                    batch.dead(message, reason,
                               f'The message has {len(items)} rows in "rows"; send 1 to '
                               f"{limits.max_rows_per_message}.", _text(value))
                    continue
                values.extend(items)
                owners.extend([message] * len(items))
                indexes.extend(range(len(items)))
            else:
                values.append(payload)
                owners.append(message)
                indexes.append(None)
        else:
            batch.dead(message, "invalid",
                       'A message must be a JSON object of feature values (one row), or {"rows": [{...}, ...]}; '
                       f"got a JSON {type(payload).__name__}.", _text(value))
    return rows


def _decode_plain(messages: list[Message], limits: Limits, loads: Any) -> Rows | None:
    """`decode` of the usual batch, in a few C-level passes: every message one JSON object, no ``"rows"``.

    ``None`` when some message is anything else (no value, too large, not JSON, not an object, the
    ``{"rows": [...]}`` form): `decode` then goes message by message, and only those messages are refused.
    """
    if not messages:
        return Rows()
    values = list(map(_VALUE, messages))
    if None in values or max(map(len, values)) > limits.max_message_bytes:
        return None
    try:
        payloads = list(map(loads, values))  # one call per value in C: a refused value stops it, nothing else
    except ValueError:
        return None
    if set(map(type, payloads)) != _DICT or any(map(operator.contains, payloads, repeat("rows"))):
        return None
    return Rows(payloads, messages if type(messages) is list else list(messages), [None] * len(payloads))


def _dead_row(batch: ScoredBatch, rows: Rows, i: int, exc: MlpilotError, loaded: LoadedModel) -> None:
    problems = [problem_dict(p) for p in exc.problems] if isinstance(exc, SchemaValidationError) else None
    values, index = rows.values[i], rows.indexes[i]
    reason = "schema" if isinstance(values, dict) else "invalid"
    message = str(exc)
    if index is not None:
        message = f"Row {index} of the message: {message}"
    batch.dead(rows.messages[i], reason, message, _dumps(values).decode(), index=index, problems=problems,
               model=loaded)


def _named_rows(exc: MlpilotError, n: int) -> set[int] | None:
    """The rows (positions in the refused batch) that the errors name, ``None`` if some error names none."""
    if not isinstance(exc, SchemaValidationError) or not exc.problems:
        return None
    named: set[int] = set()
    for problem in exc.problems:
        rows = getattr(problem, "rows", ())
        if not rows or not all(0 <= r < n for r in rows):
            return None
        named.update(rows)
    return named


def _validate(loaded: LoadedModel, rows: Rows, batch: ScoredBatch) -> tuple[list[int], Prepared | None]:
    """The rows that pass validation together and their prepared input; bad rows become dead letters.

    The prepared input is ``None`` when the batch is refused though no row is refused alone (the rows
    left are then scored one by one).
    """
    todo = list(range(len(rows)))
    while todo:
        try:
            return todo, prepare(loaded, {"rows": [rows.values[i] for i in todo]}, len(todo))
        except MlpilotError as exc:
            named = _named_rows(exc, len(todo))
            suspects = sorted(named) if named is not None else range(len(todo))
            refused: set[int] = set()
            for position in suspects:
                i = todo[position]
                try:
                    prepare(loaded, {"rows": [rows.values[i]]}, 1)
                except MlpilotError as alone:
                    _dead_row(batch, rows, i, alone, loaded)
                    refused.add(i)
            todo = [i for i in todo if i not in refused]
            if not refused:
                return todo, None
    return todo, None


def score_messages(loaded: LoadedModel, messages: list[Message], limits: Limits) -> ScoredBatch:
    """Decode, validate and score ``messages``; every input gets outputs or dead letters, never an exception."""
    batch = ScoredBatch()
    rows = decode(messages, limits, batch)
    if not len(rows):
        return batch
    todo, prepared = _validate(loaded, rows, batch)
    if prepared is None:
        return _one_by_one(loaded, rows, todo, batch)
    try:
        predictions, probabilities = score_prepared(loaded, prepared)
    except MlpilotError:  # the model itself refused some row: score them one by one
        return _one_by_one(loaded, rows, todo, batch)
    _shape(loaded, rows, todo, prepared, predictions, probabilities, batch)
    return batch


def _one_by_one(loaded: LoadedModel, rows: Rows, todo: list[int], batch: ScoredBatch) -> ScoredBatch:
    for i in todo:
        try:
            prepared = prepare(loaded, {"rows": [rows.values[i]]}, 1)
            predictions, probabilities = score_prepared(loaded, prepared)
        except MlpilotError as exc:
            _dead_row(batch, rows, i, exc, loaded)
            continue
        _shape(loaded, rows, [i], prepared, predictions, probabilities, batch)
    return batch


def _fragments(values: list[Any], dumps: Any) -> list[bytes]:
    """Each value's JSON: one ``dumps`` of the whole list, split at its commas when no value's JSON has one.

    orjson writes a list as ``[`` + its items' JSON joined by ``,`` + ``]``, without spaces; so when the
    split gives one part per value, each part is that value's JSON. Otherwise (a key or label with a
    comma in it) each value is encoded alone.
    """
    if not values:
        return []
    parts = dumps(values)[1:-1].split(b",")
    return parts if len(parts) == len(values) else [dumps(v) for v in values]


def _named(classes: tuple[Any, ...], probabilities: list[list[float]]) -> list[dict[str, float]]:
    """`probability_dicts` (each row's probabilities by class, as the log records them), two classes faster."""
    if len(classes) != 2:
        return probability_dicts(classes, probabilities)
    first, second = (str(c) for c in classes)
    return [{first: a, second: b} for a, b in probabilities]


def _log_inputs(prepared: Prepared) -> Any:
    """What the log records of the rows: a clean batch's columns as validation built them (not its row
    dicts, which the log's writer would turn into the same columns again), else `Prepared.inputs`."""
    if prepared.data is None and prepared.columns is None and prepared.by_column is not None:
        return prepared.by_column
    return prepared.inputs


def _shape(loaded: LoadedModel, rows: Rows, todo: list[int], prepared: Prepared, predictions: list[Any],
           probabilities: list[list[float]] | None, batch: ScoredBatch) -> None:
    """The output records of the scored rows ``todo``, encoded by column; their log entry.

    Each record is the orjson encoding of ``{"key", "request_id", "model", "version", "prediction",
    ["row"], "probability_<class>"..., ["threshold"], "warnings"}``, byte for byte, built from one
    template per batch and the JSON of each column (`_fragments`), not from a dict per row.
    """
    flags = row_flags(prepared.warnings, len(todo)) if prepared.warnings else None
    classes = loaded.classes if probabilities is not None else None
    model, version = loaded.name, loaded.version.version
    orjson = _orjson()
    option = orjson.OPT_SERIALIZE_NUMPY

    def dumps(value: Any) -> bytes:
        return bytes(orjson.dumps(value, default=str, option=option))

    messages, indexes = rows.messages, rows.indexes
    if len(todo) != len(rows) or todo != list(range(len(rows))):  # some rows were dead-lettered
        messages, indexes = [messages[i] for i in todo], [indexes[i] for i in todo]
    keys = list(map(_KEY, messages))
    numbered = indexes.count(None) != len(indexes)  # some rows come from {"rows": [...]} messages
    request_ids = list(map(_REQUEST_ID, messages))
    if numbered:
        request_ids = [rid if index is None else f"{rid}:{index}" for rid, index in zip(request_ids, indexes, strict=True)]

    def constant(*parts: bytes) -> bytes:  # a template's fixed text ('%' doubled: it is a %-format)
        return b"".join(parts).replace(b"%", b"%%")

    head = constant(b',"model":', dumps(model), b',"version":', dumps(version), b",", dumps(PREDICTION_COLUMN), b":")
    tail = b"".join(constant(b',', dumps(f"{PROBABILITY_PREFIX}{c}"), b":") + b"%b" for c in classes or ())
    if loaded.threshold is not None:  # which decision threshold gave the label
        tail += constant(b',"threshold":', dumps(loaded.threshold))
    tail += constant(b",", dumps(WARNINGS_COLUMN), b":") + b"%b}"
    plain = b'{"key":%b,"request_id":%b' + head + b"%b" + tail
    columns = [_fragments(keys, dumps), _fragments(request_ids, dumps), _fragments(predictions, dumps)]
    if probabilities is not None:
        columns += [_fragments(list(column), dumps) for column in zip(*probabilities, strict=True)]
    columns.append(_fragments(flags, dumps) if flags is not None else [b'""'] * len(todo))
    if not numbered:  # one row per message: one template for every record, filled in C
        values = list(map(plain.__mod__, zip(*columns, strict=True)))
    else:  # rows of {"rows": [...]} messages carry their place in it
        with_row = b'{"key":%b,"request_id":%b' + head + b'%b,"row":%d' + tail
        values = [plain % args if index is None else with_row % (*args[:3], index, *args[3:])
                  for args, index in zip(zip(*columns, strict=True), indexes, strict=True)]
    # Records made in C: tuple.__new__, not the named tuple's own (Python) __new__ per record
    batch.outputs.extend(map(tuple.__new__, repeat(Record), zip(keys, values, strict=True)))
    named = _named(classes, probabilities) if classes is not None and probabilities is not None else None
    batch.log_entries.append(LogEntry(_log_inputs(prepared), list(predictions), named, flags, request_ids))
    batch.warnings.extend(prepared.warnings)


__all__ = ["REASONS", "Limits", "LogEntry", "Rows", "ScoredBatch", "decode", "score_messages"]
