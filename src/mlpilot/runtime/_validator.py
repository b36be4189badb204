"""A per-schema check, built once per loaded version, that passes clean requests in one pass.

`convert_columns` validates any request and words every problem, at the cost
of a numpy array and a few set operations per column. Most requests are
clean: exactly the feature columns, values of the right JSON types, known
categories, numbers inside the training range, nulls only where training had
them. `SchemaValidator.is_clean` recognises those with plain type and range
checks; anything else (a missing or extra field, a wrong type, a non-finite
number, an unseen category, a value `mlpilot.runtime._quality` flags) goes to
`convert_columns` and `input_problems`, which give the same errors and
warnings as always.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpilot.data import Schema
from mlpilot.data._schema import MAX_CATEGORIES
from mlpilot.runtime._quality import value_bounds

_NUMBER = 0
_BOOLEAN = 1
_TEXT = 2
# Numbers beyond these take the full path (which refuses non-finite floats and
# keeps huge ints exact); as bounds they also refuse NaN and infinity.
_LOW = float(-(2**62) + 1)
_HIGH = float(2**62 - 1)
_NONE = type(None)
_NUMERIC = frozenset({int, float})
_STR = frozenset({str})
_BOOL = frozenset({bool})
_DICT = {dict}

#: One feature's check: name, kind, known categories (None: any), value bounds, nulls allowed.
Check = tuple[str, int, frozenset[str] | None, float, float, bool]


class SchemaValidator:
    """Recognises requests that `convert_columns` and `input_problems` would accept without a warning.

    Parameters
    ----------
    schema : Schema
        The served version's input schema.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.names = frozenset(schema.feature_names)
        checks: list[Check] = []
        for col in schema.features:
            if col.dtype in ("integer", "float"):
                kind = _NUMBER
            elif col.dtype == "boolean":
                kind = _BOOLEAN
            elif col.dtype == "string":
                kind = _TEXT
            else:
                raise ValueError(f"no fast check for {col.dtype} column {col.name!r}")
            # the categories `convert_columns` flags as unseen (see _inputs._unseen)
            flags = (col.categories is not None and col.role in ("categorical", "boolean")
                     and col.n_unique <= MAX_CATEGORIES)
            low, high = value_bounds(col) or (_LOW, _HIGH)
            checks.append((col.name, kind, frozenset(col.categories or ()) if flags else None,
                           max(low, _LOW), min(high, _HIGH), col.nullable))
        self.checks = tuple(checks)
        # A clean row has a value in every non-nullable feature, so only a schema
        # whose features are all nullable can see a row with no value at all.
        self._rows_may_be_empty = all(nullable for *_, nullable in checks)

    @classmethod
    def for_schema(cls, schema: Schema | None) -> SchemaValidator | None:
        """A validator, or ``None`` for schemas with columns it does not check (dates)."""
        if schema is None:
            return None
        try:
            return cls(schema)
        except ValueError:
            return None

    def clean_rows(self, payload: Any, max_rows: int) -> list[dict[str, Any]] | None:
        """``payload["rows"]`` when ``payload`` is ``{"rows": [...]}`` and every row is clean, else ``None``."""
        clean = self.clean_table(payload, max_rows)
        return clean[0] if clean is not None else None

    def clean_table(
        self, payload: Any, max_rows: int
    ) -> tuple[list[dict[str, Any]], dict[str, list[Any]] | None] | None:
        """`clean_rows` with the rows' values per feature, built once for the checks (``None`` for one row).

        The columns are what the compiled model reads: a batch is checked and
        encoded column by column, each check a few C-level passes over a list.
        """
        if type(payload) is not dict or len(payload) != 1:
            return None
        rows = payload.get("rows")
        if type(rows) is not list or not 0 < len(rows) <= max_rows:
            return None
        if len(rows) == 1:  # the common case, without a list per column
            row = rows[0]
            if type(row) is not dict or row.keys() != self.names:
                return None
            for name, kind, categories, low, high, nullable in self.checks:
                v = row[name]
                if v is None:
                    if not nullable:
                        return None
                elif not _clean_value(v, kind, categories, low, high):
                    return None
            if self._rows_may_be_empty and all(v is None for v in row.values()):
                return None
            return rows, None
        # every row a dict of exactly the features: as many keys as there are features, and each feature
        # found (`_columns` raises KeyError otherwise), a tenth of comparing 1,000 key sets
        if set(map(type, rows)) != _DICT or set(map(len, rows)) != {len(self.names)}:
            return None
        try:
            columns = self._columns(rows)
        except KeyError:
            return None
        for values, (_name, kind, categories, low, high, nullable) in zip(columns.values(), self.checks, strict=True):
            if not _clean(values, kind, categories, low, high, nullable):
                return None
        if self._rows_may_be_empty and any(all(v is None for v in row.values()) for row in rows):
            return None
        return rows, columns

    def _columns(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        return {name: [row[name] for row in rows] for name, *_ in self.checks}

    def is_clean(self, columns: Mapping[str, Any]) -> bool:
        """True when ``columns`` holds exactly the features, each a list of valid, known values."""
        if len(columns) != len(self.names) or not self.names.issuperset(columns):
            return False
        for name, kind, categories, low, high, nullable in self.checks:
            values = columns[name]
            if type(values) is not list or not _clean(values, kind, categories, low, high, nullable):
                return False  # (a list subclass records absent fields)
        if self._rows_may_be_empty and columns:
            lists = list(columns.values())
            if any(all(values[i] is None for values in lists) for i in range(len(lists[0]))):
                return False
        return True


def _clean_value(v: Any, kind: int, categories: frozenset[str] | None, low: float, high: float) -> bool:
    t = type(v)
    if kind == _NUMBER:
        return (t is float or t is int) and low <= v <= high
    if kind == _TEXT:
        return t is str and (categories is None or v in categories)
    return t is bool and (categories is None or str(v) in categories)


def _clean(
    values: list[Any], kind: int, categories: frozenset[str] | None, low: float, high: float, nullable: bool
) -> bool:
    """`_clean_value` of every value (``None`` where ``nullable``), in a few C-level passes over the list."""
    if not values:
        return True
    types = set(map(type, values))
    present = values
    if _NONE in types:
        if not nullable:
            return False
        types.discard(_NONE)
        present = [v for v in values if v is not None]
        if not present:
            return True
    if kind == _NUMBER:
        if not types <= _NUMERIC:
            return False
        try:
            total = sum(present)  # NaN wherever a value is NaN (or both infinities are there)
        except OverflowError:  # an integer beyond any float
            return False
        return total == total and low <= min(present) and max(present) <= high
    if kind == _TEXT:
        return types <= _STR and (categories is None or categories.issuperset(present))
    return types <= _BOOL and (categories is None or all(str(v) in categories for v in set(present)))
