"""The pieces of a compiled feature encoder: per-column steps and the writers that place them.

A fitted preprocessing pipeline is column-wise in the cases the fast path
supports: each output feature depends on one input column through a chain of
scalar steps (cast, impute, scale, ordinal code) that ends in a writer (one
float, a one-hot block, a missing-value indicator). Every step has a scalar
form for one row (plain Python, no array overhead) and a vectorised form for
batches; verification at load time runs both against the real pipeline.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_NAN = float("nan")
# Up to this many rows, plain Python per value beats numpy's per-call overhead.
_SCALAR_ROWS = 4

#: Validated request values: a list of row dicts, or a mapping of column to values.
Table = list[dict[str, Any]] | Mapping[str, Sequence[Any]]


class CompileError(Exception):
    """The model (or a part of it) has no compiled equivalent; the general path serves it."""


class RejectedInput(ValueError):
    """The compiled path cannot score these values (the general path decides what to answer)."""


def is_missing(value: Any) -> bool:
    """None or NaN: what scikit-learn treats as missing in object and float columns."""
    return value is None or (isinstance(value, float) and math.isnan(value))


class Step:
    """One value in, one value out."""

    def one(self, value: Any) -> Any:
        raise NotImplementedError

    def many(self, values: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class ToFloat(Step):
    """Numbers and booleans as float, missing as NaN (what pandas and scikit-learn see)."""

    def one(self, value: Any) -> float:
        return _NAN if value is None else float(value)

    def many(self, values: Any) -> np.ndarray:
        return np.array(values, dtype=float)


@dataclass(frozen=True)
class InfToNaN(Step):
    """mlpilot's preprocessor treats infinities as missing."""

    def one(self, value: float) -> float:
        return _NAN if math.isinf(value) else value

    def many(self, values: np.ndarray) -> np.ndarray:
        return np.where(np.isinf(values), np.nan, values)


@dataclass(frozen=True)
class FillNaN(Step):
    """Replace NaN by a fitted number (SimpleImputer's statistic, a median)."""

    fill: float

    def one(self, value: float) -> float:
        return self.fill if value != value else value

    def many(self, values: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(values), self.fill, values)


@dataclass(frozen=True)
class FillMissing(Step):
    """Replace None/NaN by a fitted value in an object column (most frequent, constant)."""

    fill: Any

    def one(self, value: Any) -> Any:
        return self.fill if is_missing(value) else value

    def many(self, values: Any) -> np.ndarray:
        return np.array([self.fill if is_missing(v) else v for v in values], dtype=object)


@dataclass(frozen=True)
class Subtract(Step):
    amount: float

    def one(self, value: float) -> float:
        return value - self.amount

    def many(self, values: np.ndarray) -> np.ndarray:
        return values - self.amount


@dataclass(frozen=True)
class Divide(Step):
    by: float

    def one(self, value: float) -> float:
        return value / self.by

    def many(self, values: np.ndarray) -> np.ndarray:
        return values / self.by


@dataclass(frozen=True)
class Multiply(Step):
    by: float

    def one(self, value: float) -> float:
        return value * self.by

    def many(self, values: np.ndarray) -> np.ndarray:
        return values * self.by


@dataclass(frozen=True)
class Add(Step):
    amount: float

    def one(self, value: float) -> float:
        return value + self.amount

    def many(self, values: np.ndarray) -> np.ndarray:
        return values + self.amount


@dataclass(frozen=True)
class Clip(Step):
    low: float
    high: float

    def one(self, value: float) -> float:
        return float(np.clip(value, self.low, self.high))

    def many(self, values: np.ndarray) -> np.ndarray:
        return np.clip(values, self.low, self.high)


@dataclass(frozen=True)
class AsText(Step):
    """``str(value)`` for present values, as mlpilot's preprocessor reads categories."""

    def one(self, value: Any) -> Any:
        return None if is_missing(value) else value if isinstance(value, str) else str(value)

    def many(self, values: Any) -> Any:
        if set(map(type, values)) <= _TEXT:  # what JSON text brings: nothing to convert
            return values
        one = self.one
        return [one(v) for v in values]


_ABSENT = object()
_TEXT = {str}


