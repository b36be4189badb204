"""Turning parsed JSON and CSV chunks into validated model inputs, with messages naming the field and row.

Pure functions over parsed JSON and frames; reading request bodies is HTTP's
job (`mlpilot.serve._inputs`). Checks are per column, not per row, so a
1,000-row batch costs little more than one row.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.data import ColumnSchema, Problem, Schema
from mlpilot.data._schema import MAX_CATEGORIES
from mlpilot.data._times import parse_times
from mlpilot.exceptions import (
    InvalidParameterError,
    ResourceLimitError,
    SchemaValidationError,
)
from mlpilot.runtime import _json
from mlpilot.runtime._quality import check_frame

_SCALARS = (str, int, float, bool, type(None))
_NUMBER_TYPES = frozenset({int, float, type(None)})

def _reject_constant(token: str) -> Any:
    raise InvalidParameterError(
        f"The request body contains {token}, which is not valid JSON; send null for a missing value."
    )


# One decoder for every request (``json.loads`` with options builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(body: bytes, *, exact: bool = True) -> Any:
    """Parse strict JSON: no NaN or Infinity, and a clear message with the position.

    ``exact=False``: an integer beyond 64 bits may come back as the nearest float (`_json.loads`).
    """
    if not body or body.isspace():  # (strip() would copy the whole body to find out)
        raise InvalidParameterError('The request body is empty; send JSON such as {"rows": [{...}]}.')
    parsed = _json.loads(body, exact=exact)
    if parsed is not _json.NOT_PARSED:
        return parsed
    try:
        text = body.decode("utf-8-sig")
        if text.startswith("\ufeff"):  # what json.loads refuses before decoding
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except UnicodeDecodeError:
        raise InvalidParameterError("The request body is not valid UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except RecursionError:
        raise InvalidParameterError("The request body is nested too deeply.") from None


def columns_from_payload(payload: Any, max_rows: int) -> tuple[dict[str, list[Any]], int, list[dict[str, Any]] | None]:
    """Accept ``{"rows": [{...}]}`` or ``{"columns": {"col": [...]}}``.

    Returns the values per column, the number of rows and the original rows
    (``None`` for the columns form).
    """
    if not isinstance(payload, dict):
        raise InvalidParameterError(
            f'The request body must be a JSON object with "rows" or "columns". Got a JSON {_json_type(payload)}.'
        )
    unknown = sorted(set(payload) - {"rows", "columns"})
    if ("rows" in payload) == ("columns" in payload):
        raise InvalidParameterError(
            'The request body must have exactly one of "rows" (a list of objects) or "columns" '
            f"(an object of lists). Got keys {sorted(payload)[:10]}."
        )
    if unknown:
        raise InvalidParameterError(f"Unknown field(s) in the request body: {unknown[:10]}; accepted: rows, columns.")
    if "rows" in payload:
        rows = payload["rows"]
        if not isinstance(rows, list):
            raise InvalidParameterError(f'"rows" must be a list of objects. Got a JSON {_json_type(rows)}.')
        _check_count(len(rows), max_rows)
        bad = [i for i, r in enumerate(rows) if not isinstance(r, dict)]
        if bad:
            raise InvalidParameterError(
                f'Each item of "rows" must be an object of column values; rows {bad[:5]} are not '
                f"(row {bad[0]} is a JSON {_json_type(rows[bad[0]])})."
            )
        names: dict[str, None] = {}
        for r in rows:
            names.update(dict.fromkeys(r))
        columns = {name: [r.get(name) for r in rows] for name in names}
        if any(len(r) != len(names) for r in rows):
            # Keys absent from some rows: remember where, so a required field can name them.
            for name in names:
                absent = [i for i, r in enumerate(rows) if name not in r]
                if absent:
                    columns[name] = _Absent(columns[name], absent)
        return columns, len(rows), rows
    columns = payload["columns"]
    if not isinstance(columns, dict):
        raise InvalidParameterError(f'"columns" must be an object of lists. Got a JSON {_json_type(columns)}.')
    lengths = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            raise InvalidParameterError(f'"columns"[{name!r}] must be a list of values. Got a JSON {_json_type(values)}.')
        lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        raise InvalidParameterError(
            f"Every column must have the same number of values. Got lengths {dict(list(lengths.items())[:10])}."
        )
    n = next(iter(lengths.values()), 0)
    _check_count(n, max_rows)
    return columns, n, None


class _Absent(list[Any]):
    """A column's values that also records the rows where the field was absent."""

    def __init__(self, values: list[Any], absent: list[int]) -> None:
        super().__init__(values)
        self.absent = absent


