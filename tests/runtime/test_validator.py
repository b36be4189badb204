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
