"""The log's storage: compaction into daily Parquet parts, filters, chunked reads, retention, crashes."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mlpilot.monitor._log_store as store
from mlpilot.exceptions import InvalidParameterError
from mlpilot.monitor import (
    LOG_COLUMNS,
    PredictionLog,
    compact_prediction_log,
    iter_prediction_log,
    parse_keep,
    predictions_dir,
    prune_prediction_log,
    read_prediction_log,
)
from mlpilot.monitor._log_store import compact_segment
from mlpilot.registry import Workspace


def _segment(workspace: Workspace, model: str, days: list[str], rows_per_request: int = 3) -> Path:
    """A closed, not yet compacted segment by the real writer, one request stamped on each of ``days``."""
    stamps = iter([datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp() for day in days])
    log = PredictionLog(workspace, flush_interval=0.01, clock=lambda: next(stamps)).start()
    for i, _day in enumerate(days):
        log.log(model, 1 + i % 2, [{"x": float(i), "c": f"k{i % 3}"}] * rows_per_request,
                ["yes"] * rows_per_request, 1.0, request_ids=f"req-{i}", source="api" if i % 2 else "stream")
    log.close(compact=False)
    return max(predictions_dir(workspace, model).glob("*.jsonl"), key=lambda p: p.stat().st_mtime_ns)


def test_compaction_writes_daily_parts_and_reads_the_same_rows(workspace: Workspace) -> None:
    days = ["2026-01-01", "2026-01-01", "2026-01-02", "2026-01-03", "2026-01-03", "2026-01-03"]
    segment = _segment(workspace, "m", days)
    before = read_prediction_log(workspace, "m")
    result = compact_prediction_log(workspace, "m")
    assert result.compacted == 1 and result.busy == 0 and not segment.exists()
    parts = sorted(p.relative_to(segment.parent).parent.name for p in segment.parent.glob("date=*/*.parquet"))
    assert parts == ["date=2026-01-01", "date=2026-01-02", "date=2026-01-03"]
    after = read_prediction_log(workspace, "m")
    pd.testing.assert_frame_equal(before, after, check_dtype=False)
    assert list(after.columns[: len(LOG_COLUMNS)]) == list(LOG_COLUMNS)
    assert after["row"].tolist()[:3] == [0, 1, 2] and after["request_id"].iloc[0] == "req-0"
    # filters, pushed down to the parts
    window = read_prediction_log(workspace, "m", since="2026-01-02", until="2026-01-03")
    assert set(window["request_id"]) == {"req-2"}
    assert set(read_prediction_log(workspace, "m", versions=[2])["request_id"]) == {"req-1", "req-3", "req-5"}
    assert set(read_prediction_log(workspace, "m", source="stream")["version"]) == {1}
    narrow = read_prediction_log(workspace, "m", columns=["request_id", "x"], since=datetime(2026, 1, 3, tzinfo=UTC))
    assert list(narrow.columns) == ["request_id", "x"] and len(narrow) == 9
    with pytest.raises(InvalidParameterError, match="since must be a datetime"):
        read_prediction_log(workspace, "m", since="last tuesday")


def test_parts_store_microsecond_times_and_old_nanosecond_parts_still_read(workspace: Workspace) -> None:
    segment = _segment(workspace, "m", ["2026-01-01", "2026-01-02", "2026-01-03"])
    compact_prediction_log(workspace, "m")
    parts = sorted(segment.parent.glob("date=*/*.parquet"))
    # microseconds: a Parquet TIMESTAMP(MICROS) that Spark reads without spark.sql.legacy.parquet.nanosAsLong
    assert {pq.read_schema(p).field("timestamp").type for p in parts} == {pa.timestamp("us", tz="UTC")}
    new = read_prediction_log(workspace, "m")
    old = parts[1]  # the middle day rewritten as an older mlpilot wrote it, in nanoseconds
    table = pq.read_table(old)
    stamps = table.column("timestamp").cast(pa.timestamp("ns", tz="UTC"))
    pq.write_table(table.set_column(0, pa.field("timestamp", stamps.type), stamps), old)
    assert pq.read_schema(old).field("timestamp").type == pa.timestamp("ns", tz="UTC")
    mixed = read_prediction_log(workspace, "m")
    assert str(mixed["timestamp"].dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(mixed, new)
    window = read_prediction_log(workspace, "m", since="2026-01-02", until="2026-01-02T12:00:01+00:00")
    assert set(window["request_id"]) == {"req-1"}  # the filter, pushed down, compares across both units


def test_an_open_segment_is_left_to_its_writer(workspace: Workspace) -> None:
    log = PredictionLog(workspace, flush_interval=0.01).start()
    log.log("m", 1, [{"x": 1.0}], ["a"], 1.0)
    log.flush()
    assert compact_prediction_log(workspace, "m").busy == 1  # its writer holds the lock
    assert len(read_prediction_log(workspace, "m")) == 1
    log.close()  # closing releases the lock and compacts
    assert not list(predictions_dir(workspace, "m").glob("*.jsonl"))
    assert read_prediction_log(workspace, "m")["prediction"].tolist() == ["a"]


def test_iter_reads_chunks_of_the_size_asked(workspace: Workspace) -> None:
    _segment(workspace, "m", ["2026-01-01"] * 5 + ["2026-01-02"] * 4, rows_per_request=3)
    compact_prediction_log(workspace, "m")
    _segment(workspace, "m", ["2026-01-04"] * 2, rows_per_request=3)  # not compacted: read from JSON lines
    sizes = [len(c) for c in iter_prediction_log(workspace, "m", chunk_rows=4)]
    assert sizes == [4] * 8 + [1]
    chunks = list(iter_prediction_log(workspace, "m", columns=["request_id", "row"], since="2026-01-02"))
    assert len(chunks) == 1 and list(chunks[0].columns) == ["request_id", "row"] and len(chunks[0]) == 18
    with pytest.raises(InvalidParameterError, match="chunk_rows"):
        next(iter_prediction_log(workspace, "m", chunk_rows=0))


def test_retention_deletes_whole_old_days(workspace: Workspace) -> None:
    _segment(workspace, "m", ["2026-01-01", "2026-01-20", "2026-01-31"])
    removed = prune_prediction_log(workspace, "14d", now=datetime(2026, 2, 1, 12, tzinfo=UTC))
    assert removed == ["m/date=2026-01-01"]
    assert set(read_prediction_log(workspace, "m")["request_id"]) == {"req-1", "req-2"}
    assert parse_keep("2w") == timedelta(days=14) and parse_keep("12h") == timedelta(hours=12)
    for bad in ("30", "thirty days", "0d"):
        with pytest.raises(InvalidParameterError, match="--keep"):
            parse_keep(bad)


def _compact_slowly(segment: Path, ready: Any) -> None:
    """Compact ``segment`` in 4-row parts; after two durable parts, wait to be killed."""
    real = store._write_part
    written = []

    def slow(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        written.append(1)
        if len(written) == 2:
            ready.set()
            time.sleep(60)

    store._write_part = slow  # type: ignore[assignment]  # in the child process only
    store.compact_segment(segment, part_rows=4)


def test_kill_9_during_compaction_loses_and_duplicates_nothing(workspace: Workspace) -> None:
    segment = _segment(workspace, "m", [f"2026-01-0{1 + i // 10}" for i in range(30)], rows_per_request=2)
    expected = read_prediction_log(workspace, "m")
    fork = multiprocessing.get_context("fork")
    ready = fork.Event()
    proc = fork.Process(target=_compact_slowly, args=(segment, ready), daemon=True)
    proc.start()
    assert ready.wait(60), "the compaction did not start"
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)  # two parts are durable, the segment is still there
    proc.join(30)
    assert segment.exists() and len(list(segment.parent.glob("date=*/*.parquet"))) == 2
    pd.testing.assert_frame_equal(read_prediction_log(workspace, "m"), expected, check_dtype=False)
    assert compact_segment(segment, part_rows=4) == 0  # the rerun rewrites the same parts, then removes it
    assert not segment.exists()
    again = read_prediction_log(workspace, "m")
    pd.testing.assert_frame_equal(again, expected, check_dtype=False)
    assert not again.duplicated(["request_id", "row"]).any()


def _big_log(workspace: Workspace, parts: int, per_part: int) -> None:
    """A log of ``parts`` Parquet parts of ``per_part`` rows, as compaction writes them (built directly)."""
    rng = np.random.default_rng(0)
    partition = predictions_dir(workspace, "big") / "date=2026-01-01"
    partition.mkdir(parents=True)
    n = per_part
    frame = pd.DataFrame({
        "timestamp": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="ms"),
        "model": "big", "version": np.ones(n, dtype="int64"),
        "request_id": np.char.add("r", np.arange(n).astype(str)), "row": np.zeros(n, dtype="int64"),
        "latency_ms": rng.random(n), "prediction": rng.choice(["yes", "no"], n),
        "probabilities": None, "warnings": "", "source": "api",
        "x1": rng.normal(size=n), "x2": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n),
    })
    first = partition / "seg0000.0000.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), first)
    for k in range(1, parts):  # the same rows again: what is measured is the reading
        shutil.copyfile(first, partition / f"seg{k:04d}.0000.parquet")


def test_a_large_log_is_read_in_chunks_in_bounded_memory(workspace: Workspace) -> None:
    rows, chunk = 2_000_000, 100_000
    _big_log(workspace, parts=10, per_part=rows // 10)
    pool = pa.default_memory_pool()
    # the pool's peak is the process's since it started (other tests in this worker count too): only
    # a peak this read sets says something, and it is then this read's plus what was held before it
    peak_before, held_before = pool.max_memory(), pool.bytes_allocated()
    tracemalloc.start()
    seen, total = 0, 0.0
    try:
        for frame in iter_prediction_log(workspace, "big", columns=["timestamp", "x1", "c"], chunk_rows=chunk):
            assert len(frame) <= chunk
            seen += len(frame)
            total += float(frame["x1"].sum())
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == rows and np.isfinite(total)
    # the whole window as pandas would be ~ rows * (8 + 8 + ~60) bytes = ~150 MB; a chunk is ~1/20 of it
    full = rows * 76
    assert python_peak < full / 4, f"peak {python_peak / 1e6:.0f} MB of Python/numpy memory"
    assert pool.max_memory() <= max(peak_before, held_before + full / 2), f"Arrow peak {pool.max_memory() / 1e6:.0f} MB"


def test_writer_rotates_old_segments_and_compacts_them(workspace: Workspace) -> None:
    log = PredictionLog(workspace, flush_interval=0.01, segment_seconds=0.2).start()
    log.log("m", 1, [{"x": 1.0}], ["a"], 1.0)
    log.flush()
    deadline = time.monotonic() + 30
    while list(predictions_dir(workspace, "m").glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(predictions_dir(workspace, "m").glob("date=*/*.parquet")), "the idle segment was not compacted"
    log.log("m", 1, [{"x": 2.0}], ["b"], 1.0)
    log.close()
    assert read_prediction_log(workspace, "m")["prediction"].tolist() == ["a", "b"]


def test_one_duration_grammar_for_keep_window_and_budgets() -> None:
    from mlpilot.automl import parse_duration
    from mlpilot.monitor._report import parse_window

    for text, seconds in (("90s", 90), ("30min", 1800), ("1h30m", 5400), ("1.5h", 5400), ("2w", 14 * 86400),
                          ("30 days", 30 * 86400)):
        assert parse_duration(text) == seconds
        assert parse_keep(text) == timedelta(seconds=seconds)
        assert parse_window(text) == pd.Timedelta(seconds=seconds)
    assert parse_duration(30) == 30  # a bare number is seconds for a budget, and needs a unit elsewhere
    with pytest.raises(InvalidParameterError, match="--window must be a positive duration with a unit"):
        parse_window("30")
    for bad in ("soon", "-1d", "1h 30", "3 fortnights"):
        with pytest.raises(InvalidParameterError, match="positive duration such as '30d', '2w', '1h30m', '90s'"):
            parse_duration(bad)
    with pytest.raises(InvalidParameterError, match="--keep must be positive"):
        parse_keep("0h")


def test_compaction_holds_records_in_chunks_and_types_columns_as_one_pass(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "CHUNK_RECORDS", 3)
    log = PredictionLog(workspace, flush_interval=0.01, clock=lambda: 1767268800.0).start()  # 2026-01-01
    inputs: list[dict[str, Any]] = (
        [{"x": i, "c": "a", "t": "s"} for i in range(3)]              # chunk 1: x int, c str, t str
        + [{"x": i + 0.5, "c": "b", "t": 7} for i in range(3)]        # chunk 2: x float, t int (mixed: JSON)
        + [{"x": None, "c": "c", "t": "s", "z": True} for _ in range(2)]  # chunk 3: x null, z appears
    )
    for i, row in enumerate(inputs):
        log.log("m", 1, [row], [f"p{i % 2}"], 1.0, request_ids=f"r{i}")
    log.close(compact=False)
    one_pass = read_prediction_log(workspace, "m")  # the open segment is read in one records_table call
    assert compact_prediction_log(workspace, "m").compacted == 1
    chunked = read_prediction_log(workspace, "m")
    pd.testing.assert_frame_equal(chunked, one_pass, check_dtype=False)
    assert chunked["x"].tolist()[:4] == [0.0, 1.0, 2.0, 0.5] and chunked["t"].tolist()[2:4] == ["s", 7]
    assert chunked["z"].tolist()[-3:] == [None, True, True]


def test_compaction_memory_does_not_grow_with_the_segment(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A segment of many one-row requests: compaction holds one chunk of records, not the whole part."""
    monkeypatch.setattr(store, "CHUNK_RECORDS", 200)
    n = 8 * store.CHUNK_RECORDS
    log = PredictionLog(workspace, flush_interval=0.01, max_queue=n + 1, batch_size=n).start()
    row = {f"f{j}": float(j) for j in range(12)} | {"c": "category"}
    for i in range(n):
        log.log("m", 1, [row], ["yes"], 1.0, request_ids=f"r{i}")
    log.close(compact=False)
    segment = next(predictions_dir(workspace, "m").glob("*.jsonl"))
    with open(segment, encoding="utf-8") as fh:
        tracemalloc.start()
        records = [r for r in store.read_records(fh) if r is not None]
        _, all_at_once = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    del records
    tracemalloc.start()
    try:
        assert compact_segment(segment) == 0
        _, chunked = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(read_prediction_log(workspace, "m")) == n
    assert chunked < all_at_once / 2, f"compaction peak {chunked / 1e6:.1f} MB vs {all_at_once / 1e6:.1f} MB of records"


