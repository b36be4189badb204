"""The vectorised forms of the compiled encoder's steps give what their one-row forms give."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlpilot.runtime._compile_steps import OneHot, RejectedInput


@pytest.mark.parametrize("values", [
    ["a", "b", "a", "b", "a"],  # every value known
    ["a", "c", None, "z", "b", float("nan")],  # dropped, missing, unknown
    ["z", "y", "x", "w", "v"],  # nothing known: no indicator at all
    [["a"], "a", "b", "a", "b"],  # an unhashable value
])
def test_one_hot_many_matches_one_row_at_a_time(values: list[Any]) -> None:
    writer = OneHot({"a": 0, "b": 1, "c": -1}, 3, missing=2, reject_unknown=False)
    out = np.zeros((len(values), 5))
    try:
        writer.many(values, out, 1)
    except TypeError:  # the unhashable value: refused as its row alone would be
        with pytest.raises(TypeError):
            writer.one(values[0], [0.0] * 5, 1)
        return
    expected = []
    for value in values:
        row = [0.0] * 5
        writer.one(value, row, 1)
        expected.append(row)
    np.testing.assert_array_equal(out, np.array(expected))


def test_one_hot_many_rejects_unknown_categories_when_asked() -> None:
    writer = OneHot({"a": 0, "b": 1}, 2, missing=None, reject_unknown=True)
    with pytest.raises(RejectedInput, match="unknown category"):
        writer.many(["a", "b", "z", "a", "b"], np.zeros((5, 2)), 0)
