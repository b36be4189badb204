"""Where the prediction log lives on disk: JSON-lines segments compacted into daily Parquet parts.

Layout under ``workspace.logs_dir / "predictions"``::

    <model>/<segment>.jsonl                        appended by one writer process, flock-held
    <model>/date=YYYY-MM-DD/<segment>.<k>.parquet  the segment's rows of that UTC day, chunk k

The writer holds an exclusive ``flock`` on its open segment; a segment whose
lock can be taken is closed (its writer rotated it, exited or was killed) and
may be compacted. Compaction writes each Parquet part to a temporary file,
fsyncs and renames it, and removes the segment only once all its parts are
durable. Readers skip the parts of a segment that still exists (its parts may
be partial) and read the segment instead, so a kill at any point loses nothing
and duplicates nothing: a rerun rewrites the same parts under the same names.
See docs/monitoring-log.md for why this layout.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from mlpilot._config import fsync_dir, parse_duration
from mlpilot.exceptions import InvalidParameterError

try:  # POSIX; elsewhere a segment counts as closed once its writer's file handle is gone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

#: Columns every log frame has, before the input columns.
LOG_COLUMNS = (
    "timestamp",
    "model",
    "version",
    "request_id",
    "row",
    "latency_ms",
    "prediction",
    "probabilities",
    "warnings",
    "source",
)
#: Rows per Parquet part written by compaction.
PART_ROWS = 100_000
#: Records (requests) held as Python objects at once by compaction: they are turned into a
#: columnar Arrow chunk every this many, so its memory stays small while a part fills (a 32 MB
#: segment of single-row requests held as records took ~200 MB, which the process kept).
CHUNK_RECORDS = 2_048
#: ... and every this many rows, whichever comes first: a stream's record holds a whole batch (1,000
#: rows), so 2,048 of them were ~2M rows held as Python objects before a chunk was cut.
CHUNK_ROWS = 10_000
_JSON_FIELD = {b"mlpilot": b"json"}
_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def parse_keep(value: str | timedelta) -> timedelta:
    """The retention period from ``"30d"``, ``"12h"`` or ``"2w"`` (`mlpilot._config.parse_duration`).

    Examples
    --------
    >>> parse_keep("30d").days, parse_keep("12h").seconds
    (30, 43200)
    """
    keep = value if isinstance(value, timedelta) else timedelta(seconds=parse_duration(value, what="--keep",
                                                                                         bare=False))
    if keep <= timedelta(0):
        raise InvalidParameterError(f"--keep must be a positive period (such as '30d'). Got {value!r}.")
    return keep


# -- segment locks -------------------------------------------------------------------


def lock_segment(fh: IO[Any], *, block: bool = True) -> bool:
    """Take the exclusive lock of an open segment; ``False`` if another handle holds it."""
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


# -- records to frames ---------------------------------------------------------------


def records_table(records: Sequence[dict[str, Any]]) -> Any:
    """The JSON-lines ``records`` as one Arrow table, one row per predicted row.

    Per-request values (time, model, version, id, latency, source) are
    repeated with numpy; a column of mixed types (1 and "a") is stored as JSON
    text, marked so that `batch_frame` decodes it back.
    """
    import pyarrow as pa

    counts = np.array([int(r["n_rows"]) for r in records], dtype=np.int64)
    stamps = pd.to_datetime([str(r.get("timestamp")) for r in records], utc=True, format="ISO8601")
    columns: dict[str, Any] = {
        # microseconds, which every Parquet reader (Spark included) reads as timestamps; nanoseconds it cannot
        "timestamp": pa.array(np.repeat(stamps.as_unit("us").asi8, counts), type=pa.timestamp("us", tz="UTC")),
        "model": np.repeat(np.array([r.get("model") for r in records], dtype=object), counts),
        "version": pa.array(np.repeat(np.array([r.get("version") for r in records], dtype=np.int64), counts)),
    }
    ids: list[Any] = []
    # rows number a request's rows; with one id per row (a stream's messages) each row is its own request
    rows = [np.zeros(n, dtype=np.int64) if r.get("request_ids") else
            np.arange(int(r.get("first_row", 0)), int(r.get("first_row", 0)) + n)
            for r, n in zip(records, counts, strict=True)]
    predictions: list[Any] = []
    probabilities: list[Any] = []
    warnings: list[Any] = []
    inputs: dict[str, list[Any]] = {}
    done = 0
    for record, n in zip(records, counts.tolist(), strict=True):
        ids.extend(record.get("request_ids") or [record.get("request_id")] * n)
        predictions.extend(record.get("predictions") or [None] * n)
        probabilities.extend(record.get("probabilities") or [None] * n)
        warnings.extend(record.get("warnings") or [""] * n)
        for column, values in (record.get("inputs") or {}).items():
            inputs.setdefault(column, [None] * done).extend(values)
        done += n
        for values in inputs.values():
            if len(values) < done:
                values.extend([None] * (done - len(values)))
    columns["request_id"] = ids
    columns["row"] = pa.array(np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64), type=pa.int64())
    columns["latency_ms"] = pa.array(np.repeat(np.array([r.get("latency_ms") for r in records], dtype=float), counts))
    columns["prediction"] = predictions
    columns["probabilities"] = probabilities
    columns["warnings"] = warnings
    columns["source"] = np.repeat(np.array([r.get("source", "api") for r in records], dtype=object), counts)
    for column, values in inputs.items():
        columns[f"input.{column}" if column in LOG_COLUMNS else column] = values
    fields, arrays = [], []
    for name, values in columns.items():
        array, field = _arrow_column(name, values)
        arrays.append(array)
        fields.append(field)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def records_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per predicted row of the JSON-lines ``records`` (as `read_prediction_log` returns them)."""
    return batch_frame(records_table(records))


