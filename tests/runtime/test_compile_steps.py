"""The vectorised forms of the compiled encoder's steps give what their one-row forms give."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlpilot.runtime._compile_steps import (
    Chain,
    Divide,
    FeatureEncoder,
    FillNaN,
    InfToNaN,
    Lookup,
    OneHot,
    RejectedInput,
    Subtract,
    ToFloat,
    Writer,
)


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


def test_encoders_of_one_batch_share_the_steps_they_have_in_common() -> None:

    first = FeatureEncoder([Chain("x", (ToFloat(), InfToNaN()), Writer())])
    second = FeatureEncoder([Chain("x", (ToFloat(), InfToNaN(), FillNaN(0.5), Subtract(1.0), Divide(2.0)), Writer())])
    columns = {"x": [1.0, None, float("inf"), 4, -2.5, 7]}
    shared: dict[Any, Any] = {}
    together = [encoder.transform(columns, 6, shared) for encoder in (first, second)]
    alone = [encoder.transform(columns, 6) for encoder in (first, second)]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_array_equal(a, b)
    assert ("x", ToFloat(), InfToNaN()) in shared  # cast and cleaned once, for both
    assert columns["x"][:2] == [1.0, None]  # the request's values are left as they were


@pytest.mark.parametrize("values", [
    ["a", "b", "a", "b", "a"],
    ["a", None, "b", float("nan"), "z"],  # missing and unknown: their codes
    ["a", "n", "a", "b", "a"],  # a category whose code is NaN
])
def test_lookup_many_matches_one_value_at_a_time(values: list[Any]) -> None:
    lookup = Lookup({"a": 0.0, "b": 1.0, "n": float("nan")}, missing=2.0, unknown=3.0)
    np.testing.assert_array_equal(lookup.many(values), np.array([lookup.one(v) for v in values], dtype=float))


def test_lookup_many_refuses_what_one_refuses() -> None:
    lookup = Lookup({"a": 0.0}, missing=None, unknown=None)
    for bad in (None, "z"):
        with pytest.raises(RejectedInput):
            lookup.many(["a", "a", bad, "a", "a"])
