"""Read a source, snapshot it and record the snapshot: the orchestrator's first steps.

`mlpilot.data` reads and snapshots (files only); the registry record is made
here, so that no stage below the orchestration layer opens a registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mlpilot._types import PathLike
from mlpilot._workspace import Workspace
from mlpilot.data import Dataset, Snapshot, load_dataset

if TYPE_CHECKING:
    from mlpilot.data import Schema
    from mlpilot.data._sources import Source
    from mlpilot.registry import Registry


def record_snapshot(registry: Registry, snapshot: Snapshot, schema: Schema | None) -> None:
    """Record ``snapshot`` (and its schema) in ``registry``; the same content recorded again is kept once."""
    registry.record_dataset(
        id=snapshot.id,
        source=snapshot.source,
        path=str(snapshot.path.relative_to(registry.workspace.root)),
        n_rows=snapshot.n_rows,
        n_columns=snapshot.n_columns,
        sha256=snapshot.sha256,
        schema=schema.to_dict() if schema is not None else None,
    )


def load_and_record(
    source: Source,
    *,
    target: str | None = None,
    workspace: Workspace | PathLike | None = None,
    table: str | None = None,
    query: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    registry: Registry | None = None,
) -> Dataset:
    """`mlpilot.data.load_dataset`, then the snapshot recorded in the workspace's registry.

    ``registry`` is used (and left open) when given; otherwise the workspace's
    is opened for the record and closed. Nothing is recorded when the source
    or the target cannot be used.
    """
    from mlpilot.registry import Registry

    ws = registry.workspace if registry is not None else Workspace.resolve(workspace)
    dataset = load_dataset(source, target=target, workspace=ws, table=table, query=query, on_progress=on_progress)
    assert dataset.snapshot is not None  # load_dataset snapshots by default
    if registry is not None:
        record_snapshot(registry, dataset.snapshot, dataset.schema)
        return dataset
    opened = Registry(ws)
    try:
        record_snapshot(opened, dataset.snapshot, dataset.schema)
    finally:
        opened.close()
    return dataset
