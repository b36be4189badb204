"""Is a row like the training data? The one set of rules for the JSON route, ``predict.csv`` and ``mlpilot predict``.

`input_problems` looks at validated input columns against the served
version's `Schema` and returns `Problem` values:

- ``empty_row`` (an error, 422): a row with no usable feature value, every
  field null;
- ``missing_value`` (a warning): a null where the training data had no
  missing values in that column;
- ``out_of_range`` (a warning): a numeric value outside the training range
  widened by `RANGE_MARGIN` of its span on each side (see `value_bounds`).

Warnings never change the prediction; they say it may be unreliable. Each
problem lists every row it concerns, so `row_flags` can give each row its
flags (a ``predict.csv`` column, the prediction log) and `flag_counts` the
counts ``/metrics`` exposes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.data import ColumnSchema, Problem, Schema, validate
from mlpilot.data._times import parse_times

#: Share of the training span (maximum - minimum) a value may lie beyond the
#: training minimum or maximum before it is flagged ``out_of_range``.
RANGE_MARGIN = 0.1
#: Kinds of problem that concern single rows and become per-row flags.
ROW_FLAG_KINDS = ("missing_value", "out_of_range", "unseen_category")


def value_bounds(col: ColumnSchema) -> tuple[float, float] | None:
    """The values of a numeric feature that raise no ``out_of_range`` warning, or ``None``.

    The training range ``[minimum, maximum]`` widened by `RANGE_MARGIN` times
    its span on each side; a column that had no negative values (no positive
    values) does not widen past zero, so a negative count is always flagged.

    Examples
    --------
    >>> col = ColumnSchema("account_length", "integer", "numeric", False, 212, minimum=1.0, maximum=243.0)
    >>> value_bounds(col)
    (0.0, 267.2)
    """
    if col.role != "numeric" or col.dtype not in ("integer", "float"):
        return None
    if col.minimum is None or col.maximum is None:
        return None
    low, high = float(col.minimum), float(col.maximum)
    margin = RANGE_MARGIN * (high - low)
    lower, upper = low - margin, high + margin
    if low >= 0:
        lower = max(lower, 0.0)
    if high <= 0:
        upper = min(upper, 0.0)
    return lower, upper


def _rows(idx: list[int]) -> str:
    shown = ", ".join(map(str, idx[:5]))
    return "row(s) " + shown + (f" and {len(idx) - 5} more" if len(idx) > 5 else "")


def _number(value: float) -> str:
    return f"{value:.6g}"


def _missing(values: Any) -> np.ndarray:
    return np.asarray(pd.isna(values), dtype=bool).reshape(-1)


def _numbers(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "iuf":
        return array.astype(float, copy=False).reshape(-1)
    return np.asarray(pd.to_numeric(pd.Series(array.reshape(-1), dtype=object), errors="coerce"), dtype=float)


def input_problems(columns: Mapping[str, Any] | pd.DataFrame, n_rows: int, schema: Schema) -> list[Problem]:
    """The ``empty_row`` errors and ``missing_value`` / ``out_of_range`` warnings of validated inputs.

    Parameters
    ----------
    columns : mapping or DataFrame
        One sequence of values per feature (lists, numpy arrays or a frame's
        columns), ``n_rows`` values each; features it lacks are skipped (their
        absence is an error of its own, found by the schema check).
    n_rows : int
    schema : Schema
        The served version's schema.

    Returns
    -------
    list of Problem
        Errors (severity ``"error"``) first, then warnings; each names its
        field and every row it concerns (row numbers count from 0).

    Examples
    --------
    >>> x = ColumnSchema("x", "float", "numeric", False, 10, minimum=0.0, maximum=10.0)
    >>> y = ColumnSchema("y", "float", "numeric", True, 10, minimum=0.0, maximum=10.0)
    >>> problems = input_problems({"x": [5.0, None, 1e9], "y": [1.0, 2.0, None]}, 3, Schema((x, y)))
    >>> [(p.kind, p.column, p.rows) for p in problems]
    [('missing_value', 'x', (1,)), ('out_of_range', 'x', (2,))]
    >>> [p.kind for p in input_problems({"x": [None], "y": [None]}, 1, Schema((x, y)))]
    ['empty_row', 'missing_value']
    """
    features = [col for col in schema.features if col.name in columns]
    if not features or n_rows == 0:
        return []
    warnings: list[Problem] = []
    has_value = np.zeros(n_rows, dtype=bool)
    for col in features:
        values = columns[col.name]
        missing = _missing(values)
        has_value |= ~missing
        if not col.nullable and missing.any():
            rows = np.flatnonzero(missing).tolist()
            warnings.append(Problem(
                col.name, "missing_value",
                f"Field {col.name!r} is null at {_rows(rows)}; the training data had no missing values "
                "there, so the prediction may be unreliable.",
                rows=tuple(rows), severity="warning",
            ))
        if col.role == "datetime" and col.dtype == "string" and not missing.all():
            # a date given as text that no format reads: the features take it as missing, say so
            text = pd.Series(np.asarray(values, dtype=object))
            unread = ~missing & parse_times(text).isna().to_numpy()
            if unread.any():
                rows = np.flatnonzero(unread).tolist()
                examples = tuple(repr(text.iloc[i])[:40] for i in rows[:3])
                warnings.append(Problem(
                    col.name, "missing_value",
                    f"Field {col.name!r} is no date or time that reads ({', '.join(examples)} at {_rows(rows)}); "
                    "it is taken as missing, so the prediction may be unreliable. Send dates such as "
                    "'2024-05-01' or '2024-05-01T12:00:00'.",
                    rows=tuple(rows), examples=examples, severity="warning",
                ))
        bounds = value_bounds(col)
        if bounds is None:
            continue
        numbers = _numbers(values)
        with np.errstate(invalid="ignore"):
            outside = (numbers < bounds[0]) | (numbers > bounds[1])
        if outside.any():
            rows = np.flatnonzero(outside).tolist()
            examples = tuple(_number(numbers[i]) for i in rows[:3])
            warnings.append(Problem(
                col.name, "out_of_range",
                f"Field {col.name!r} is outside the training range [{_number(float(col.minimum or 0))}, "
                f"{_number(float(col.maximum or 0))}] (with a {RANGE_MARGIN:.0%} margin): {', '.join(examples)} "
                f"at {_rows(rows)}; the prediction may be unreliable.",
                rows=tuple(rows), examples=examples, severity="warning",
            ))
    empty = np.flatnonzero(~has_value).tolist()
    if not empty:
        return warnings
    names = [col.name for col in schema.features]
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    error = Problem(
        None, "empty_row",
        f"No usable feature value at {_rows(empty)}: every field is null. "
        f"Send at least one of the model's fields ({shown}) with a value.",
        rows=tuple(empty),
    )
    return [error, *warnings]


def check_frame(frame: pd.DataFrame, schema: Schema) -> tuple[list[Problem], list[Problem]]:
    """Every error and warning of a frame to score (a CSV chunk, the rows of ``mlpilot predict``).

    `mlpilot.data.validate` (columns, types, unseen categories), then
    `input_problems` on the same frame, so a file gets the JSON route's rules: a
    column null throughout the frame is ``missing_value`` warnings, not the
    ``all_null`` error `validate` gives training data.

    Returns
    -------
    errors, warnings : list of Problem
    """
    result = validate(frame, schema)
    errors = [p for p in result.errors if p.kind != "all_null"]
    if errors:
        return errors, list(result.warnings)
    problems = input_problems(frame, len(frame), schema)
    errors = [p for p in problems if p.severity == "error"]
    return errors, [*result.warnings, *(p for p in problems if p.severity != "error")]


def row_flags(problems: Iterable[Problem], n_rows: int, offset: int = 0) -> list[str] | None:
    """Each row's warnings as ``"kind:field"`` joined by ``"; "`` (``""`` for a clean row); ``None`` if none.

    ``offset`` is the number of the first row (problems of a CSV chunk count rows from the file's start).

    Examples
    --------
    >>> row_flags([Problem("x", "out_of_range", "...", rows=(1,), severity="warning")], 2)
    ['', 'out_of_range:x']
    """
    flags: list[list[str]] | None = None
    for problem in problems:
        if problem.kind not in ROW_FLAG_KINDS or problem.severity != "warning":
            continue
        if flags is None:
            flags = [[] for _ in range(n_rows)]
        flag = f"{problem.kind}:{problem.column}"
        for row in problem.rows:
            if 0 <= row - offset < n_rows:
                flags[row - offset].append(flag)
    if flags is None:
        return None
    return ["; ".join(row) for row in flags]


def flag_counts(problems: Iterable[Problem]) -> dict[str, int]:
    """How many (field, row) pairs each kind of row problem flags."""
    counts: dict[str, int] = {}
    for problem in problems:
        if problem.kind in ROW_FLAG_KINDS or problem.kind == "empty_row":
            counts[problem.kind] = counts.get(problem.kind, 0) + max(len(problem.rows), 1)
    return counts


__all__ = ["RANGE_MARGIN", "ROW_FLAG_KINDS", "check_frame", "flag_counts", "input_problems", "row_flags", "value_bounds"]
