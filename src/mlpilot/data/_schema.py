"""Schema inference and validation.

A `Schema` records, per column, a logical type and a role. Every later stage
and the API validate frames against it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.data._times import CLOCK, QUARTER, WEEK, parse_times
from mlpilot.exceptions import ColumnNotFoundError, EmptyDataError, TargetError

ROLES = ("numeric", "categorical", "boolean", "datetime", "text", "id", "constant")
DTYPES = ("integer", "float", "boolean", "string", "datetime")
# Categories kept in the schema per categorical column (for the API and the UI form).
MAX_CATEGORIES = 200
_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key|rownames|index)$|^(id|rownames|row_?id|unnamed: ?0)$", re.I)


@dataclass(frozen=True)
class ColumnSchema:
    """One column: its logical type, its role and what values were seen."""

    name: str
    dtype: str
    role: str
    nullable: bool
    n_unique: int
    categories: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def is_feature(self) -> bool:
        return self.role not in ("id", "constant")


@dataclass(frozen=True)
class Schema:
    """The inferred schema of a table.

    Examples
    --------
    >>> df = pd.DataFrame({"id": range(50), "x": np.arange(50) / 7, "y": ["a", "b"] * 25})
    >>> s = infer_schema(df, target="y")
    >>> [(c.name, c.role) for c in s.columns]
    [('id', 'id'), ('x', 'numeric'), ('y', 'categorical')]
    >>> s.feature_names
    ['x']
    """

    columns: tuple[ColumnSchema, ...]
    target: str | None = None
    version: int = 1

    def __getitem__(self, name: str) -> ColumnSchema:
        for col in self.columns:
            if col.name == name:
                return col
        raise ColumnNotFoundError(name, self.names)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def features(self) -> list[ColumnSchema]:
        """Columns used as model inputs: not the target, not id-like, not constant."""
        return [c for c in self.columns if c.name != self.target and c.is_feature]

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    @property
    def excluded(self) -> list[ColumnSchema]:
        return [c for c in self.columns if c.name != self.target and not c.is_feature]

    def with_target(self, target: str | None) -> Schema:
        return Schema(self.columns, target, self.version)

    def drop(self, names: list[str]) -> Schema:
        return Schema(tuple(c for c in self.columns if c.name not in names), self.target, self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "target": self.target,
            "columns": [
                {**asdict(c), "categories": list(c.categories) if c.categories is not None else None}
                for c in self.columns
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        cols = tuple(
            ColumnSchema(**{**c, "categories": tuple(c["categories"]) if c.get("categories") is not None else None})
            for c in data["columns"]
        )
        return cls(cols, data.get("target"), int(data.get("version", 1)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default)

    @classmethod
    def from_json(cls, text: str) -> Schema:
        return cls.from_dict(json.loads(text))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def logical_dtype(series: pd.Series) -> str:
    """Map a pandas dtype to one of `DTYPES`."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        non_null = _sample(series).dropna()
        with np.errstate(invalid="ignore"):  # inf % 1 is nan: not integral
            integral = bool(np.all(np.mod(non_null.to_numpy(dtype=float), 1) == 0))
        if len(non_null) and integral and non_null.abs().max() < 2**53:
            return "integer"  # ints with NaN arrive as floats
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"


_SAMPLE_ROWS = 50_000


def _sample(series: pd.Series) -> pd.Series:
    """A fixed, seeded sample for the checks that need no exact answer."""
    if len(series) <= _SAMPLE_ROWS:
        return series
    return series.iloc[:: len(series) // _SAMPLE_ROWS + 1]


_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE_LIKE = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}"  # 2024-05-01, 05/01/2024
    rf"|{QUARTER.pattern}|{WEEK.pattern}|^\s*\d{{4}}[-/]\d{{1,2}}\s*$"  # 1998 Q1, 1991 W06, 2020-01
    rf"|{CLOCK.pattern}"  # 14:35, 02:31:38: a time of day or a duration
    rf"|(?i:\b{_MONTH}\s+(?:\d{{1,2}},?\s+)?\d{{4}}\b|\b\d{{1,2}}\s+{_MONTH}\s+\d{{4}}\b|\b\d{{4}}\s+{_MONTH}(?:\s|$))"
)  # Jan 1987, January 5, 2020, 5 Jan 2020, 1987 Jan
_SPACES = re.compile(r"\s+")


