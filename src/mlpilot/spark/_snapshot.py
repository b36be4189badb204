"""The snapshot of a Spark table: a content fingerprint and the Parquet dataset written in the workspace.

A table on a cluster can change under a name or path (a JDBC table, a folder that
gets new files), so, as for a file, the workspace keeps its own copy: Spark writes
the rows as a Parquet dataset (one file per partition, in parallel) under
``snapshots/<id>.parquet/``, where pyarrow and `mlpilot.data.read_snapshot` read it
back. The id is computed without collecting rows: a sha256 over the column names
and types, the row count and order-independent sums and an XOR of each row's
64-bit xxhash, aggregated by Spark. Same rows in any order and any partitioning give
the same id; a snapshot already present is not written again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from typing import TYPE_CHECKING

from mlpilot._workspace import Workspace
from mlpilot.data import Snapshot
from mlpilot.exceptions import EmptyDataError
from mlpilot.spark._session import require_pyspark, spark_job

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def fingerprint(frame: DataFrame) -> tuple[str, int]:
    """The sha256 of ``frame``'s content (independent of row order and partitioning) and its row count."""
    require_pyspark()
    from pyspark.sql import functions as F

    row = F.xxhash64(*[F.col(f"`{c}`") for c in frame.columns])
    low = F.sum(F.col("h").bitwiseAND(F.lit(0xFFFFFFFF)))
    high = F.sum(F.shiftrightunsigned(F.col("h"), 32))
    with spark_job("fingerprinted the table"):
        out = frame.select(row.alias("h")).agg(F.count(F.lit(1)).alias("n"), low.alias("low"), high.alias("high"),
                                               F.bit_xor("h").alias("x")).first()
    assert out is not None  # a global aggregate always has one row
    digest = hashlib.sha256()
    digest.update(json.dumps([[f.name, f.dataType.simpleString()] for f in frame.schema.fields]).encode())
    digest.update(f"{out['n']}:{out['low']}:{out['high']}:{out['x']}".encode())
    return digest.hexdigest(), int(out["n"])


def snapshot_spark(frame: DataFrame, workspace: Workspace, *, source: str) -> Snapshot:
    """Fingerprint ``frame`` and write it as a Parquet dataset in the workspace (once per content).

    The dataset is written to a temporary folder and renamed into place, so an
    interrupted job leaves no partial snapshot.
    """
    sha, n_rows = fingerprint(frame)
    if n_rows == 0:
        raise EmptyDataError(f"The Spark table {source} has no rows.")
    snap_id = sha[:16]
    path = workspace.snapshots_dir / f"{snap_id}.parquet"
    if not path.exists():
        tmp = workspace.snapshots_dir / f".spark-{snap_id}-{uuid.uuid4().hex[:8]}"
        try:
            with spark_job("wrote the snapshot"):
                frame.write.mode("overwrite").parquet(str(tmp))
            for crc in tmp.glob(".*.crc"):
                crc.unlink()
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return Snapshot(id=snap_id, path=path, source=source, n_rows=n_rows, n_columns=len(frame.columns), sha256=sha)


__all__ = ["fingerprint", "snapshot_spark"]
