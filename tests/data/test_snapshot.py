"""Snapshots are content-addressed: same content, same id, stored once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlpilot.automl import load_and_record
from mlpilot.data import load_dataset, read_snapshot
from mlpilot.registry import Registry, Workspace


def test_same_content_same_snapshot(tmp_path: Path, workspace: Workspace, churn: pd.DataFrame) -> None:
    csv = tmp_path / "churn.csv"
    churn.to_csv(csv, index=False)
    first = load_and_record(csv, target="churn", workspace=workspace)
    again = load_and_record(csv, target="churn", workspace=workspace)
    parquet = tmp_path / "churn.parquet"
    churn.to_parquet(parquet, index=False)
    from_parquet = load_and_record(parquet, workspace=workspace)
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
    assert Registry(workspace).list_datasets() == []  # data/ stores files; the orchestrator records them
    loaded = load_and_record(csv, workspace=workspace)
    assert loaded.snapshot is not None and snap.id == loaded.snapshot.id
    assert snap.n_rows == 5000 and snap.path.exists()
    record = Registry(workspace).get_dataset(snap.id)
    assert record is not None and record.n_rows == 5000
    assert record.schema is not None


def test_snapshot_round_trips_nulls_and_text_and_rehashes_alike(tmp_path: Path, workspace: Workspace) -> None:
    """Null-free columns are stored REQUIRED and text dictionary-encoded: reading the
    snapshot back gives the same values, nulls included, and the same content id."""
    import pyarrow.parquet as pq

    from mlpilot.data import snapshot_source

    frame = pd.DataFrame(
        {
            "x": [1.5, None, 3.0, 4.25],
            "n": [1, 2, 3, 4],
            "city": ["Oslo", None, "Lima", "Oslo"],
            "tag": ["a", "b", "a", "b"],
        }
    )
    csv = tmp_path / "t.csv"
    frame.to_csv(csv, index=False)
    snap = snapshot_source(csv, workspace=workspace)
    stored = pq.read_schema(snap.path)
    assert {f.name: f.nullable for f in stored} == {"x": True, "n": False, "city": True, "tag": False}
    back = read_snapshot(workspace, snap.id)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_column_type=False)
    again = snapshot_source(snap.path, workspace=workspace)  # the snapshot itself, read as a source
    assert again.id == snap.id


def test_failed_read_records_nothing(tmp_path: Path, workspace: Workspace) -> None:
    from mlpilot.data import snapshot_source
    from mlpilot.exceptions import SourceFormatError

    bad = tmp_path / "ragged.csv"
    bad.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(SourceFormatError, match="line 3"):
        snapshot_source(bad, workspace=workspace)
    with pytest.raises(SourceFormatError, match="line 3"):
        load_and_record(bad, workspace=workspace)
    assert Registry(workspace).list_datasets() == []
    assert list(workspace.snapshots_dir.iterdir()) == []


@pytest.mark.parametrize("kind", ["csv", "parquet", "dataframe"])
def test_a_missing_target_leaves_nothing_behind(tmp_path: Path, workspace: Workspace, churn: pd.DataFrame,
                                                kind: str) -> None:
    """The snapshot of a file source was written while its target was checked: it is no longer left on disk."""
    from mlpilot.exceptions import ColumnNotFoundError

    source: object = churn.head(200)
    if kind != "dataframe":
        source = tmp_path / f"churn.{kind}"
        churn.head(200).to_csv(source, index=False) if kind == "csv" else churn.head(200).to_parquet(source)
    with pytest.raises(ColumnNotFoundError, match="no_such_column"):
        load_and_record(source, target="no_such_column", workspace=workspace)  # type: ignore[arg-type]
    assert list(workspace.snapshots_dir.iterdir()) == []
    assert Registry(workspace).list_datasets() == []
    # and a snapshot already stored by an earlier load stays
    kept = load_dataset(source, workspace=workspace)  # type: ignore[arg-type]
    with pytest.raises(ColumnNotFoundError):
        load_dataset(source, target="no_such_column", workspace=workspace)  # type: ignore[arg-type]
    assert kept.snapshot is not None and [p.name for p in workspace.snapshots_dir.iterdir()] == [kept.snapshot.path.name]
