"""The prediction log: every served prediction, appended off the request path.

`PredictionLog.log` only puts a record on a bounded queue (never blocks; a full
queue drops the record and counts it). A writer thread takes records in
batches and appends them as JSON lines to a segment file under
``workspace.logs_dir / "predictions" / <model>``: one line per request, with
the inputs column by column (a 1,000-row batch costs one ``orjson.dumps`` of a
few lists, not 1,000 of dicts; ``json.dumps`` where orjson is not installed, or
for what orjson refuses). Each process writes its own segments and holds
a lock on the open one, so several server workers never interleave lines. A
crash can at worst leave a truncated last line, which readers skip and count.

Segments are rotated by size and age; a compactor thread has closed ones (and
those left by a killed process) rewritten as Parquet parts by model and day
(`mlpilot.monitor._log_store`), by a child process (`mlpilot.monitor._compactor`,
so the parsing does not hold this process's GIL), and deletes the days older than ``keep``.
`read_prediction_log` and `iter_prediction_log` read both, column-wise, with
the filters pushed down to the Parquet row groups.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpilot._types import PathLike
from mlpilot._workspace import Workspace
from mlpilot.exceptions import InvalidParameterError, SourceNotFoundError
from mlpilot.monitor._log_store import (
    LOG_COLUMNS,
    CompactionResult,
    LogFilter,
    closed_segments,
    compact_dirs,
    compact_in_child,
    lock_segment,
    model_dirs,
    parse_keep,
    prune_dirs,
    read_frames,
)

try:  # the fast encoder where installed (``mlpilot[stream]`` brings it); the standard library otherwise
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

_SEGMENT_BYTES = 32 * 1024 * 1024
_SEGMENT_SECONDS = 600.0
_RETENTION_SECONDS = 3600.0
_STOP = object()
_STR = {str}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    return str(value)


def _clean(value: Any) -> Any:
    """JSON has no NaN: turn float NaN into null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column(values: Any) -> list[Any]:
    """Plain JSON values of one column, NaN as null, fast for numpy arrays."""
    if isinstance(values, pd.Series | pd.Index) or hasattr(values, "__array__"):
        array = np.asarray(values)
        if array.dtype.kind == "f":
            out = array.tolist()
            if np.isfinite(array).all():
                return out
            return [v if math.isfinite(v) else None for v in out]
        if array.dtype.kind in "iub":
            return array.tolist()
        if array.dtype.kind == "M":
            return [None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in array]
        values = array.tolist()
    return [_clean(v) if not isinstance(v, str) else v for v in values]


def _columns(inputs: Any, column: Callable[[Any], Any] = _column) -> dict[str, Any]:
    if isinstance(inputs, pd.DataFrame):
        return {str(c): _column(inputs[c]) for c in inputs.columns}
    if isinstance(inputs, Mapping):
        return {str(k): column(v) for k, v in inputs.items()}
    rows = inputs if isinstance(inputs, list) else list(inputs)
    first = rows[0].keys() if rows else {}.keys()
    if all(row.keys() == first for row in rows):  # the usual case: every row has the same fields
        return {str(k): column([row[k] for row in rows]) for k in first}
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {str(k): column([row.get(k) for row in rows]) for k in names}


def _as_is(values: Any) -> Any:
    """A column as orjson takes it: a list as it is (orjson writes NaN and infinities as null), else `_column`."""
    return values if type(values) is list else _column(values)


@dataclass
class _Entry:
    model: str
    version: int
    timestamp: float
    inputs: list[dict[str, Any]] | pd.DataFrame | Mapping[str, Any]
    outputs: Sequence[Any]
    probabilities: Sequence[Any] | None
    latency_ms: float
    warnings: Sequence[str] | None = None
    request_ids: str | Sequence[str] | None = None
    source: str = "api"
    first_row: int = 0


def predictions_dir(workspace: Workspace, name: str | None = None) -> Path:
    """The directory of the prediction log (of one model if ``name`` is given)."""
    base = workspace.logs_dir / "predictions"
    return base / name if name is not None else base