def _check_count(n: int, max_rows: int) -> None:
    if n == 0:
        raise InvalidParameterError("The request has no rows; send at least one row to predict.")
    if n > max_rows:
        raise ResourceLimitError(
            f"The request has {n} rows; the limit is {max_rows} per request. "
            "Split it, or use the predict.csv endpoint for batches."
        )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _rows(idx: list[int]) -> str:
    shown = ", ".join(map(str, idx[:5]))
    return shown + (f" and {len(idx) - 5} more" if len(idx) > 5 else "")


def _type_problem(col: ColumnSchema, values: list[Any], bad: list[int], expected: str) -> Problem:
    examples = tuple(_short(values[i]) for i in bad[:3])
    return Problem(
        col.name,
        "wrong_type",
        f"Field {col.name!r} expects {expected}; got {', '.join(examples)} at row(s) {_rows(bad)}.",
        rows=tuple(bad[:100]),
        examples=examples,
    )


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (RecursionError, ValueError):
        text = f"a nested JSON {_json_type(value)}"
    return text if len(text) <= 40 else text[:37] + "..."


def _convert(col: ColumnSchema, values: list[Any]) -> tuple[Any, Problem | None]:
    """Convert one column's JSON values to what the model was trained on."""
    types = set(map(type, values))
    if col.dtype in ("integer", "float"):
        if types <= _NUMBER_TYPES:
            try:
                array = np.array(values, dtype=float)
            except OverflowError:
                array = np.array([math.inf if isinstance(v, int) and abs(v) > 2**1023 else v for v in values], dtype=float)
            finite = np.isfinite(array) | np.array([v is None for v in values])
            if not finite.all():
                bad = np.flatnonzero(~finite).tolist()
                return None, _type_problem(col, values, bad, "a finite number")
            if (col.dtype == "integer" and type(None) not in types and float not in types
                    and np.abs(array).max() < 2**62):
                return np.array(values, dtype=np.int64), None
            return array, None
        bad = [i for i, v in enumerate(values) if type(v) not in _NUMBER_TYPES]
        return None, _type_problem(col, values, bad, "a number")
    if col.dtype == "boolean":
        if types <= {bool, type(None)}:
            return pd.array(values, dtype="boolean") if type(None) in types else np.array(values, dtype=bool), None
        bad = [i for i, v in enumerate(values) if type(v) not in (bool, type(None))]
        return None, _type_problem(col, values, bad, "true or false")
    if col.dtype == "datetime":
        bad = [i for i, v in enumerate(values) if type(v) not in (str, type(None))]
        if bad:
            return None, _type_problem(col, values, bad, "a date-time string such as '2024-05-01T12:00:00'")
        parsed = parse_times(pd.Series(values, dtype=object))
        bad = [i for i, v in enumerate(values) if v is not None and pd.isna(parsed.iloc[i])]
        if bad:
            return None, _type_problem(col, values, bad, "a date-time string such as '2024-05-01T12:00:00'")
        return parsed.to_numpy(), None
    if types <= {str, type(None)}:
        return np.array(values, dtype=object), None
    bad = [i for i, v in enumerate(values) if type(v) not in (str, type(None))]
    return None, _type_problem(col, values, bad, "a string")


def build_frame(
    columns: dict[str, list[Any]], n_rows: int, schema: Schema | None
) -> tuple[pd.DataFrame, list[Problem]]:
    """Build the model's input frame; raise `SchemaValidationError` listing every problem.

    Returns the frame (feature columns in schema order) and the warnings
    (extra columns, unseen categories).
    """
    data, warnings = convert_columns(columns, schema)
    return pd.DataFrame(data, index=pd.RangeIndex(n_rows), copy=False), warnings