def looks_like_datetime(strings: list[str]) -> bool:
    """Whether (the first 200 of) ``strings`` are dates or times: more than 90% look like one and more
    than 95% read as one (`parse_times`). Used for the schema's roles, the leakage check and the target."""
    # plain Python over 200 strings: cheaper than pandas' string methods per column
    sample = strings[:200]
    if not sample or not sum(1 for v in sample if _DATE_LIKE.search(v)) / len(sample) > 0.9:
        return False
    return bool(parse_times(pd.Series(sample, dtype=object)).notna().mean() > 0.95)


def _numeric_role(name: str, dtype: str, n_rows: int, n_present: int, n_unique: int, counter: Callable[[], bool]) -> str:
    """The role of an integer or float column; ``counter`` says whether its sorted values step by 1."""
    if n_unique <= 1:
        return "constant"
    if dtype == "float" or n_unique == 2:
        return "numeric"
    unique_ratio = n_unique / max(n_present, 1)
    if _ID_NAME.search(name) and unique_ratio > 0.95:
        return "id"
    if unique_ratio == 1.0 and n_rows >= 20 and n_present > 1 and counter():
        return "id"  # a row counter such as R's rownames
    return "numeric"


def _infer_role(name: str, series: pd.Series, dtype: str, n_rows: int, n_unique: int) -> str:
    non_null = series.dropna()
    if dtype in ("integer", "float"):
        def counter() -> bool:
            return bool(np.all(np.diff(np.sort(non_null.to_numpy().astype(np.int64))) == 1))

        return _numeric_role(name, dtype, n_rows, len(non_null), n_unique, counter)
    if n_unique <= 1:
        return "constant"
    if dtype == "boolean" or (n_unique == 2 and dtype != "string"):
        return "boolean" if dtype == "boolean" else "categorical" if dtype == "string" else "numeric"
    if dtype == "datetime":
        return "datetime"
    # string-valued
    return _string_role(name, _sample(non_null).astype(str).tolist(), n_rows, len(non_null), n_unique)


def _string_role(name: str, sample: list[str], n_rows: int, n_present: int, n_unique: int) -> str:
    """The role of a string column with two or more values, from (a sample of) its present values."""
    unique_ratio = n_unique / max(n_present, 1)
    if _ID_NAME.search(name) and unique_ratio > 0.95:
        return "id"
    if looks_like_datetime(sample):
        return "datetime"
    mean_len = sum(map(len, sample)) / len(sample) if sample else 0.0
    head = sample[:2000]
    mean_words = sum(len(_SPACES.findall(v)) for v in head) / len(head) + 1 if head else 0.0
    if mean_words >= 4 and unique_ratio > 0.3 and mean_len > 20:
        return "text"
    if unique_ratio > 0.98 and n_rows >= 50:
        return "id"
    return "categorical"


def infer_column(name: str, series: pd.Series) -> ColumnSchema:
    """Infer the schema of one column."""
    n_rows = len(series)
    dtype = logical_dtype(series)
    try:
        n_unique = int(series.nunique(dropna=True))
    except TypeError:  # unhashable values such as lists
        n_unique = int(series.astype(str).nunique(dropna=True))
        dtype = "string"
    role = _infer_role(name, series, dtype, n_rows, n_unique)
    categories = None
    minimum = maximum = None
    if role in ("categorical", "boolean") and dtype in ("string", "boolean", "integer"):
        counts = series.dropna().astype(str).value_counts()
        categories = tuple(sorted(counts.index[:MAX_CATEGORIES].tolist()))
    if dtype in ("integer", "float") and n_unique:
        minimum = float(series.min())
        maximum = float(series.max())
    return ColumnSchema(
        name=str(name),
        dtype=dtype,
        role=role,
        nullable=bool(series.isna().any()),
        n_unique=n_unique,
        categories=categories,
        minimum=minimum,
        maximum=maximum,
    )