class PredictionLog:
    """A non-blocking, batched prediction log writing JSON-lines segments.

    Parameters
    ----------
    workspace : Workspace
        The log lives under ``workspace.logs_dir / "predictions"``.
    max_queue : int
        Requests waiting to be written; beyond it new ones are dropped (and
        counted in ``dropped``) rather than slowing the server down.
    batch_size : int
        Requests written per batch at most.
    flush_interval : float
        Seconds a batch waits for more requests before it is written.
    keep : str or timedelta, optional
        Delete the days of the log older than this (``"30d"``), checked at
        start and hourly; ``None`` keeps everything.
    segment_bytes, segment_seconds : float
        A segment is closed (and compacted into Parquet) once it is this large or this old.
    clock : callable, optional
        Seconds since the epoch for each record's timestamp (default `time.time`).
    compact_in_child : bool
        The background compaction runs in a child process (default), off this process's GIL and
        heap; in the compactor thread itself where a child cannot run, or with ``False``.

    Examples
    --------
    >>> import tempfile
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> log = PredictionLog(ws).start()
    >>> log.log("churn", 1, [{"x": 1.0}], ["yes"], latency_ms=2.5)
    >>> log.close()
    >>> read_prediction_log(ws)[["model", "version", "prediction", "x"]].values.tolist()
    [['churn', 1, 'yes', 1.0]]
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        max_queue: int = 10_000,
        batch_size: int = 256,
        flush_interval: float = 0.2,
        keep: str | timedelta | None = None,
        segment_bytes: int = _SEGMENT_BYTES,
        segment_seconds: float = _SEGMENT_SECONDS,
        clock: Callable[[], float] = time.time,
        compact_in_child: bool = True,
    ) -> None:
        self.workspace = workspace
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.keep = parse_keep(keep) if keep is not None else None
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.clock = clock
        self.compact_in_child = compact_in_child
        self.dropped = 0
        self.written = 0
        self.errors = 0
        self.corrupt_lines = 0
        self.compacted = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._compactor: threading.Thread | None = None
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._files: dict[str, tuple[Path, Any, float]] = {}
        self._segment = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._segments = 0

    def start(self) -> PredictionLog:
        """Start the writer and compactor threads (idempotent); return ``self``."""
        self._closing.clear()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="mlpilot-prediction-log", daemon=True)
            self._thread.start()
        if self._compactor is None or not self._compactor.is_alive():
            self._compactor = threading.Thread(target=self._compact_loop, name="mlpilot-log-compactor", daemon=True)
            self._compactor.start()
        return self

    def log(
        self,
        name: str,
        version: int,
        inputs: list[dict[str, Any]] | pd.DataFrame | Mapping[str, Any],
        outputs: Sequence[Any],
        latency_ms: float,
        *,
        probabilities: Sequence[Any] | None = None,
        warnings: Sequence[str] | None = None,
        request_ids: str | Sequence[str] | None = None,
        source: str = "api",
        first_row: int = 0,
    ) -> None:
        """Queue one request's predictions; never blocks, drops when the queue is full.

        ``inputs`` is a list of row dicts, a DataFrame, or a mapping of column
        name to values (lists or arrays), one value per row of ``outputs``.
        ``warnings`` holds each row's input flags (``"out_of_range:x; ..."``,
        ``""`` for a clean row), or ``None`` when no row has any.
        ``request_ids`` is one id for the whole request (its rows are told apart
        by ``row``), one id per row (a stream's messages), or ``None`` for a new
        random one. ``source`` says where the rows came from (``"api"``,
        ``"stream"``, ``"shadow"``, ...). ``first_row`` numbers the rows of a
        request logged in several parts (a CSV's chunks) on from there.
        """
        if request_ids is not None and not isinstance(request_ids, str) and len(request_ids) != len(outputs):
            raise InvalidParameterError(
                f"request_ids has {len(request_ids)} ids for {len(outputs)} predicted rows; "
                "pass one id for the request or one per row."
            )
        entry = _Entry(name, int(version), self.clock(), inputs, outputs, probabilities, float(latency_ms),
                       warnings, request_ids, source, int(first_row))
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 10.0, *, compact: bool = True) -> None:
        """Write what is queued, stop the writer, close the segments and (``compact``) compact them."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                logger.warning("prediction log: queue still full at shutdown")
            thread.join(timeout)
        self._thread = None
        self._closing.set()
        self._wake.set()
        compactor = self._compactor
        if compactor is not None and compactor.is_alive():
            compactor.join(timeout)
        self._compactor = None
        for _path, fh, _opened in self._files.values():
            fh.close()
        self._files.clear()
        if compact:
            self.compact()

    def compact(self, *, in_child: bool = False) -> CompactionResult:
        """Compact every closed segment of the log into Parquet now (also those of killed processes).

        ``in_child``: in a child process (`compact_in_child`) when there is anything to compact, here
        if the child cannot run.
        """
        directories = model_dirs(predictions_dir(self.workspace), None)
        result = None
        if in_child:
            if not closed_segments(directories):
                return CompactionResult(0, 0, 0)
            result = compact_in_child(directories)
        if result is None:
            result = compact_dirs(directories)
        self.compacted += result.compacted
        self.corrupt_lines += result.corrupt_lines
        return result

    # -- compactor thread ---------------------------------------------------------

    def _compact_loop(self) -> None:
        pruned_at = -math.inf
        while True:
            try:
                self.compact(in_child=self.compact_in_child)
                if self.keep is not None and time.monotonic() - pruned_at >= _RETENTION_SECONDS:
                    prune_dirs(model_dirs(predictions_dir(self.workspace), None), self.keep)
                    pruned_at = time.monotonic()
            except Exception:
                self.errors += 1
                logger.exception("prediction log: compaction failed (the segments stay and are read as they are)")
            self._wake.wait(min(self.segment_seconds, _RETENTION_SECONDS))
            self._wake.clear()
            if self._closing.is_set():
                return

    # -- writer thread ------------------------------------------------------------

    def _run(self) -> None:
        # The writer polls instead of blocking on the queue: a blocked ``get`` is woken
        # by every ``put``, and that wake-up (a thread competing for the GIL) costs a
        # one-row request a noticeable share of its latency. Records wait at most
        # ``flush_interval`` before they are written.
        stop = False
        while not stop:
            batch = self._drain()
            if not batch:
                self._rotate_idle()
                time.sleep(self.flush_interval)
                continue
            entries = [e for e in batch if e is not _STOP]
            stop = len(entries) != len(batch)
            try:
                if entries:
                    self._write(entries)
            except Exception:
                self.errors += 1
                logger.exception("prediction log: could not write %d request(s)", len(entries))
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _drain(self) -> list[Any]:
        """Up to ``batch_size`` queued items, without waiting; stops after a stop marker."""
        batch: list[Any] = []
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
            if item is _STOP:
                break
        return batch

    def _write(self, entries: list[_Entry]) -> None:
        lines: dict[str, list[str]] = {}
        rows: dict[str, int] = {}
        for entry in entries:
            lines.setdefault(entry.model, []).append(self._line(entry))
            rows[entry.model] = rows.get(entry.model, 0) + len(entry.outputs)
        for model, model_lines in lines.items():
            fh = self._file(model)
            fh.write("".join(model_lines))
            fh.flush()
            self.written += rows[model]

    def _line(self, entry: _Entry) -> str:
        if _orjson is not None:  # ~8x faster on a 1,000-row batch; what it refuses takes the json path
            try:
                return _orjson.dumps(self._record(entry, _as_is), default=_json_default,
                                     option=_orjson.OPT_SERIALIZE_NUMPY | _orjson.OPT_APPEND_NEWLINE).decode()
            except TypeError:  # an int beyond 64 bits, a non-str key, a lone surrogate, ...
                pass
        return json.dumps(self._record(entry, _column), default=_json_default, allow_nan=False) + "\n"

    def _record(self, entry: _Entry, column: Callable[[Any], Any]) -> dict[str, Any]:
        record = {
            "timestamp": datetime.fromtimestamp(entry.timestamp, UTC).isoformat(),
            "model": entry.model,
            "version": entry.version,
            "request_id": entry.request_ids if isinstance(entry.request_ids, str) else uuid.uuid4().hex,
            "source": entry.source,
            "n_rows": len(entry.outputs),
            "latency_ms": round(entry.latency_ms, 3),
            "predictions": column(entry.outputs),
            "probabilities": list(entry.probabilities) if entry.probabilities is not None else None,
            "inputs": _columns(entry.inputs, column),
        }
        if entry.warnings is not None:
            record["warnings"] = list(entry.warnings)
        if entry.request_ids is not None and not isinstance(entry.request_ids, str):
            ids = entry.request_ids
            record["request_ids"] = list(ids) if set(map(type, ids)) <= _STR else [str(r) for r in ids]
        if entry.first_row:
            record["first_row"] = entry.first_row
        return record

    def _rotate_idle(self) -> None:
        """Close the segments older than ``segment_seconds`` so that their rows get compacted."""
        now = time.monotonic()
        for model, (_path, fh, opened) in list(self._files.items()):
            if now - opened >= self.segment_seconds:
                fh.close()
                del self._files[model]
                self._wake.set()

    def _file(self, model: str) -> Any:
        current = self._files.get(model)
        if current is not None:
            path, fh, opened = current
            if fh.tell() < self.segment_bytes and time.monotonic() - opened < self.segment_seconds:
                return fh
            fh.close()  # releases its lock: the compactor may now rewrite it
            self._wake.set()
        directory = predictions_dir(self.workspace, model)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self._segment}-{self._segments:04d}.jsonl"
        self._segments += 1
        fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across batches
        lock_segment(fh)
        self._files[model] = (path, fh, time.monotonic())
        return fh


def _existing_workspace(workspace: Workspace | PathLike | None) -> Workspace:
    """``workspace`` as `train` takes it (a Workspace, a directory, None), without creating one to read."""
    if isinstance(workspace, Workspace):
        return workspace
    if workspace is not None and not isinstance(workspace, str | os.PathLike):
        raise InvalidParameterError(
            "The workspace of read_prediction_log must be a Workspace or the path of a workspace directory "
            f"(str or Path), as for train(workspace=...). Got a {type(workspace).__name__}."
        )
    if workspace is not None and not Path(workspace).expanduser().is_dir():
        raise SourceNotFoundError(
            f"No mlpilot workspace at {os.fspath(workspace)!r}: the directory does not exist. "
            "Pass the directory the models were trained and served in (train(workspace=...), "
            "mlpilot serve --workspace)."
        )
    return Workspace.from_env(workspace)


def _filter(
    since: datetime | str | None,
    until: datetime | str | None,
    columns: Sequence[str] | None,
    versions: Sequence[int] | int | None,
    source: Sequence[str] | str | None,
) -> LogFilter:
    def stamp(value: datetime | str | None, what: str) -> pd.Timestamp | None:
        if value is None:
            return None
        try:
            ts = pd.Timestamp(value)
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"{what} must be a datetime or an ISO date such as '2026-01-31' or '2026-01-31T12:00:00Z'. "
                f"Got {value!r}."
            ) from None
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

    if isinstance(versions, int):
        versions = [versions]
    return LogFilter(
        since=stamp(since, "since"),
        until=stamp(until, "until"),
        columns=tuple(columns) if columns is not None else None,
        versions=tuple(int(v) for v in versions) if versions is not None else None,
        sources=(source,) if isinstance(source, str) else tuple(source) if source is not None else None,
    )


