"""Snapshots: immutable, content-hashed Parquet copies of what a source held."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlpilot.registry import Workspace


@dataclass(frozen=True)
class Snapshot:
    """A stored copy of a source's content.

    ``id`` is the first 16 hex digits of ``sha256``, the hash of the content
    (column names, types and values, not the file's bytes), so the same table
    read from a CSV twice, or passed as a DataFrame, gets the same id.
    """

    id: str
    path: Path
    source: str
    n_rows: int
    n_columns: int
    sha256: str


def content_hash(frame: pd.DataFrame) -> str:
    """A sha256 over column names, dtypes and every value, independent of file layout."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(frame[c].dtype)] for c in frame.columns]).encode())
    digest.update(str(len(frame)).encode())
    for name in frame.columns:
        column = frame[name]
        try:
            hashed = pd.util.hash_pandas_object(column, index=False, categorize=True)
        except TypeError:  # unhashable cells (lists, dicts)
            hashed = pd.util.hash_pandas_object(column.astype(str), index=False)
        digest.update(np.ascontiguousarray(hashed.to_numpy()).tobytes())
    return digest.hexdigest()


def write_snapshot(
    table: pa.Table, frame: pd.DataFrame, workspace: Workspace, *, source: str
) -> Snapshot:
    """Store ``table`` under its content hash unless that snapshot already exists."""
    sha = content_hash(frame)
    snap_id = sha[:16]
    path = workspace.snapshots_dir / f"{snap_id}.parquet"
    if not path.exists():
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            pq.write_table(table, tmp, compression="snappy", write_statistics=False)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return Snapshot(
        id=snap_id,
        path=path,
        source=source,
        n_rows=table.num_rows,
        n_columns=table.num_columns,
        sha256=sha,
    )


def read_snapshot(workspace: Workspace, snapshot_id: str) -> pd.DataFrame:
    """Load a snapshot back as a DataFrame."""
    from mlpilot.exceptions import SourceNotFoundError

    path = workspace.snapshots_dir / f"{snapshot_id}.parquet"
    if not path.exists():
        raise SourceNotFoundError(f"No snapshot {snapshot_id!r} in the workspace {workspace.root}.")
    return pq.read_table(path).to_pandas()