_BLOCK = 2_000


def _infer_columns(frame: pd.DataFrame) -> tuple[ColumnSchema, ...]:
    """`infer_column` for every column; plain numpy numeric columns a block at a time (wide tables)."""
    inferred: dict[str, ColumnSchema] = {}
    by_kind: dict[str, list[str]] = {}
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
            by_kind.setdefault(dtype.kind, []).append(str(name))
    for kind, names in by_kind.items():
        if len(names) < 50:
            continue  # not worth it
        for start in range(0, len(names), _BLOCK):
            part = names[start : start + _BLOCK]
            inferred.update(_infer_numeric_block(part, frame[part].to_numpy(), kind))
    strings = [str(n) for n, d in frame.dtypes.items() if pd.api.types.is_string_dtype(d)]
    if len(frame) <= SHORT_ROWS and len(strings) >= 50:
        for start in range(0, len(strings), _BLOCK):
            part = strings[start : start + _BLOCK]
            inferred.update(_infer_short_strings(part, frame[part]))
    return tuple(inferred.get(str(name)) or infer_column(str(name), frame[name]) for name in frame.columns)


# Tables with at most this many rows have their string columns inferred in plain Python.
SHORT_ROWS = 2_000


def present_strings(block: pd.DataFrame) -> list[list[str] | None]:
    """Each column's present values as a list of str, or None for a column holding other objects."""
    values = block.to_numpy(dtype=object)
    missing = block.isna().to_numpy()
    out: list[list[str] | None] = []
    for j in range(values.shape[1]):
        present = values[~missing[:, j], j].tolist()
        out.append(present if all(type(v) is str for v in present) else None)
    return out


def _infer_short_strings(names: list[str], block: pd.DataFrame) -> dict[str, ColumnSchema]:
    """`infer_column` for string columns of a short table, without pandas' per-call overhead."""
    n_rows = len(block)
    out: dict[str, ColumnSchema] = {}
    for name, present in zip(names, present_strings(block), strict=True):
        if present is None:
            continue
        distinct = set(present)
        if len(distinct) > MAX_CATEGORIES:
            continue  # the categories kept are the most frequent: leave ties to the general path
        n_unique = len(distinct)
        role = "constant" if n_unique <= 1 else _string_role(name, present, n_rows, len(present), n_unique)
        out[name] = ColumnSchema(
            name=name,
            dtype="string",
            role=role,
            nullable=len(present) < n_rows,
            n_unique=n_unique,
            categories=tuple(sorted(distinct)) if role == "categorical" else None,
        )
    return out