def convert_columns(
    columns: dict[str, list[Any]], schema: Schema | None
) -> tuple[dict[str, Any], list[Problem]]:
    """`build_frame` without the frame: one array per feature, in schema order."""
    if schema is None:
        for name, values in columns.items():
            bad = [i for i, v in enumerate(values) if not isinstance(v, _SCALARS)]
            if bad:
                raise SchemaValidationError([Problem(name, "wrong_type", f"Field {name!r} must hold scalar values; rows {_rows(bad)} do not.")])
        return dict(columns), []
    problems: list[Problem] = []
    data: dict[str, Any] = {}
    for col in schema.features:
        if col.name not in columns:
            problems.append(
                Problem(col.name, "missing_column", f"Field {col.name!r} ({col.dtype}) is required but missing.")
            )
            continue
        values = columns[col.name]
        if isinstance(values, _Absent):
            problems.append(
                Problem(col.name, "missing_column", f"Field {col.name!r} is missing from row(s) {_rows(values.absent)}.",
                        rows=tuple(values.absent[:100]))
            )
            continue
        converted, problem = _convert(col, values)
        if problem is not None:
            problems.append(problem)
        else:
            data[col.name] = converted
    known = _known_names(schema)
    extra = [name for name in columns if name not in known]
    if problems:
        raise SchemaValidationError(problems)
    warnings = [p for col in schema.features if (p := _unseen(col, columns[col.name])) is not None]
    warnings.extend(
        Problem(name, "extra_column", f"Field {name!r} is not an input of the model and was ignored.", severity="warning")
        for name in extra
    )
    return data, warnings


# Per-schema lookups, computed once per served schema rather than per request.
_KNOWN: dict[int, tuple[Schema, frozenset[str]]] = {}
_CATEGORIES: dict[int, tuple[ColumnSchema, frozenset[str]]] = {}


def _known_names(schema: Schema) -> frozenset[str]:
    cached = _KNOWN.get(id(schema))
    if cached is None or cached[0] is not schema:
        if len(_KNOWN) > 256:  # schemas of versions swapped out long ago
            _KNOWN.clear()
        cached = _KNOWN[id(schema)] = (schema, frozenset(schema.names))
    return cached[1]


def _unseen(col: ColumnSchema, values: list[Any]) -> Problem | None:
    """A warning for categories never seen in training (the pipeline treats them as unknown)."""
    if col.categories is None or col.role not in ("categorical", "boolean") or col.n_unique > MAX_CATEGORIES:
        return None
    cached = _CATEGORIES.get(id(col))
    if cached is None or cached[0] is not col:
        if len(_CATEGORIES) > 4096:
            _CATEGORIES.clear()
        cached = _CATEGORIES[id(col)] = (col, frozenset(col.categories))
    known = cached[1]
    as_text = [v if isinstance(v, str) else str(v) for v in values]
    rows = [i for i, (v, t) in enumerate(zip(values, as_text, strict=True)) if v is not None and t not in known]
    if not rows:
        return None
    unseen = sorted({as_text[i] for i in rows})
    return Problem(
        col.name,
        "unseen_category",
        f"Field {col.name!r} has categories never seen in training: "
        f"{', '.join(repr(u) for u in unseen[:5])} at row(s) {_rows(rows)}; the model treats them as unknown.",
        rows=tuple(rows),
        examples=tuple(unseen[:5]),
        severity="warning",
    )


def coerce_csv_chunk(chunk: pd.DataFrame, schema: Schema | None, offset: int) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate a chunk read from CSV; row numbers in messages count from the first data row.

    The rules are `check_frame`'s, shared with ``mlpilot predict``.
    """
    if schema is None:
        return chunk, []
    errors, warnings = check_frame(chunk, schema)
    if errors:
        raise SchemaValidationError([_shift(p, offset) for p in errors])
    frame = chunk[schema.feature_names].copy()
    for col in schema.features:
        if col.dtype in ("integer", "float") and not pd.api.types.is_numeric_dtype(frame[col.name]):
            frame[col.name] = pd.to_numeric(frame[col.name], errors="coerce")
        elif col.dtype == "string":
            frame[col.name] = frame[col.name].astype(object).where(frame[col.name].notna(), None)
            frame[col.name] = frame[col.name].map(lambda v: v if v is None or isinstance(v, str) else str(v))
        elif col.dtype == "datetime":
            frame[col.name] = parse_times(frame[col.name])
    return frame, [_shift(p, offset) for p in warnings]


def _shift(problem: Problem, offset: int) -> Problem:
    if not offset or not problem.rows:
        return problem
    rows = tuple(r + offset for r in problem.rows)
    message = problem.message
    old = f"row(s) {_rows(list(problem.rows))}"
    if old in message:
        message = message.replace(old, f"row(s) {_rows(list(rows))}")
    return Problem(problem.column, problem.kind, message, rows, problem.examples, problem.severity)


def csv_dtypes(schema: Schema | None) -> dict[str, Any]:
    """Read string features as strings, so '0415' or 'NA'-like codes keep their text."""
    if schema is None:
        return {}
    return {c.name: "string" for c in schema.features if c.dtype == "string"}