def _empty(where: LogFilter) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in LOG_COLUMNS})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return where.project(frame)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("timestamp", "request_id", "row") if c in frame.columns]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True) if keys else frame.reset_index(drop=True)


def _ordered(frame: pd.DataFrame, where: LogFilter) -> pd.DataFrame:
    """Log columns first, then the inputs in the order they first appeared."""
    if where.columns is not None:
        return where.project(frame)
    first = [c for c in LOG_COLUMNS if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in LOG_COLUMNS]]


def read_prediction_log(
    workspace: Workspace | PathLike | None,
    name: str | None = None,
    *,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    columns: Sequence[str] | None = None,
    versions: Sequence[int] | int | None = None,
    source: Sequence[str] | str | None = None,
) -> pd.DataFrame:
    """Read the prediction log into a frame, one row per predicted row.

    Parameters
    ----------
    workspace : Workspace, str or Path
        The workspace, or its directory, as `mlpilot.train` takes it (``None``:
        ``MLPILOT_HOME`` or ``./mlpilot-workspace``).
    name : str, optional
        Only this model's predictions.
    since, until : datetime or str, optional
        Only rows logged at or after ``since`` and before ``until`` (naive
        times are UTC). Whole days outside are not opened.
    columns : sequence of str, optional
        Only these columns (log columns or input features); the others are
        never read from disk.
    versions : int or sequence of int, optional
        Only the predictions of these versions.
    source : str or sequence of str, optional
        Only rows from these sources (``"api"``, ``"stream"``, ``"shadow"``, ``"ui"``).

    Returns
    -------
    DataFrame
        The columns of `LOG_COLUMNS` (``timestamp`` as UTC datetimes, ``row``
        the row's position in its request, ``warnings`` the row's input
        flags such as ``"out_of_range:x"``, ``""`` for none; ``request_id`` the
        row's id, shared by the rows of one request unless ids were given per
        row; ``source`` where the rows came from), then one column per input
        feature under its own name (an input whose name clashes with a log column is
        prefixed with ``input.``). Sorted by timestamp. For a window too large
        for memory use `iter_prediction_log`.
    """
    where = _filter(since, until, columns, versions, source)
    base = predictions_dir(_existing_workspace(workspace))
    frames = [f for f in read_frames(model_dirs(base, name), where, 1_000_000) if len(f)]
    if not frames:
        return _empty(where)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return _sorted(_ordered(frame, where))