@dataclass(frozen=True)
class Lookup(Step):
    """Category to code by a dict; ``missing`` for None/NaN, ``unknown`` for the rest.

    ``unknown=None`` means an unseen value has no code and is rejected (the
    encoder was fitted with ``handle_unknown="error"``).
    """

    codes: dict[Any, float]
    missing: float | None
    unknown: float | None

    def one(self, value: Any) -> float:
        if is_missing(value):
            if self.missing is None:
                raise RejectedInput("missing value without a code")
            return self.missing
        code = self.codes.get(value)
        if code is None:
            if self.unknown is None:
                raise RejectedInput("unknown category")
            return self.unknown
        return code

    def many(self, values: Any) -> np.ndarray:
        get = self.codes.get
        try:  # every value has a code: one pass in C (a value without one gives None, NaN here)
            found = np.fromiter(map(get, values), dtype=float, count=len(values))
        except TypeError:  # an unhashable value
            pass
        else:
            if not np.isnan(found).any():
                return found
        try:
            codes = [get(v, _ABSENT) for v in values]
        except TypeError:  # an unhashable value: `one` says what it is
            codes = [_ABSENT] * len(values)
        if _ABSENT in codes:  # missing and unknown values (or codes that are None): the scalar rules
            one = self.one
            codes = [one(v) if c is _ABSENT or c is None else c for v, c in zip(values, codes, strict=True)]
        return np.array(codes, dtype=float)


#: Steps equal by value that never change the values they are given: two encoders'
#: chains that begin with equal ones can share what those steps give.
_SHAREABLE = frozenset({ToFloat, InfToNaN, FillNaN, FillMissing, Subtract, Divide, Multiply, Add, Clip, AsText})


# -- writers: the end of a chain, placing its value(s) in the output row ----------------


class Writer:
    """Writes one column's encoded value(s) at ``offset``; ``width`` outputs."""

    width = 1

    def one(self, value: Any, row: list[float], offset: int) -> None:
        row[offset] = value

    def many(self, values: Any, out: np.ndarray, offset: int) -> None:
        out[:, offset] = values


class Dropped(Writer):
    """A column the transformer drops (SimpleImputer's all-missing features)."""

    width = 0

    def one(self, value: Any, row: list[float], offset: int) -> None:
        return None

    def many(self, values: Any, out: np.ndarray, offset: int) -> None:
        return None


class MissingIndicator(Writer):
    """1.0 where the (float) value is NaN."""

    def one(self, value: float, row: list[float], offset: int) -> None:
        row[offset] = 1.0 if value != value else 0.0

    def many(self, values: np.ndarray, out: np.ndarray, offset: int) -> None:
        out[:, offset] = np.isnan(values)


class OneHot(Writer):
    """A block of ``width`` indicators.

    ``positions`` maps each category to its column, or to -1 when the encoder
    drops that category; ``missing`` is the column of the missing-value
    category (None if there was none). Unknown values give zeros, or are
    rejected when ``reject_unknown``.
    """

    def __init__(self, positions: dict[Any, int], width: int, *, missing: int | None, reject_unknown: bool) -> None:
        self.positions = positions
        self.width = width
        self.missing = missing
        self.reject_unknown = reject_unknown

    def position(self, value: Any) -> int | None:
        position = self.missing if is_missing(value) else self.positions.get(value)
        if position is None:
            if self.reject_unknown:
                raise RejectedInput("unknown category")
            return None
        return position if position >= 0 else None

    def one(self, value: Any, row: list[float], offset: int) -> None:
        position = self.position(value)
        if position is not None:
            row[offset + position] = 1.0

    def many(self, values: Any, out: np.ndarray, offset: int) -> None:
        get = self.positions.get
        try:  # every value has a position: one pass in C (a value without one gives None: refused)
            known = np.fromiter(map(get, values), dtype=np.intp, count=len(values))
        except TypeError:
            pass
        else:
            self._write(known, out, offset)
            return
        found: list[Any]
        try:
            found = [get(v, _ABSENT) for v in values]
        except TypeError:  # an unhashable value: `position` says what it is
            found = [_ABSENT] * len(values)
        if _ABSENT in found:  # missing and unknown values: the scalar rules (None: no indicator)
            position = self.position
            found = [(-1 if (q := position(v)) is None else q) if p is _ABSENT else p
                     for v, p in zip(values, found, strict=True)]
        self._write(np.array(found, dtype=np.intp), out, offset)

    @staticmethod
    def _write(positions: np.ndarray, out: np.ndarray, offset: int) -> None:
        # one fancy assignment over arrays: a Python pair per hit costs ten times as much at 1,000 rows
        if positions.size and positions.min() >= 0:
            out[np.arange(positions.size), positions + offset] = 1.0
            return
        rows = np.flatnonzero(positions >= 0)
        if rows.size:
            out[rows, positions[rows] + offset] = 1.0