def _infer_numeric_block(names: list[str], block: np.ndarray, kind: str) -> dict[str, ColumnSchema]:
    """The schema of plain int or float columns, computed for the whole block at once."""
    n_rows = block.shape[0]
    present = ~np.isnan(block) if kind == "f" else np.ones(block.shape, dtype=bool)
    n_present = present.sum(axis=0)
    ordered = np.sort(block, axis=0)  # NaN sorts last
    rows = np.arange(n_rows)[:, None]
    with np.errstate(invalid="ignore"):
        steps = np.diff(ordered, axis=0)  # inf - inf is no step
    real_step = rows[1:] < n_present[None, :]  # both sides of the step present
    n_unique = np.where(n_present > 0, 1 + ((ordered[1:] != ordered[:-1]) & real_step).sum(axis=0), 0)
    counter = ((steps == 1) | ~real_step).all(axis=0)
    if kind == "f":
        step = 1 if n_rows <= _SAMPLE_ROWS else n_rows // _SAMPLE_ROWS + 1  # the rows `logical_dtype` looks at
        sample = block[::step]
        with np.errstate(invalid="ignore"):
            integral = (np.isnan(sample) | (np.mod(sample, 1) == 0)).all(axis=0)
            small = np.where(np.isnan(sample), 0, np.abs(sample)).max(axis=0) < 2**53
        has_sample = (~np.isnan(sample)).any(axis=0)
        is_integer = integral & small & has_sample
    else:
        is_integer = np.ones(len(names), dtype=bool)
    low = ordered[0]
    high = ordered[np.maximum(n_present - 1, 0), np.arange(len(names))]
    out: dict[str, ColumnSchema] = {}
    for j, name in enumerate(names):
        dtype = "integer" if is_integer[j] else "float"
        unique = int(n_unique[j])
        steps_by_one = bool(counter[j])
        role = _numeric_role(name, dtype, n_rows, int(n_present[j]), unique, lambda: steps_by_one)  # noqa: B023
        out[name] = ColumnSchema(
            name=name,
            dtype=dtype,
            role=role,
            nullable=bool(n_present[j] < n_rows),
            n_unique=unique,
            minimum=float(low[j]) if unique else None,
            maximum=float(high[j]) if unique else None,
        )
    return out


def infer_schema(frame: pd.DataFrame, target: str | None = None) -> Schema:
    """Infer a `Schema` for ``frame``.

    Parameters
    ----------
    frame : DataFrame
    target : str, optional
        The target column. It must exist, and must not be all null or constant.

    Raises
    ------
    EmptyDataError
        If the frame has no rows or no columns.
    ColumnNotFoundError
        If ``target`` is not a column; the message suggests the closest names.
    TargetError
        If the target is all null or has a single value.
    """
    if frame.shape[1] == 0:
        raise EmptyDataError("The data has no columns.")
    if frame.shape[0] == 0:
        raise EmptyDataError(
            f"The data has no rows (only the header: {', '.join(map(str, frame.columns[:10]))})."
        )
    columns = _infer_columns(frame)
    if target is not None:
        check_target(frame, target)
        columns = tuple(
            ColumnSchema(**{**asdict(c), "role": _target_role(c)}) if c.name == target else c
            for c in columns
        )
    return Schema(columns, target)


def _target_role(col: ColumnSchema) -> str:
    if col.role in ("id", "text"):
        return "categorical" if col.dtype == "string" else "numeric"
    return col.role


def check_target(frame: pd.DataFrame, target: str) -> None:
    """Raise a clear error if ``target`` is absent, all null or constant."""
    if target not in frame.columns:
        raise ColumnNotFoundError(target, [str(c) for c in frame.columns], what="target column")
    values = frame[target]
    n_missing = int(values.isna().sum())
    if n_missing == len(values):
        raise TargetError(f"The target column {target!r} is empty: all {len(values)} values are missing.")
    n_unique = int(values.nunique(dropna=True))
    if n_unique < 2:
        only = values.dropna().iloc[0]
        raise TargetError(
            f"The target column {target!r} has a single value ({only!r}) in all "
            f"{len(values) - n_missing} non-missing rows; there is nothing to learn. "
            "Choose another target or add data with other outcomes."
        )


@dataclass(frozen=True)
class Problem:
    """One problem found by `validate`."""

    column: str | None
    kind: str  # missing_column, extra_column, wrong_type, unseen_category, all_null, empty
    message: str
    rows: tuple[int, ...] = ()
    examples: tuple[str, ...] = ()
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ValidationResult:
    """Every problem `validate` found, errors and warnings."""

    problems: tuple[Problem, ...] = field(default=())

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        if self.errors:
            from mlpilot.exceptions import SchemaValidationError

            raise SchemaValidationError(self.errors)


_MAX_ROWS_SHOWN = 5


def _rows_text(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_MAX_ROWS_SHOWN])
    more = f" and {len(rows) - _MAX_ROWS_SHOWN} more" if len(rows) > _MAX_ROWS_SHOWN else ""
    return f"row(s) {shown}{more}"