def iter_prediction_log(
    workspace: Workspace | PathLike | None,
    name: str,
    *,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    columns: Sequence[str] | None = None,
    chunk_rows: int = 1_000_000,
) -> Iterator[pd.DataFrame]:
    """Read one model's log in frames of at most ``chunk_rows`` rows, in bounded memory.

    Takes the filters of `read_prediction_log`; yields frames with its
    columns (``columns`` only, when given). The frames come day by day, each
    sorted by time; the rows not yet compacted (the last minutes) come last.
    Memory holds one chunk (and one Parquet batch) at a time.
    """
    if chunk_rows < 1:
        raise InvalidParameterError(f"chunk_rows must be at least 1. Got {chunk_rows}.")
    where = _filter(since, until, columns, None, None)
    base = predictions_dir(_existing_workspace(workspace))
    pending: list[pd.DataFrame] = []
    rows = 0
    for frame in read_frames(model_dirs(base, name), where, min(chunk_rows, 65_536)):
        while len(frame):
            take = frame.iloc[: chunk_rows - rows]
            frame = frame.iloc[len(take):]
            pending.append(take)
            rows += len(take)
            if rows >= chunk_rows:
                yield _sorted(_ordered(pd.concat(pending, ignore_index=True), where))
                pending, rows = [], 0
    if pending:
        yield _sorted(_ordered(pd.concat(pending, ignore_index=True), where))


def compact_prediction_log(workspace: Workspace | PathLike | None, name: str | None = None) -> CompactionResult:
    """Rewrite the closed JSON-lines segments (of ``name``, or of every model) as daily Parquet parts.

    Servers do this by themselves; call it after a crash to compact the
    segments a killed process left. Safe to run beside servers and readers.
    """
    return compact_dirs(model_dirs(predictions_dir(_existing_workspace(workspace)), name))


def prune_prediction_log(
    workspace: Workspace | PathLike | None, keep: str | timedelta, *, now: datetime | None = None
) -> list[str]:
    """Delete the days of the log older than ``keep`` (``"30d"``); return the ``model/date=...`` removed.

    The segments that can be compacted are compacted first, so their old rows go too.
    """
    period = parse_keep(keep)
    base = predictions_dir(_existing_workspace(workspace))
    directories = model_dirs(base, None)
    compact_dirs(directories)
    return [f"{p.parent.name}/{p.name}" for p in prune_dirs(directories, period, now)]
