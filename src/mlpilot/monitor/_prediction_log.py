"""The prediction log: every served prediction, appended off the request path.

`PredictionLog.log` only puts a record on a bounded queue (never blocks; a full
queue drops the record and counts it). A writer thread takes records in
batches and appends them as JSON lines to a segment file under
``workspace.logs_dir / "predictions" / <model>``: one line per request, with
the inputs column by column (a 1,000-row batch costs one ``json.dumps`` of a
few lists, not 1,000 of dicts). Each process writes its own segments, so
several server workers never interleave lines. A crash can at worst leave a
truncated last line, which `read_prediction_log` skips.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpilot._types import PathLike
from mlpilot._workspace import Workspace
from mlpilot.exceptions import InvalidParameterError, SourceNotFoundError

logger = logging.getLogger(__name__)

#: Columns every frame from `read_prediction_log` has, before the input columns.
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
_SEGMENT_BYTES = 64 * 1024 * 1024
_STOP = object()


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


def _columns(inputs: Any) -> dict[str, list[Any]]:
    if isinstance(inputs, pd.DataFrame):
        return {str(c): _column(inputs[c]) for c in inputs.columns}
    if isinstance(inputs, Mapping):
        return {str(k): _column(v) for k, v in inputs.items()}
    names: dict[str, None] = {}
    for row in inputs:
        names.update(dict.fromkeys(row))
    return {str(k): _column([row.get(k) for row in inputs]) for k in names}


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
    ) -> None:
        self.workspace = workspace
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.dropped = 0
        self.written = 0
        self.errors = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._files: dict[str, tuple[Path, Any]] = {}
        self._segment = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def start(self) -> PredictionLog:
        """Start the writer thread (idempotent); return ``self``."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="mlpilot-prediction-log", daemon=True)
            self._thread.start()
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
    ) -> None:
        """Queue one request's predictions; never blocks, drops when the queue is full.

        ``inputs`` is a list of row dicts, a DataFrame, or a mapping of column
        name to values (lists or arrays), one value per row of ``outputs``.
        ``warnings`` holds each row's input flags (``"out_of_range:x; ..."``,
        ``""`` for a clean row), or ``None`` when no row has any.
        ``request_ids`` is one id for the whole request (its rows are told apart
        by ``row``), one id per row (a stream's messages), or ``None`` for a new
        random one. ``source`` says where the rows came from (``"api"``,
        ``"stream"``, ``"shadow"``, ...).
        """
        if request_ids is not None and not isinstance(request_ids, str) and len(request_ids) != len(outputs):
            raise InvalidParameterError(
                f"request_ids has {len(request_ids)} ids for {len(outputs)} predicted rows; "
                "pass one id for the request or one per row."
            )
        entry = _Entry(name, int(version), time.time(), inputs, outputs, probabilities, float(latency_ms),
                       warnings, request_ids, source)
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

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the writer and close the files."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                logger.warning("prediction log: queue still full at shutdown")
            thread.join(timeout)
        self._thread = None
        for _path, fh in self._files.values():
            fh.close()
        self._files.clear()

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
        record = {
            "timestamp": datetime.fromtimestamp(entry.timestamp, UTC).isoformat(),
            "model": entry.model,
            "version": entry.version,
            "request_id": entry.request_ids if isinstance(entry.request_ids, str) else uuid.uuid4().hex[:16],
            "source": entry.source,
            "n_rows": len(entry.outputs),
            "latency_ms": round(entry.latency_ms, 3),
            "predictions": _column(entry.outputs),
            "probabilities": list(entry.probabilities) if entry.probabilities is not None else None,
            "inputs": _columns(entry.inputs),
        }
        if entry.warnings is not None:
            record["warnings"] = list(entry.warnings)
        if entry.request_ids is not None and not isinstance(entry.request_ids, str):
            record["request_ids"] = [str(r) for r in entry.request_ids]
        return json.dumps(record, default=_json_default, allow_nan=False) + "\n"

    def _file(self, model: str) -> Any:
        current = self._files.get(model)
        if current is not None and current[0].stat().st_size < _SEGMENT_BYTES:
            return current[1]
        if current is not None:
            current[1].close()
        directory = predictions_dir(self.workspace, model)
        directory.mkdir(parents=True, exist_ok=True)
        n = len(list(directory.glob(f"{self._segment}-*.jsonl")))
        path = directory / f"{self._segment}-{n:04d}.jsonl"
        fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across batches
        self._files[model] = (path, fh)
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


def read_prediction_log(workspace: Workspace | PathLike | None, name: str | None = None) -> pd.DataFrame:
    """Read the prediction log into a frame, one row per predicted row.

    Parameters
    ----------
    workspace : Workspace, str or Path
        The workspace, or its directory, as `mlpilot.train` takes it (``None``:
        ``MLPILOT_HOME`` or ``./mlpilot-workspace``).
    name : str, optional
        Only this model's predictions.

    Returns
    -------
    DataFrame
        The columns of `LOG_COLUMNS` (``timestamp`` as UTC datetimes, ``row``
        the row's position in its request, ``warnings`` the row's input
        flags such as ``"out_of_range:x"``, ``""`` for none; ``request_id`` the
        row's id, shared by the rows of one request unless ids were given per
        row; ``source`` where the rows came from), then one column per input
        feature under its own name (an input whose name clashes with a log column is
        prefixed with ``input.``). Sorted by timestamp.
    """
    directory = predictions_dir(_existing_workspace(workspace), name)
    meta: dict[str, list[Any]] = {c: [] for c in LOG_COLUMNS}
    inputs: dict[str, list[Any]] = {}
    total = 0
    if directory.exists():
        for path in sorted(directory.rglob("*.jsonl")):
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                        n = int(record["n_rows"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash
                    for key in ("timestamp", "model", "version", "latency_ms"):
                        meta[key].extend([record.get(key)] * n)
                    meta["request_id"].extend(record.get("request_ids") or [record.get("request_id")] * n)
                    meta["source"].extend([record.get("source", "api")] * n)
                    meta["row"].extend(range(n))
                    meta["prediction"].extend(record.get("predictions") or [None] * n)
                    meta["probabilities"].extend(record.get("probabilities") or [None] * n)
                    meta["warnings"].extend(record.get("warnings") or [""] * n)
                    for column, values in (record.get("inputs") or {}).items():
                        inputs.setdefault(column, [None] * total).extend(values)
                    total += n
                    for values in inputs.values():
                        if len(values) < total:
                            values.extend([None] * (total - len(values)))
    features = pd.DataFrame(
        {f"input.{column}" if column in LOG_COLUMNS else column: values for column, values in inputs.items()},
        index=pd.RangeIndex(total),
    )
    frame = pd.concat([pd.DataFrame(meta, columns=list(LOG_COLUMNS)), features], axis=1)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    if total:
        frame["version"] = frame["version"].astype("int64")
    return frame.sort_values(["timestamp", "request_id", "row"], kind="stable").reset_index(drop=True)
