"""Snapshots: immutable, content-hashed Parquet copies of what a source held."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlpilot._workspace import Workspace

_STAGED = itertools.count()


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


def canonical_table(table: pa.Table) -> pa.Table:
    """The table with one physical type per logical type and no pandas metadata.

    The same values read from a CSV, a Parquet file or a DataFrame then hash alike.
    """
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            t = pa.string()
        elif pa.types.is_large_binary(t):
            t = pa.binary()
        elif pa.types.is_dictionary(t):
            t = t.value_type if not pa.types.is_large_string(t.value_type) else pa.string()
        fields.append(pa.field(f.name, t))
    target = pa.schema(fields)
    if target != table.schema.remove_metadata():
        table = table.cast(target)
    return table.replace_schema_metadata(None)


def content_hash(table: pa.Table) -> str:
    """A sha256 over column names, types and values, independent of chunking and file format.

    Each column is hashed from its contiguous Arrow buffers: a null mask (when
    there are nulls) and the valid values (offsets and bytes for strings).
    """
    table = canonical_table(table)
    digest = hashlib.sha256()
    digest.update(json.dumps([[f.name, str(f.type)] for f in table.schema]).encode())
    digest.update(str(table.num_rows).encode())
    for column in table.columns:
        array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        if array.offset:
            array = pa.concat_arrays([array])  # re-base a sliced array at offset 0
        if array.null_count:
            # The null mask, then only the valid values: what sits under a null slot is
            # undefined in Arrow (a CSV reader leaves 0, a Parquet reader may not).
            digest.update(b"N")
            digest.update(np.asarray(array.is_null()).tobytes())
            array = array.drop_null()
        for buffer in array.buffers()[1:]:
            if buffer is not None:
                digest.update(memoryview(buffer))
    return digest.hexdigest()


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` as Parquet, tuned for a fast first copy rather than the smallest file.

    Columns without nulls are written as REQUIRED (no definition levels to encode),
    only text columns are dictionary-encoded (numbers rarely repeat enough to pay
    for the dictionary), and pages are left uncompressed: the snapshot is a working
    copy on local disk, written once per distinct content.
    """
    fields = [
        pa.field(f.name, f.type, nullable=column.null_count > 0)
        for f, column in zip(table.schema, table.columns, strict=True)
    ]
    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
    pq.write_table(
        table.cast(pa.schema(fields)),
        path,
        compression="none",
        use_dictionary=text or False,
        write_statistics=False,
    )


class StagedSnapshot:
    """A snapshot written and hashed but not yet in place: `commit` stores it, `discard` leaves nothing."""

    def __init__(self, tmp: Path, snapshot: Snapshot) -> None:
        self._tmp = tmp
        self.snapshot = snapshot

    def commit(self) -> Snapshot:
        """Move the file under its content id (kept as it is when that snapshot exists already)."""
        try:
            if not self.snapshot.path.exists():
                os.replace(self._tmp, self.snapshot.path)
        finally:
            self._tmp.unlink(missing_ok=True)
        return self.snapshot

    def discard(self) -> None:
        self._tmp.unlink(missing_ok=True)


def stage_snapshot(table: pa.Table, workspace: Workspace, *, source: str) -> StagedSnapshot:
    """Write ``table`` to a temporary file of the workspace and hash it; nothing is stored yet.

    The Parquet file is written (in a helper thread) while the hash is computed;
    both release the GIL, so the two cores share the work.
    """
    from concurrent.futures import ThreadPoolExecutor

    table = canonical_table(table)
    tmp = workspace.snapshots_dir / f".snapshot.tmp-{os.getpid()}-{threading.get_ident()}-{next(_STAGED)}"
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            writing = pool.submit(_write_parquet, table, tmp)
            sha = content_hash(table)
            writing.result()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    snap_id = sha[:16]
    return StagedSnapshot(tmp, Snapshot(
        id=snap_id,
        path=workspace.snapshots_dir / f"{snap_id}.parquet",
        source=source,
        n_rows=table.num_rows,
        n_columns=table.num_columns,
        sha256=sha,
    ))


def write_snapshot(table: pa.Table, workspace: Workspace, *, source: str) -> Snapshot:
    """Store ``table`` under its content hash unless that snapshot already exists."""
    return stage_snapshot(table, workspace, source=source).commit()


def read_snapshot(workspace: Workspace, snapshot_id: str) -> pd.DataFrame:
    """Load a snapshot back as a DataFrame."""
    from mlpilot.exceptions import SourceNotFoundError

    path = workspace.snapshots_dir / f"{snapshot_id}.parquet"
    if not path.exists():
        raise SourceNotFoundError(f"No snapshot {snapshot_id!r} in the workspace {workspace.root}.")
    return pq.read_table(path).to_pandas()
