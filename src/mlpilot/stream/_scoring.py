"""A micro-batch of messages scored with the runtime: output records, dead letters and what to log.

Pure over a loaded model and messages: no broker here. Each message is one
row (a JSON object of feature values) or ``{"rows": [...]}``. The batch is
validated and scored in one call of the runtime's JSON path (`prepare`,
`score_prepared`: the API's checks and scoring); when that refuses the batch,
each row is validated alone, the rows that fail become dead letters naming
the error, and the rest are scored together. A dead letter never stops the
batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlpilot.data import Problem
from mlpilot.exceptions import MlpilotError, SchemaValidationError
from mlpilot.runtime import LoadedModel, prepare, probability_dicts, problem_dict, score_prepared
from mlpilot.runtime._frames import PREDICTION_COLUMN, PROBABILITY_PREFIX, WARNINGS_COLUMN
from mlpilot.runtime._inputs import parse_json
from mlpilot.runtime._quality import row_flags
from mlpilot.stream._transport import Message, Record

# One encoder each (``json.dumps`` with options builds a new encoder per call).
_OUTPUT_ENCODER = json.JSONEncoder(allow_nan=False, default=str)
_DEAD_ENCODER = json.JSONEncoder(default=str)

#: Dead-letter reasons (the ``reason`` field and the metric's label).
REASONS = ("oversize", "not_json", "invalid", "schema")


@dataclass(frozen=True)
class Limits:
    """What one message may hold: bytes (checked before parsing) and rows."""

    max_message_bytes: int = 1_048_576
    max_rows_per_message: int = 10_000


@dataclass(frozen=True)
class _Row:
    message: Message
    index: int | None  # the row's place in a {"rows": [...]} message, None for a one-row message
    values: Any

    @property
    def request_id(self) -> str:
        base = self.message.request_id
        return base if self.index is None else f"{base}:{self.index}"


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
        self.dead_letters.append(Record(message.key, _DEAD_ENCODER.encode(record)))
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def decode(messages: list[Message], limits: Limits, batch: ScoredBatch) -> list[_Row]:
    """The rows of each message; messages that cannot be rows go to ``batch``'s dead letters."""
    rows: list[_Row] = []
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
            payload = parse_json(value)
        except MlpilotError as exc:
            batch.dead(message, "not_json", str(exc).replace("request body", "message"), _text(value))
            continue
        if isinstance(payload, dict) and set(payload) == {"rows"} and isinstance(payload["rows"], list):
            items = payload["rows"]
            if not items or len(items) > limits.max_rows_per_message:
                reason = "oversize" if items else "invalid"
                batch.dead(message, reason,
                           f'The message has {len(items)} rows in "rows"; send 1 to {limits.max_rows_per_message}.',
                           _text(value))
                continue
            rows.extend(_Row(message, i, item) for i, item in enumerate(items))
        elif isinstance(payload, dict):
            rows.append(_Row(message, None, payload))
        else:
            batch.dead(message, "invalid",
                       'A message must be a JSON object of feature values (one row), or {"rows": [{...}, ...]}; '
                       f"got a JSON {type(payload).__name__}.", _text(value))
    return rows


def _dead_row(batch: ScoredBatch, row: _Row, exc: MlpilotError, loaded: LoadedModel) -> None:
    problems = [problem_dict(p) for p in exc.problems] if isinstance(exc, SchemaValidationError) else None
    reason = "schema" if isinstance(row.values, dict) else "invalid"
    message = str(exc)
    if row.index is not None:
        message = f"Row {row.index} of the message: {message}"
    batch.dead(row.message, reason, message, json.dumps(row.values, default=str), index=row.index,
               problems=problems, model=loaded)


def _score(loaded: LoadedModel, rows: list[_Row]) -> tuple[Any, list[Any], list[list[float]] | None]:
    prepared = prepare(loaded, {"rows": [r.values for r in rows]}, len(rows))
    predictions, probabilities = score_prepared(loaded, prepared)
    return prepared, predictions, probabilities


def score_messages(loaded: LoadedModel, messages: list[Message], limits: Limits) -> ScoredBatch:
    """Decode, validate and score ``messages``; every input gets outputs or dead letters, never an exception."""
    batch = ScoredBatch()
    rows = decode(messages, limits, batch)
    if not rows:
        return batch
    try:
        prepared, predictions, probabilities = _score(loaded, rows)
    except MlpilotError:
        good = []
        for row in rows:
            try:
                prepare(loaded, {"rows": [row.values]}, 1)
                good.append(row)
            except MlpilotError as exc:
                _dead_row(batch, row, exc, loaded)
        if not good:
            return batch
        try:
            rows = good
            prepared, predictions, probabilities = _score(loaded, rows)
        except MlpilotError:  # the model itself refused some row: score them one by one
            return _one_by_one(loaded, good, batch)
    _shape(loaded, rows, prepared, predictions, probabilities, batch)
    return batch


def _one_by_one(loaded: LoadedModel, rows: list[_Row], batch: ScoredBatch) -> ScoredBatch:
    scored: list[tuple[_Row, Any, list[Any], list[list[float]] | None]] = []
    for row in rows:
        try:
            scored.append((row, *_score(loaded, [row])))
        except MlpilotError as exc:
            _dead_row(batch, row, exc, loaded)
    for row, prepared, predictions, probabilities in scored:
        _shape(loaded, [row], prepared, predictions, probabilities, batch)
    return batch


def _shape(loaded: LoadedModel, rows: list[_Row], prepared: Any, predictions: list[Any],
           probabilities: list[list[float]] | None, batch: ScoredBatch) -> None:
    flags = row_flags(prepared.warnings, len(rows)) if prepared.warnings else None
    classes = loaded.classes if probabilities is not None else None
    named = probability_dicts(classes, probabilities) if classes is not None and probabilities is not None else None
    keys = [f"{PROBABILITY_PREFIX}{c}" for c in classes] if classes is not None else []
    model, version = loaded.name, loaded.version.version
    encode = _OUTPUT_ENCODER.encode
    for i, row in enumerate(rows):
        record: dict[str, Any] = {"key": row.message.key, "request_id": row.request_id, "model": model,
                                  "version": version, PREDICTION_COLUMN: predictions[i]}
        if row.index is not None:
            record["row"] = row.index
        if keys and probabilities is not None:
            record.update(zip(keys, probabilities[i], strict=True))
        if loaded.threshold is not None:  # which decision threshold gave the label
            record["threshold"] = loaded.threshold
        record[WARNINGS_COLUMN] = flags[i] if flags is not None else ""
        batch.outputs.append(Record(row.message.key, encode(record)))
    batch.log_entries.append(LogEntry(prepared.inputs, list(predictions), named, flags, [r.request_id for r in rows]))
    batch.warnings.extend(prepared.warnings)


__all__ = ["REASONS", "Limits", "LogEntry", "ScoredBatch", "decode", "score_messages"]
