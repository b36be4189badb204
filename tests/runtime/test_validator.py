"""The column-wise clean check agrees with the value-by-value rule on every kind of value."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from mlpilot.runtime._validator import _BOOLEAN, _NUMBER, _TEXT, _clean, _clean_value

VALUES: dict[int, list[Any]] = {
    _NUMBER: [0, 1, -3, 2.5, 1e9, -1e9, 2**62, 2**80, -(2**80), 10**400, math.nan, math.inf, -math.inf, True,
              "1", None, [1]],
    _TEXT: ["a", "b", "zz", "", 1, None, True, ["a"]],
    _BOOLEAN: [True, False, 1, 0, "True", None],
}
CATEGORIES: dict[int, list[frozenset[str] | None]] = {
    _NUMBER: [None], _TEXT: [None, frozenset({"a", "b"})], _BOOLEAN: [None, frozenset({"True"})],
}


def _reference(values: list[Any], kind: int, categories: frozenset[str] | None, low: float, high: float,
               nullable: bool) -> bool:
    return all(nullable if v is None else _clean_value(v, kind, categories, low, high) for v in values)


@pytest.mark.parametrize("kind", [_NUMBER, _TEXT, _BOOLEAN])
@pytest.mark.parametrize("nullable", [False, True])
def test_column_check_is_the_value_rule(kind: int, nullable: bool) -> None:
    pool = VALUES[kind]
    for categories in CATEGORIES[kind]:
        for low, high in ((-1e10, 1e10), (0.0, 3.0)):
            for size in (1, 2, 3):
                for values in itertools.product(pool, repeat=size):
                    column = list(values)
                    assert _clean(column, kind, categories, low, high, nullable) == _reference(
                        column, kind, categories, low, high, nullable), (column, categories, low, high)


@pytest.mark.parametrize(("change", "clean"), [
    (lambda row: row, True),
    (lambda row: {**row, "extra": 1}, False),  # one field more
    (lambda row: {k: v for k, v in row.items() if k != "x"}, False),  # one field fewer
    (lambda row: {"other" if k == "x" else k: v for k, v in row.items()}, False),  # as many fields, one not a feature
])
def test_a_batch_is_clean_only_when_every_row_has_exactly_the_features(change: Any, clean: bool) -> None:
    import pandas as pd

    from mlpilot.data import infer_schema
    from mlpilot.runtime._validator import SchemaValidator

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0] * 10, "c": ["a", "b", "a"] * 10, "y": [0, 1, 0] * 10})
    validator = SchemaValidator(infer_schema(frame, target="y"))
    rows = [{"x": 1.5, "c": "a"} for _ in range(10)]
    rows[7] = change(rows[7])
    found = validator.clean_table({"rows": rows}, 100)
    assert (found is not None) == clean
    if found is not None:
        assert found[1] == {"x": [1.5] * 10, "c": ["a"] * 10}