def _bad_values(series: pd.Series, dtype: str) -> pd.Series:
    """A boolean mask of non-null values that do not fit ``dtype``."""
    present = series.notna()
    if dtype in ("integer", "float"):
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            values = series.astype(float)
            return present & ~np.isfinite(values.fillna(0.0))
        coerced = pd.to_numeric(series, errors="coerce")
        bad = present & coerced.isna()
        finite = np.isfinite(coerced.fillna(0.0).astype(float))
        return bad | (present & ~finite)
    if dtype == "datetime":
        if pd.api.types.is_datetime64_any_dtype(series):
            return present & False
        return present & parse_times(series).isna()
    if dtype == "boolean":
        ok_values = {"true", "false", "0", "1", "yes", "no", "t", "f"}
        return present & ~series.astype(str).str.lower().isin(ok_values)
    return present & False


def validate(frame: pd.DataFrame, schema: Schema, *, require_target: bool = False) -> ValidationResult:
    """Check ``frame`` against ``schema`` and return every problem at once.

    Errors: missing feature columns, values of the wrong type (with example
    values and row numbers), all-null columns that the schema says are never
    null, an empty frame. Warnings: extra columns, unseen categories.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.5] * 10, "c": ["a", "b", "c"] * 10})
    >>> s = infer_schema(df)
    >>> bad = pd.DataFrame({"x": ["1", "oops", "2"], "c": ["a", "zzz", "b"], "extra": [1, 2, 3]})
    >>> [p.kind for p in validate(bad, s).problems]
    ['wrong_type', 'unseen_category', 'extra_column']
    """
    problems: list[Problem] = []
    if len(frame) == 0:
        problems.append(Problem(None, "empty", "The data has no rows."))
    expected = schema.features + ([schema[schema.target]] if require_target and schema.target else [])
    present = set(map(str, frame.columns))
    for col in expected:
        if col.name not in present:
            problems.append(
                Problem(col.name, "missing_column", f"Column {col.name!r} ({col.dtype}) is required but missing.")
            )
            continue
        series = frame[col.name]
        if len(series) and series.isna().all() and not col.nullable:
            problems.append(
                Problem(col.name, "all_null", f"Column {col.name!r} is entirely null; the model needs values.")
            )
            continue
        if col.role in ("numeric", "datetime") or col.dtype in ("integer", "float", "datetime"):
            bad = _bad_values(series, col.dtype)
            if bad.any():
                rows = np.flatnonzero(bad.to_numpy()).tolist()
                examples = tuple(repr(v) for v in series[bad].head(3).tolist())
                problems.append(
                    Problem(
                        col.name,
                        "wrong_type",
                        f"Column {col.name!r} expects {col.dtype} values; got {', '.join(examples)} "
                        f"at {_rows_text(rows)}.",
                        rows=tuple(rows),
                        examples=examples,
                    )
                )
        if col.role in ("categorical", "boolean") and col.categories is not None and col.n_unique <= MAX_CATEGORIES:
            known = set(col.categories)
            values = series.dropna().astype(str)
            unseen_mask = ~values.isin(known)
            if unseen_mask.any():
                unseen = sorted(set(values[unseen_mask].tolist()))
                rows = np.flatnonzero(series.notna().to_numpy())[unseen_mask.to_numpy()].tolist()
                problems.append(
                    Problem(
                        col.name,
                        "unseen_category",
                        f"Column {col.name!r} has categories never seen in training: "
                        f"{', '.join(repr(u) for u in unseen[:5])} at {_rows_text(rows)}; "
                        "the model treats them as unknown.",
                        rows=tuple(rows),
                        examples=tuple(unseen[:5]),
                        severity="warning",
                    )
                )
    known_names = set(schema.names)
    for name in frame.columns:
        if str(name) not in known_names:
            problems.append(
                Problem(str(name), "extra_column", f"Column {name!r} is not in the schema and is ignored.", severity="warning")
            )
    return ValidationResult(tuple(problems))