def test_compaction_cuts_chunks_by_rows_and_readers_see_every_row(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream's records hold many rows each: a chunk is cut by rows, long before CHUNK_RECORDS records."""
    monkeypatch.setattr(store, "CHUNK_ROWS", 120)
    sizes: list[int] = []
    records_table = store.records_table

    def spy(records: Any) -> Any:
        sizes.append(sum(int(r["n_rows"]) for r in records))
        return records_table(records)

    monkeypatch.setattr(store, "records_table", spy)
    log = PredictionLog(workspace, flush_interval=0.01).start()
    n_records, per_record = 10, 50
    for i in range(n_records):
        rows = [{"x": i * per_record + j, "c": "a"} for j in range(per_record)]
        log.log("m", 1, rows, ["yes"] * per_record, 1.0,
                request_ids=[f"s:{i}:{j}" for j in range(per_record)], source="stream")
    log.close(compact=False)
    assert compact_prediction_log(workspace, "m").compacted == 1
    assert sizes == [150, 150, 150, 50]  # 3 records (150 rows >= 120) per chunk, then the rest
    frame = read_prediction_log(workspace, "m")
    assert len(frame) == n_records * per_record
    assert sorted(frame["x"].tolist()) == list(range(n_records * per_record))
    assert frame["request_id"].nunique() == n_records * per_record
    assert len(list(predictions_dir(workspace, "m").glob("date=*/*.parquet"))) == 1  # one part, as before


def test_the_background_compaction_runs_in_a_child_process_and_reads_the_same_rows(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch,
) -> None:
    segment = _segment(workspace, "m", ["2026-01-01", "2026-01-02"])
    before = read_prediction_log(workspace, "m")
    log = PredictionLog(workspace)  # compact_in_child by default
    with monkeypatch.context() as mp:  # this process cannot compact: only a child can have done it
        mp.setattr("mlpilot.monitor._prediction_log.compact_dirs", _not_here)
        result = log.compact(in_child=True)
        assert result.compacted == 1 and log.compacted == 1 and not segment.exists()
        assert log.compact(in_child=True).compacted == 0  # nothing closed left: no child started
    pd.testing.assert_frame_equal(before, read_prediction_log(workspace, "m"), check_dtype=False)


def test_a_child_that_cannot_run_leaves_the_compaction_to_this_process(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    segment = _segment(workspace, "m", ["2026-01-01"])
    monkeypatch.setattr("sys.executable", str(workspace.root / "no-such-python"))
    assert PredictionLog(workspace).compact(in_child=True).compacted == 1 and not segment.exists()
    assert "compaction process did not finish" in caplog.text
    assert len(read_prediction_log(workspace, "m")) == 3


def _not_here(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("compacted in the parent process")