def columns_of(rows: list[dict[str, Any]], sources: Sequence[str]) -> dict[str, Sequence[Any]]:
    """Row dicts as a mapping of each of ``sources`` to its values (one C-level pass per row)."""
    if not sources:
        return {}
    if len(sources) == 1:
        return {sources[0]: [r[sources[0]] for r in rows]}
    pick = operator.itemgetter(*sources)
    return dict(zip(sources, zip(*map(pick, rows), strict=True), strict=True)) if rows else {s: [] for s in sources}


def shared_table(table: Table, n_rows: int, sources: Sequence[str]) -> Table:
    """``table`` as several encoders read it: row dicts of a batch turned into columns once, for all of them."""
    if n_rows <= _SCALAR_ROWS or not isinstance(table, list):
        return table
    return columns_of(table, sources)


@dataclass
class Chain:
    """One input column through ``steps`` into ``writer``; ``offset`` is set when laid out."""

    source: str
    steps: tuple[Step, ...]
    writer: Writer
    offset: int = 0

    def then(self, steps: Sequence[Step], writer: Writer | None = None) -> Chain:
        if type(self.writer) is not Writer:
            raise CompileError("a one-hot, indicator or dropped column cannot feed another transformer")
        return Chain(self.source, (*self.steps, *steps), writer if writer is not None else self.writer)

    def probe_values(self) -> list[Any]:
        """The categories this chain knows, so verification can try each of them."""
        found: list[Any] = []
        for step in self.steps:
            if isinstance(step, Lookup):
                found.extend(step.codes)
        if isinstance(self.writer, OneHot):
            found.extend(self.writer.positions)
        return found


class FeatureEncoder:
    """Input columns to the float matrix the model was trained on.

    Parameters
    ----------
    chains : sequence of Chain
        In output order; each occupies ``writer.width`` columns.
    """

    def __init__(self, chains: Sequence[Chain]) -> None:
        offset = 0
        laid_out = []
        for chain in chains:
            laid_out.append(Chain(chain.source, chain.steps, chain.writer, offset))
            offset += chain.writer.width
        self.chains = tuple(laid_out)
        self.width = offset
        # bound methods, looked up once: the one-row path runs them per request
        self._scalar = tuple((c.source, tuple(s.one for s in c.steps), c.writer.one, c.offset) for c in self.chains)
        self.sources = tuple(dict.fromkeys(c.source for c in self.chains))

    def row(self, values: Mapping[str, Any]) -> list[float]:
        """One row dict encoded as plain floats (the scalar steps, no arrays)."""
        row = [0.0] * self.width
        for source, steps, write, offset in self._scalar:
            value = values[source]
            for apply in steps:
                value = apply(value)
            write(value, row, offset)
        return row

    def transform(self, table: Table, n_rows: int, shared: dict[Any, Any] | None = None) -> np.ndarray:
        """A ``(n_rows, width)`` float64 matrix; raises `RejectedInput` for values it cannot encode.

        ``table`` is either a list of row dicts or a mapping of column name to values.
        ``shared`` keeps, for the encoders of one batch, each column's values after the
        steps they have in common (the same numbers cast and cleaned once for all).
        """
        if n_rows <= _SCALAR_ROWS:
            rows = table if isinstance(table, list) else [
                {source: table[source][i] for source in self.sources} for i in range(n_rows)]
            return np.array([self.row(r) for r in rows], dtype=float).reshape(n_rows, self.width)
        columns = table if not isinstance(table, list) else columns_of(table, self.sources)
        out = np.zeros((n_rows, self.width))
        for chain in self.chains:
            values: Any = columns[chain.source]
            key: tuple[Any, ...] | None = (chain.source,) if shared is not None else None
            for step in chain.steps:
                if shared is not None and key is not None and type(step) in _SHAREABLE:
                    key = (*key, step)
                    found = shared.get(key, _ABSENT)
                    if found is not _ABSENT:
                        values = found
                        continue
                    values = step.many(values)
                    shared[key] = values
                    continue
                key = None  # a step compared by identity, or one with a table: not shared from here on
                values = step.many(values)
            chain.writer.many(values, out, chain.offset)
        return out
