"""tests/_sharing.py's queue order under ``--dist loadgroup``: long units first, each unit kept in its order."""

from __future__ import annotations

from typing import Any, cast

import pytest

from tests._sharing import _long_units_first


class _Item:
    """What `_long_units_first` reads of a collected test: its node id, its group and its marks."""

    def __init__(self, nodeid: str, group: str | None = None, *marks: str) -> None:
        self.nodeid = nodeid
        self._group, self._marks = group, marks

    def iter_markers(self, name: str) -> list[Any]:
        return [pytest.mark.xdist_group(self._group).mark] if name == "xdist_group" and self._group else []

    def get_closest_marker(self, name: str) -> Any:
        return getattr(pytest.mark, name).mark if name in self._marks else None

    def __repr__(self) -> str:
        return self.nodeid


def test_spark_units_then_slow_units_then_bigger_units_each_in_its_own_order() -> None:
    items = [
        _Item("a::one"),
        _Item("b::in_big_1", "big"), _Item("b::in_big_2", "big"), _Item("b::in_big_3", "big"),
        _Item("c::e2e", None, "slow"),
        _Item("d::fit_1", "spark-fit", "spark"), _Item("d::fit_2", "spark-fit", "spark"),
        _Item("e::pair_1", "pair"), _Item("e::pair_2", "pair"),
        _Item("f::venv", "venv", "slow"), _Item("f::plain", "venv"),
        _Item("g::train_1", "spark", "spark"),
        _Item("h::two"),
        _Item("d::fit_3", "spark-fit", "spark"),  # a group's tests stay together, in collection order
    ]
    ordered = cast(list[pytest.Item], list(items))
    _long_units_first(ordered)
    assert [i.nodeid for i in ordered] == [
        "d::fit_1", "d::fit_2", "d::fit_3",  # Spark units, the bigger first
        "g::train_1",
        "f::venv", "f::plain",  # units with a slow test, the bigger first
        "c::e2e",
        "b::in_big_1", "b::in_big_2", "b::in_big_3",  # then by size, as xdist orders them
        "e::pair_1", "e::pair_2",
        "a::one", "h::two",  # single tests keep their collection order
    ]
