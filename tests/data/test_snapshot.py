"""Snapshots are content-addressed: same content, same id, stored once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlpilot.data import load_dataset, read_snapshot
from mlpilot.registry import Registry, Workspace


def test_same_content_same_snapshot(tmp_path: Path, workspace: Workspace, churn: pd.DataFrame) -> None:
    csv = tmp_path / "churn.csv"
    churn.to_csv(csv, index=False)
    first = load_dataset(csv, target="churn", workspace=workspace)
    again = load_dataset(csv, target="churn", workspace=workspace)
    parquet = tmp_path / "churn.parquet"
    churn.to_parquet(parquet, index=False)
    from_parquet = load_dataset(parquet, workspace=workspace)
    assert first.snapshot is not None and again.snapshot is not None and from_parquet.snapshot is not None
    assert first.snapshot.id == again.snapshot.id == from_parquet.snapshot.id
    assert len(list(workspace.snapshots_dir.glob("*.parquet"))) == 1
    records = Registry(workspace).list_datasets()
    assert [r.id for r in records] == [first.snapshot.id]
    assert records[0].n_rows == 5000 and records[0].schema is not None
    back = read_snapshot(workspace, first.snapshot.id)
    pd.testing.assert_frame_equal(back, churn, check_dtype=False, check_column_type=False)


def test_changed_content_new_snapshot(workspace: Workspace, churn: pd.DataFrame) -> None:
    a = load_dataset(churn, workspace=workspace)
    changed = churn.copy()
    changed.loc[17, "total_day_minutes"] += 0.1
    b = load_dataset(changed, workspace=workspace)
    assert a.snapshot is not None and b.snapshot is not None
    assert a.snapshot.id != b.snapshot.id
    assert len(list(workspace.snapshots_dir.glob("*.parquet"))) == 2


def test_snapshot_source_matches_load_dataset(tmp_path: Path, workspace: Workspace, churn: pd.DataFrame) -> None:
    from mlpilot.data import snapshot_source

    csv = tmp_path / "churn.csv"
    churn.to_csv(csv, index=False)
    snap = snapshot_source(csv, workspace=workspace)
    loaded = load_dataset(csv, workspace=workspace)
    assert loaded.snapshot is not None and snap.id == loaded.snapshot.id
    assert snap.n_rows == 5000 and snap.path.exists()
    record = Registry(workspace).get_dataset(snap.id)
    assert record is not None and record.n_rows == 5000
    assert record.schema is not None  # load_dataset added the schema
