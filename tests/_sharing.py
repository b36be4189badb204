"""Costly shared fixtures are built once per run, not once per xdist worker.

Under ``pytest -n N --dist loadgroup`` every test without an ``xdist_group`` is its own
work unit, so the tests of one module land on several workers and each of those workers
builds the module's (or the session's) fixtures again: a model trained four times where
the tests needed it once. A fixture decorated with :func:`once_per_run` sends every test
that uses it to one worker, by giving those tests one ``xdist_group``. Tests that share
two such fixtures, or such a fixture and an explicit ``xdist_group`` mark, all go to the
same group (the explicit mark's name wins, so ``tests/spark``'s group stays one group).

Under ``--dist loadgroup`` the work units are also queued longest first (`_long_units_first`):
the units with Spark tests (each group a chain of minutes on one worker, its JVM started once),
then those with ``slow`` tests, then the rest by their number of tests, as xdist orders them. A
long chain queued behind hundreds of short tests would start late and end the run last.

Without xdist (or with another ``--dist``) the marks change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "_mlpilot_once_per_run"
#: Marks whose work units are queued first, in this order: a Spark group runs for minutes on one worker,
#: a ``slow`` end-to-end test for a minute or more on its own.
_LONG_MARKS = ("spark", "slow")


def once_per_run(fixture_function: F) -> F:
    """Mark a module- or session-scoped fixture as too costly to build on every worker.

    Put it under ``@pytest.fixture(scope=...)``: the tests that use the fixture (directly
    or through another fixture) run on one xdist worker, which builds it once.

    Parameters
    ----------
    fixture_function
        The fixture's function, returned unchanged.

    Returns
    -------
    The same function, marked.
    """
    setattr(fixture_function, _MARK, True)
    return fixture_function


def _explicit_groups(item: pytest.Item) -> set[str]:
    return {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}


def _shared_fixtures(item: pytest.Item) -> set[str]:
    """The once-per-run fixtures ``item`` uses, as ``where::name`` (the definition that applies to it)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    found = set()
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name)
        if definitions and getattr(definitions[-1].func, _MARK, False):
            found.add(f"{definitions[-1].baseid or '.'}::{name}")
    return found


def _group_shared(items: list[pytest.Item]) -> None:
    """Give the tests that share a once-per-run fixture one ``xdist_group``."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    uses: list[tuple[pytest.Item, list[str]]] = []
    for item in items:
        explicit = _explicit_groups(item)
        keys = sorted(_shared_fixtures(item)) + sorted(f"group::{name}" for name in explicit)
        if not keys or (explicit and len(keys) == len(explicit)):
            continue  # nothing shared, or an explicit group alone (xdist does that)
        for key in keys:
            parent[find(key)] = find(keys[0])
        uses.append((item, keys))
    members: dict[str, set[str]] = {}
    for key in list(parent):
        members.setdefault(find(key), set()).add(key)
    for item, keys in uses:
        component = sorted(members[find(keys[0])])
        named = [key.removeprefix("group::") for key in component if key.startswith("group::")]
        if len(named) > 1:
            raise pytest.UsageError(f"{item.nodeid}: once-per-run fixtures join the xdist groups {named}; "
                                    "give their tests one group name")
        item.add_marker(pytest.mark.xdist_group(named[0] if named else component[0]))


def _suffix_group_names(items: list[pytest.Item]) -> None:
    """Put each grouped test's group after its node id, as ``--dist loadgroup`` reads it.

    pytest-xdist 3.8 writes ``item._nodeid``, which pytest 9.2's structured node ids no
    longer read (pytest-dev/pytest-xdist#1386), so every ``xdist_group`` was silently
    ignored. Where xdist's suffix took effect this does nothing.
    """
    for item in items:
        groups = _explicit_groups(item)
        if groups and "@" not in item.nodeid and hasattr(item, "_id"):
            item._id = type(item._id).parse(f"{item.nodeid}@{'_'.join(sorted(groups))}")


def _long_units_first(items: list[pytest.Item]) -> None:
    """Order ``items`` by work unit (an ``xdist_group``, else the test alone): those with Spark tests first,
    then those with slow tests, then by the unit's number of tests; stable, so each unit keeps its order."""
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        groups = _explicit_groups(item)
        units.setdefault("@" + "_".join(sorted(groups)) if groups else item.nodeid, []).append(item)

    def rank(members: list[pytest.Item]) -> tuple[int, ...]:
        long = [any(item.get_closest_marker(mark) is not None for item in members) for mark in _LONG_MARKS]
        return (*(-int(flag) for flag in long), -len(members))

    items[:] = [item for members in sorted(units.values(), key=rank) for item in members]


def pytest_configure(config: pytest.Config) -> None:
    """On xdist's controller under ``--dist loadgroup``: queue the units in the workers' collection order
    (`_long_units_first`), not re-sorted by their number of tests."""
    if config.pluginmanager.hasplugin("xdist") and config.getoption("dist", "no") == "loadgroup":
        config.option.loadscopereorder = False


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    """Group the tests of each once-per-run fixture, before xdist reads the groups; mend their node ids and
    queue the long units first after."""
    xdist = config.pluginmanager.hasplugin("xdist")
    if xdist:
        _group_shared(items)
    result = yield
    if xdist and getattr(config.option, "loadgroup", False):
        _suffix_group_names(items)
        _long_units_first(items)
    return result
