"""The one-way flow of docs/DESIGN.md, checked on the import graph of ``src/mlpilot``.

The graph is built with `ast` (nothing is imported): a function-level import counts (a lazy
import is still a dependency), an import under ``if TYPE_CHECKING:`` does not. The rules:

(a) no import cycle between modules;
(b) the pure stages (data, tasks, features, tune, search, evaluate) never import registry,
    runtime, serve, monitor, autopilot, stream, cli or automl;
(c) nothing imports serve or cli, except cli itself and ``__main__``;
(d) nothing but cli imports the orchestration layer's entry points (automl's train/load);
(e) pyspark is imported only in spark/, broker clients only in stream/.

Violations that existed when this test was written are listed in ``KNOWN_*`` below (issue 11
removes them). The lists only shrink: a new violation fails, and so does an entry that is gone
(delete it from the list).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mlpilot"

PURE_STAGES = frozenset({"data", "tasks", "features", "tune", "search", "evaluate"})
DOWNSTREAM = frozenset({"registry", "runtime", "serve", "monitor", "autopilot", "stream", "cli", "automl",
                        "export"})
NOBODY_IMPORTS = frozenset({"serve", "cli"})
ENTRY_POINT_IMPORTERS = frozenset({"cli", "__main__", "automl"})
# the orchestration layer's entry points: the module that holds train/load, and those names
ENTRY_POINT_MODULES = frozenset({"mlpilot.automl._run"})
ENTRY_POINT_NAMES = {"mlpilot.automl": frozenset({"train", "load", "TrainingRun"}),
                     "mlpilot": frozenset({"train", "load"})}
# third-party top-level modules and the only package of mlpilot that may import them
CONFINED = {
    "pyspark": "spark",
    "kafka": "stream",
    "confluent_kafka": "stream",
    "aiokafka": "stream",
    "redis": "stream",
}

# --- today's violations (issue 11 removes them; delete an entry once it is gone) ------------
# (a) cycles, each as the set of modules of one strongly connected component
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()
# (b)-(e) edges as (importing module, imported module)
KNOWN_EDGES: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Edge:
    importer: str
    target: str  # a module of mlpilot, or a third-party dotted name as written
    names: frozenset[str]  # names taken by ``from target import ...``
    line: int

    @property
    def where(self) -> str:
        return f"{self.importer} line {self.line}"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    return skipped


def _owner(name: str, modules: dict[str, Path]) -> str:
    """The mlpilot module a dotted name lives in (``mlpilot.a.b.func`` -> ``mlpilot.a.b``)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _edges_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(module, alias.name, frozenset(), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                if path.name != "__init__.py":
                    parts = parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            plain = [a.name for a in node.names if f"{base}.{a.name}" not in modules]
            if plain:
                yield Edge(module, base, frozenset(plain), node.lineno)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    yield Edge(module, f"{base}.{alias.name}", frozenset(), node.lineno)


@cache
def import_graph() -> tuple[Edge, ...]:
    modules = _modules()
    edges = []
    for module, path in modules.items():
        for edge in _edges_of(module, path, modules):
            if edge.target == PACKAGE or edge.target.startswith(PACKAGE + "."):
                target = _owner(edge.target, modules)
                if target != module:
                    edges.append(Edge(edge.importer, target, edge.names, edge.line))
            else:
                edges.append(edge)
    return tuple(edges)


def _package(module: str) -> str:
    """``mlpilot.data._sources`` -> ``data``; ``mlpilot.client`` -> ``client``; ``mlpilot`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _internal(edge: Edge) -> bool:
    return edge.target == PACKAGE or edge.target.startswith(PACKAGE + ".")


def cycles(edges: tuple[Edge, ...]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if _internal(e):
            graph.setdefault(e.importer, set()).add(e.target)
            graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))
    return found


def violations(edges: tuple[Edge, ...]) -> dict[tuple[str, str], str]:
    """Each forbidden edge (importer, imported) with the rule it breaks and where."""
    found: dict[tuple[str, str], str] = {}
    for e in edges:
        src, key = _package(e.importer), (e.importer, e.target)
        if not _internal(e):
            top = e.target.split(".")[0]
            if top in CONFINED and src != CONFINED[top]:
                found[key] = f"(e) {e.where} imports {e.target}; only mlpilot.{CONFINED[top]} may"
            continue
        dst = _package(e.target)
        if src in PURE_STAGES and dst in DOWNSTREAM:
            found[key] = f"(b) {e.where}: the pure stage {src!r} imports {e.target} (downstream)"
        elif dst in NOBODY_IMPORTS and src != dst and src not in ("cli", "__main__"):
            found[key] = f"(c) {e.where} imports {e.target}: nothing imports {dst}"
        elif src not in ENTRY_POINT_IMPORTERS and (
            e.target in ENTRY_POINT_MODULES or e.names & ENTRY_POINT_NAMES.get(e.target, frozenset())
        ):
            if e.importer == PACKAGE:
                continue  # the curated re-export of mlpilot/__init__.py
            found[key] = f"(d) {e.where} imports the orchestration entry point {e.target}"
    return found


def test_the_graph_sees_the_imports_it_should() -> None:
    """On the real tree: a module-level import, one inside a function, every module read."""
    edges = import_graph()
    pairs = {(e.importer, e.target) for e in edges}
    assert ("mlpilot.automl._estimators", "mlpilot.automl._engine") in pairs
    assert ("mlpilot.automl._config", "mlpilot.search") in pairs  # inside a validator
    assert ("mlpilot.cli._app", "mlpilot.cli._train") in pairs
    importing = {m for m, path in _modules().items() if "import " in path.read_text(encoding="utf-8")}
    assert importing <= {e.importer for e in edges}


def test_the_walker_on_a_small_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "src"
    pkg = root / PACKAGE
    (pkg / "data").mkdir(parents=True)
    (pkg / "registry").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("from ._a import f\n")
    (pkg / "data" / "_a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from mlpilot.registry import Registry\n"
        "def f():\n    from mlpilot.registry._b import g\n    return g\n"
    )
    (pkg / "registry" / "__init__.py").write_text("")
    (pkg / "registry" / "_b.py").write_text("from mlpilot.data._a import f\nimport pyspark.sql\ng = f\n")
    monkeypatch.setattr(f"{__name__}.SRC", root)
    import_graph.cache_clear()
    try:
        edges = import_graph()
    finally:
        import_graph.cache_clear()
    pairs = {(e.importer, e.target) for e in edges}
    assert ("mlpilot.data", "mlpilot.data._a") in pairs  # relative
    assert ("mlpilot.data._a", "mlpilot.registry._b") in pairs  # in a function
    assert ("mlpilot.data._a", "mlpilot.registry") not in pairs  # TYPE_CHECKING only
    assert cycles(edges) == {frozenset({"mlpilot.data._a", "mlpilot.registry._b"})}
    assert set(violations(edges)) == {
        ("mlpilot.data._a", "mlpilot.registry._b"),
        ("mlpilot.registry._b", "pyspark.sql"),
    }


def test_no_new_import_cycle() -> None:
    found = cycles(import_graph())
    new = found - KNOWN_CYCLES
    assert not new, "Import cycles between modules (break them; see docs/DESIGN.md): " + "; ".join(
        " <-> ".join(sorted(c)) for c in new
    )


def test_known_cycles_still_exist() -> None:
    gone = KNOWN_CYCLES - cycles(import_graph())
    assert not gone, (
        "These cycles are gone: delete them from KNOWN_CYCLES in tests/test_architecture.py: "
        + "; ".join(" <-> ".join(sorted(c)) for c in gone)
    )


def test_imports_flow_one_way() -> None:
    found = violations(import_graph())
    new = {k: v for k, v in found.items() if k not in KNOWN_EDGES}
    assert not new, "Imports against the one-way flow (docs/DESIGN.md):\n" + "\n".join(sorted(new.values()))


def test_known_violations_still_exist() -> None:
    gone = KNOWN_EDGES - set(violations(import_graph()))
    assert not gone, (
        "These imports are gone: delete them from KNOWN_EDGES in tests/test_architecture.py: "
        + ", ".join(f"{a} -> {b}" for a, b in sorted(gone))
    )