def read_records(fh: IO[str]) -> Iterator[dict[str, Any] | None]:
    """The segment's records in order; ``None`` for a line that does not parse (cut short by a crash)."""
    for line in fh:
        try:
            record = json.loads(line)
            int(record["n_rows"])
        except (ValueError, KeyError, TypeError):
            yield None
            continue
        yield record


def _record_day(record: dict[str, Any]) -> str:
    return str(record.get("timestamp", ""))[:10]


# -- compaction ----------------------------------------------------------------------


def _arrow_column(name: str, values: Any) -> tuple[Any, Any]:
    import pyarrow as pa

    if isinstance(values, pa.Array):
        return values, pa.field(name, values.type)
    try:
        array = pa.array(values, from_pandas=True)
        return array, pa.field(name, array.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = pa.array([json.dumps(v, default=str) for v in values], type=pa.string())
        return array, pa.field(name, pa.string(), metadata=_JSON_FIELD)


def batch_frame(batch: Any) -> pd.DataFrame:
    """An Arrow table or batch as pandas, the JSON-marked columns decoded back to their values.

    ``timestamp`` is UTC nanoseconds whatever the part stores (microseconds since the log
    was made readable by Spark, nanoseconds in older logs), so parts of both ages concatenate.
    """
    frame = batch.to_pandas()
    if "timestamp" in frame.columns:
        frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    for field in batch.schema:
        if field.metadata == _JSON_FIELD:
            frame[field.name] = pd.Series([json.loads(v) for v in frame[field.name]], index=frame.index, dtype=object)
    return frame


class _Part:
    """The records of one Parquet part being filled, held as Arrow chunks.

    A chunk is cut every `CHUNK_RECORDS` records or `CHUNK_ROWS` rows, whichever comes first, so the
    records held as Python objects stay few whether they are single-row requests or 1,000-row batches.
    """

    def __init__(self) -> None:
        self.rows = 0
        self._chunks: list[Any] = []
        self._records: list[dict[str, Any]] = []
        self._pending_rows = 0

    def add(self, record: dict[str, Any]) -> None:
        self._records.append(record)
        n = int(record["n_rows"])
        self.rows += n
        self._pending_rows += n
        if len(self._records) >= CHUNK_RECORDS or self._pending_rows >= CHUNK_ROWS:
            self._chunks.append(records_table(self._records))
            self._records = []
            self._pending_rows = 0

    @property
    def chunks(self) -> int:
        """Arrow chunks cut so far (the records not yet in one are not counted)."""
        return len(self._chunks)

    def tables(self) -> list[Any]:
        if self._records:
            self._chunks.append(records_table(self._records))
            self._records = []
            self._pending_rows = 0
        return self._chunks


def concat_chunks(tables: Sequence[Any]) -> Any:
    """One Arrow table from chunks that `records_table` built separately.

    Equal schemas (the usual case) are concatenated as they are. Otherwise
    each column is unified the way `records_table` would have typed it in one
    go: missing in a chunk → nulls, integers beside floats → float64, any
    other disagreement → JSON text (marked, so that `batch_frame` decodes it).
    """
    import pyarrow as pa

    first = tables[0]
    if all(t.schema.equals(first.schema, check_metadata=True) for t in tables[1:]):
        return pa.concat_tables(tables) if len(tables) > 1 else first
    names = list(dict.fromkeys(name for t in tables for name in t.column_names))
    fields, columns = [], []
    for name in names:
        pieces = [t.column(name).combine_chunks() if name in t.column_names else pa.nulls(t.num_rows)
                  for t in tables]
        marked = [name in t.column_names and t.schema.field(name).metadata == _JSON_FIELD for t in tables]
        kinds = {p.type for p, m in zip(pieces, marked, strict=True) if not m and p.type != pa.null()}
        if not any(marked) and len(kinds) <= 1:
            kind = kinds.pop() if kinds else pa.null()
        elif not any(marked) and all(pa.types.is_integer(k) or pa.types.is_floating(k) for k in kinds):
            kind = pa.float64()
        else:
            pieces = [p if m else pa.array([json.dumps(v, default=str) for v in p.to_pylist()], type=pa.string())
                      for p, m in zip(pieces, marked, strict=True)]
            fields.append(pa.field(name, pa.string(), metadata=_JSON_FIELD))
            columns.append(pa.chunked_array(pieces, type=pa.string()))
            continue
        fields.append(pa.field(name, kind))
        columns.append(pa.chunked_array([p.cast(kind) for p in pieces], type=kind))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _write_part(directory: Path, day: str, stem: str, k: int, tables: list[Any]) -> None:
    import pyarrow.parquet as pq

    partition = directory / f"date={day}"
    partition.mkdir(exist_ok=True)
    target = partition / f"{stem}.{k:04d}.parquet"
    tmp = partition / f".{target.name}.tmp"
    table = concat_chunks(tables)
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    fsync_dir(partition)


def compact_segment(path: Path, part_rows: int = PART_ROWS) -> int | None:
    """Rewrite one closed segment as Parquet parts, then remove it.

    Returns the number of lines that did not parse (lost to a crash), or
    ``None`` when the segment is still held by its writer (nothing done).
    """
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None  # compacted meanwhile by another process
    with fh:
        if not lock_segment(fh, block=False):
            return None
        if not path.exists():  # compacted between our open and our lock
            return None
        parts: dict[str, _Part] = {}
        written: dict[str, int] = {}
        corrupt = 0
        for record in read_records(fh):
            if record is None:
                corrupt += 1
                continue
            day = _record_day(record)
            part = parts.setdefault(day, _Part())
            part.add(record)
            if part.rows >= part_rows:
                _write_part(path.parent, day, path.stem, written.get(day, 0), part.tables())
                written[day] = written.get(day, 0) + 1
                parts[day] = _Part()
        for day, part in parts.items():
            if part.rows:
                _write_part(path.parent, day, path.stem, written.get(day, 0), part.tables())
        path.unlink()
        fsync_dir(path.parent)
    if corrupt:
        logger.warning("prediction log: %d line(s) of %s cut short by a crash were skipped", corrupt, path.name)
    return corrupt


@dataclass(frozen=True)
class CompactionResult:
    """What `compact_prediction_log` did: segments rewritten, those still being written, lines lost."""

    compacted: int
    busy: int
    corrupt_lines: int


def model_dirs(base: Path, name: str | None) -> list[Path]:
    """The log directories of model ``name`` (or of every model)."""
    if name is not None:
        return [base / name] if (base / name).is_dir() else []
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def compact_dirs(directories: Iterable[Path], part_rows: int = PART_ROWS) -> CompactionResult:
    """Compact every closed segment in ``directories``."""
    compacted = busy = corrupt = 0
    for directory in directories:
        for path in sorted(directory.glob("*.jsonl")):
            lost = compact_segment(path, part_rows)
            if lost is None:
                busy += path.exists()
            else:
                compacted += 1
                corrupt += lost
    if compacted:
        release_memory()
    return CompactionResult(compacted, busy, corrupt)


def closed_segments(directories: Iterable[Path]) -> list[Path]:
    """The segments in ``directories`` that no writer holds now (those a compaction would rewrite)."""
    closed = []
    for directory in directories:
        for path in sorted(directory.glob("*.jsonl")):
            try:
                with open(path, "rb") as fh:
                    if lock_segment(fh, block=False):  # closing the handle releases the lock
                        closed.append(path)
            except FileNotFoundError:
                continue
    return closed


#: Seconds a child compaction may take before it is stopped (its segments stay and are compacted later).
CHILD_TIMEOUT = 900.0
#: The child's scheduling priority below its parent's, so serving or streaming keeps the cores first.
CHILD_NICE = 5


def compact_in_child(directories: Sequence[Path], timeout: float = CHILD_TIMEOUT) -> CompactionResult | None:
    """`compact_dirs` in a child Python process; ``None`` when the child could not run or failed.

    A compaction parses and rewrites up to a segment's 32 MB: in the serving or streaming process it
    would hold the GIL for that long (and keep the memory it peaked at); in a child the parent's
    threads keep running and the memory goes back to the system when the child exits.
    """
    import subprocess

    import mlpilot

    package_root = str(Path(mlpilot.__file__).resolve().parents[1])  # the child imports this same mlpilot
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    command = [sys.executable, "-m", "mlpilot.monitor._compactor", *map(str, directories)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("prediction log: the compaction process did not finish (%s); compacting here instead", exc)
        return None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        logger.warning("prediction log: the compaction process failed (exit %s): %s; compacting here instead",
                       done.returncode, done.stderr.strip()[-500:])
        return None
    return CompactionResult(**json.loads(lines[-1]))


def release_memory() -> None:
    """Hand the memory a compaction freed back to the system (Arrow's pool and, on glibc, the C heap).

    Without it the freed chunks stay in the allocators' free lists and a long-running writer's RSS
    only grows: a 60 s stream run at 1,000-row batches peaked +213 MB without it (+70 MB with the
    chunks cut by rows and this).
    """
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):  # pragma: no cover - pyarrow < 9
        pass
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only (not musl)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()


def prune_dirs(directories: Iterable[Path], keep: timedelta, now: datetime | None = None) -> list[Path]:
    """Delete the day partitions older than ``keep`` (a whole UTC day goes once all of it is older)."""
    now = now or datetime.now(UTC)
    cutoff = (now - keep).date()
    removed = []
    for directory in directories:
        for partition in sorted(directory.glob("date=*")):
            match = _PARTITION.match(partition.name)
            if match and date.fromisoformat(match.group(1)) < cutoff:
                for part in partition.iterdir():
                    part.unlink()
                partition.rmdir()
                removed.append(partition)
    return removed


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFilter:
    """The rows a read keeps and the columns it returns (``None``: all)."""

    since: pd.Timestamp | None = None
    until: pd.Timestamp | None = None
    columns: tuple[str, ...] | None = None
    versions: tuple[int, ...] | None = None
    sources: tuple[str, ...] | None = None

    def keeps_day(self, day: str) -> bool:
        if self.since is not None and day < f"{self.since:%Y-%m-%d}":
            return False
        return not (self.until is not None and day > f"{self.until:%Y-%m-%d}")

    def arrow(self) -> Any:
        """The filter as a pyarrow dataset expression (pushed down to row groups)."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        expression = None
        stamp = pa.timestamp("ns", tz="UTC")  # compared with a part's own unit (us now, ns in older logs)
        terms = []
        if self.since is not None:
            terms.append(ds.field("timestamp") >= pa.scalar(self.since.to_pydatetime(), type=stamp))
        if self.until is not None:
            terms.append(ds.field("timestamp") < pa.scalar(self.until.to_pydatetime(), type=stamp))
        if self.versions is not None:
            terms.append(ds.field("version").isin(list(self.versions)))
        if self.sources is not None:
            terms.append(ds.field("source").isin(list(self.sources)))
        for term in terms:
            expression = term if expression is None else expression & term
        return expression

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The same filter on a frame read from a segment."""
        keep = pd.Series(True, index=frame.index)
        if self.since is not None:
            keep &= frame["timestamp"] >= self.since
        if self.until is not None:
            keep &= frame["timestamp"] < self.until
        if self.versions is not None:
            keep &= frame["version"].isin(self.versions)
        if self.sources is not None:
            keep &= frame["source"].isin(self.sources)
        frame = frame[keep] if not keep.all() else frame
        return self.project(frame)

    def project(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.columns is None:
            return frame
        return frame[[c for c in self.columns if c in frame.columns]]


def _read_part(path: Path, where: LogFilter, batch_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet")
    names = dataset.schema.names
    columns = names if where.columns is None else [c for c in where.columns if c in names]
    for batch in dataset.to_batches(columns=columns, filter=where.arrow(), batch_size=batch_rows):
        if batch.num_rows:
            yield batch_frame(batch)


def _read_segment(path: Path, where: LogFilter, batch_rows: int) -> Iterator[pd.DataFrame]:
    with open(path, encoding="utf-8") as fh:
        records: list[dict[str, Any]] = []
        rows = 0
        for record in read_records(fh):
            if record is None:
                continue
            records.append(record)
            rows += int(record["n_rows"])
            if rows >= batch_rows:
                yield where.apply(records_frame(records))
                records, rows = [], 0
        if records:
            yield where.apply(records_frame(records))


def read_frames(directories: Iterable[Path], where: LogFilter, batch_rows: int) -> Iterator[pd.DataFrame]:
    """The log's rows in batches: Parquet parts day by day, then the segments not yet compacted."""
    for directory in directories:
        segments = {p.stem: p for p in sorted(directory.glob("*.jsonl"))}
        for partition in sorted(directory.glob("date=*")):
            if not where.keeps_day(partition.name.removeprefix("date=")):
                continue
            for part in sorted(partition.glob("*.parquet")):
                if part.name.split(".", 1)[0] not in segments:  # else partial: the segment is read instead
                    yield from _read_part(part, where, batch_rows)
        for stem, segment in segments.items():
            try:
                yield from _read_segment(segment, where, batch_rows)
            except FileNotFoundError:  # compacted since we listed it: its parts are complete now
                for part in sorted(directory.glob(f"date=*/{stem}.*.parquet")):
                    if where.keeps_day(part.parent.name.removeprefix("date=")):
                        yield from _read_part(part, where, batch_rows)
