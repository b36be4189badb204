"""Ground truth that arrives later: labels joined to logged predictions by ``(request_id, row)``.

Labels live in one SQLite database in the workspace (``logs/feedback.db``),
keyed by ``(model, request_id, row)``: the key makes a duplicate a refused
insert (exact under concurrent writers: server workers and the CLI at once),
a batch is one transaction, and nothing is rewritten to add a label. Each
label is checked before it is stored: its request must be in the prediction
log, and its value must fit the model version that made the prediction (one
of its classes, or a number for a regressor). Every label not stored is
reported with why; none is dropped silently.
"""

from __future__ import annotations

import json
import math
import numbers
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlpilot._types import PathLike
from mlpilot._workspace import Workspace
from mlpilot.exceptions import (
    ColumnNotFoundError,
    EmptyDataError,
    InvalidParameterError,
    ModelNotFoundError,
)
from mlpilot.monitor._log_store import LOG_COLUMNS
from mlpilot.monitor._prediction_log import _existing_workspace, iter_prediction_log

if TYPE_CHECKING:
    from mlpilot.registry import ModelVersion, Registry

#: Labels reported per problem kind at most (the counts are always complete).
_REPORTED = 1000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    model TEXT NOT NULL,
    request_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    label TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (model, request_id, row)
)
"""


@dataclass
class FeedbackResult:
    """What `record_feedback` did with each label.

    Attributes
    ----------
    accepted : int
        Labels stored.
    unknown_ids : list of dict
        ``{request_id, row, reason}`` of labels whose prediction is not in the log.
    duplicates : list of dict
        ``{request_id, row}`` of labels given twice, or already stored (the first is kept).
    wrong_type : list of dict
        ``{request_id, row, label, reason}`` of labels the model could not have predicted.
    message : str
        One sentence saying all of it, for people.
    """

    accepted: int = 0
    unknown_ids: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    wrong_type: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "unknown_ids": self.unknown_ids, "duplicates": self.duplicates,
                "wrong_type": self.wrong_type, "counts": self.counts, "message": self.message}


def feedback_path(workspace: Workspace) -> Path:
    """The labels database of ``workspace``."""
    return workspace.logs_dir / "feedback.db"


@contextmanager
def _connect(workspace: Workspace) -> Iterator[sqlite3.Connection]:
    path = feedback_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        yield conn


class _LabelCheck:
    """Whether a label fits the version that made the prediction; the label as stored."""

    def __init__(self, version: ModelVersion) -> None:
        info = version.info or {}
        self.task = info.get("task")
        classes = info.get("classes")
        self.classes: list[Any] | None = list(classes) if classes else None
        self._by_text = {str(c): c for c in self.classes} if self.classes else {}

    def __call__(self, label: Any) -> tuple[Any, str | None]:
        if label is None or (isinstance(label, float) and math.isnan(label)) or label is pd.NA:
            return None, "the label is missing"
        if hasattr(label, "item"):
            label = label.item()  # numpy scalars
        if self.task == "regression":
            if isinstance(label, bool) or not isinstance(label, numbers.Real) or not math.isfinite(label):
                return None, f"a regression model needs a finite number, got {type(label).__name__} {label!r}"
            return float(label), None
        if self.classes is not None:
            if isinstance(label, float) and label.is_integer():
                label = int(label)
            if not isinstance(label, bool) and label in self.classes:
                return self.classes[self.classes.index(label)], None
            if str(label) in self._by_text:
                return self._by_text[str(label)], None
            shown = ", ".join(repr(c) for c in self.classes[:10])
            return None, f"not one of the model's classes ({shown})"
        if not isinstance(label, str | numbers.Real):
            return None, f"a label must be a class or a number, got {type(label).__name__}"
        return label, None


def _check_frame(labels: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(labels, pd.DataFrame):
        raise InvalidParameterError(
            f"labels must be a DataFrame with columns request_id, label (and optionally row); got a "
            f"{type(labels).__name__}."
        )
    for column in ("request_id", "label"):
        if column not in labels.columns:
            raise ColumnNotFoundError(column, [str(c) for c in labels.columns], what="labels column")
    if labels.empty:
        raise EmptyDataError("There are no labels to record: the labels have no rows.")
    return labels


def _rows(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
        raise ValueError(value)
    return int(value)


def _logged(workspace: Workspace, name: str, ids: set[str]) -> tuple[dict[tuple[str, int], int], dict[str, int]]:
    """(request_id, row) -> version of the logged rows of ``ids``, and each id's row count."""
    found: dict[tuple[str, int], int] = {}
    rows: dict[str, int] = {}
    for chunk in iter_prediction_log(workspace, name, columns=["request_id", "row", "version"], chunk_rows=500_000):
        hits = chunk[chunk["request_id"].isin(ids)]
        for rid, row, version in zip(hits["request_id"], hits["row"], hits["version"], strict=True):
            found[(str(rid), int(row))] = int(version)
            rows[str(rid)] = rows.get(str(rid), 0) + 1
    return found, rows


def _message(result: FeedbackResult) -> str:
    counts = result.counts
    parts = [f"Accepted {result.accepted} label{'s' if result.accepted != 1 else ''}"]
    if counts.get("unknown_ids"):
        first = result.unknown_ids[0]
        parts.append(f"{counts['unknown_ids']} with a request id not in the prediction log (first: "
                     f"{first['request_id']!r}: {first['reason']})")
    if counts.get("duplicates"):
        parts.append(f"{counts['duplicates']} duplicate{'s' if counts['duplicates'] != 1 else ''} (already "
                     "labelled: the first label is kept)")
    if counts.get("wrong_type"):
        first = result.wrong_type[0]
        parts.append(f"{counts['wrong_type']} of the wrong type (first: {first['request_id']!r} row "
                     f"{first['row']}: {first['reason']})")
    return "; ".join(parts) + "."


def record_feedback(
    workspace: Workspace | PathLike | None,
    name: str,
    labels: pd.DataFrame,
    *,
    registry: Registry | None = None,
) -> FeedbackResult:
    """Store the true labels of logged predictions; report every label not stored and why.

    Parameters
    ----------
    workspace : Workspace, str or Path
        The workspace the model was served from.
    name : str
        The model's name.
    labels : DataFrame
        Columns ``request_id`` and ``label``, optionally ``row`` (the row within
        the request, from 0; without it the request must have exactly one row).
    registry : Registry, optional
        An open registry of ``workspace`` to read the versions from.

    Returns
    -------
    FeedbackResult
        The count accepted, and the unknown ids, duplicates and wrong types.

    Raises
    ------
    ModelNotFoundError
        No model ``name`` in the registry.
    ColumnNotFoundError, EmptyDataError
        ``labels`` lacks a column, or has no rows.
    """
    ws = _existing_workspace(workspace)
    labels = _check_frame(labels)
    own = registry is None
    if registry is None:
        from mlpilot.registry import Registry

        registry = Registry(ws)
    try:
        versions = {v.version: v for v in registry.list_versions(name)} if name else {}
    except ModelNotFoundError:
        versions = {}
    finally:
        if own:
            registry.close()
    if not versions:
        raise ModelNotFoundError(f"No model named {name!r} in the registry: labels can only be given to a "
                                 "served model's predictions (see mlpilot models list).")
    checks = {number: _LabelCheck(version) for number, version in versions.items()}
    ids = labels["request_id"]
    rows_given = labels["row"].tolist() if "row" in labels.columns else [None] * len(labels)
    wanted = {str(r) for r in ids if isinstance(r, str | int) and not isinstance(r, bool)}
    found, row_counts = _logged(ws, name, wanted)
    result = FeedbackResult()
    counts = {"unknown_ids": 0, "duplicates": 0, "wrong_type": 0}

    def report(kind: str, item: dict[str, Any]) -> None:
        counts[kind] += 1
        target = getattr(result, kind)
        if len(target) < _REPORTED:
            target.append(item)

    pending: list[tuple[str, int, str]] = []
    seen: set[tuple[str, int]] = set()
    for rid, given_row, label in zip(ids.tolist(), rows_given, labels["label"].tolist(), strict=True):
        if not isinstance(rid, str | int) or isinstance(rid, bool) or not str(rid):
            report("unknown_ids", {"request_id": None if rid is None else str(rid), "row": given_row,
                                   "reason": "the request_id is missing"})
            continue
        rid = str(rid)
        try:
            row = _rows(given_row)
        except ValueError:
            report("wrong_type", {"request_id": rid, "row": given_row, "label": label,
                                  "reason": f"row must be a whole number from 0, got {given_row!r}"})
            continue
        if row is None:
            n = row_counts.get(rid, 0)
            if n > 1:
                report("unknown_ids", {"request_id": rid, "row": None,
                                       "reason": f"the request has {n} rows: say which with 'row'"})
                continue
            row = 0
        key = (rid, row)
        version = found.get(key)
        if version is None:
            reason = ("no logged prediction has this request id" if rid not in row_counts
                      else f"the request has {row_counts[rid]} rows (0 to {row_counts[rid] - 1})")
            report("unknown_ids", {"request_id": rid, "row": row, "reason": reason})
            continue
        check = checks.get(version)
        value, problem = check(label) if check is not None else (label, None)
        if problem is not None:
            report("wrong_type", {"request_id": rid, "row": row, "label": _plain(label),
                                  "reason": f"{problem} (version {version})"})
            continue
        if key in seen:
            report("duplicates", {"request_id": rid, "row": row})
            continue
        seen.add(key)
        pending.append((rid, row, json.dumps(value)))
    now = datetime.now(UTC).isoformat()
    with _connect(ws) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for rid, row, value in pending:
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?, ?)", (name, rid, row, value, now)
                ).rowcount
                if inserted:
                    result.accepted += 1
                else:
                    report("duplicates", {"request_id": rid, "row": row})
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    result.counts = {"accepted": result.accepted, **counts}
    result.message = _message(result)
    return result


def _plain(value: Any) -> Any:
    """A label as JSON can carry it (for the report)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def read_feedback(workspace: Workspace | PathLike | None, name: str) -> pd.DataFrame:
    """The labels recorded for model ``name``: ``request_id``, ``row``, ``label``, ``received_at`` (UTC)."""
    ws = _existing_workspace(workspace)
    columns = ["request_id", "row", "label", "received_at"]
    if not feedback_path(ws).exists():
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    else:
        with _connect(ws) as conn:
            records = conn.execute(
                "SELECT request_id, row, label, received_at FROM feedback WHERE model = ? ORDER BY rowid", (name,)
            ).fetchall()
        frame = pd.DataFrame(
            {"request_id": [r[0] for r in records], "row": pd.array([r[1] for r in records], dtype="int64"),
             "label": pd.Series([json.loads(r[2]) for r in records], dtype=object),
             "received_at": [r[3] for r in records]},
            columns=columns,
        )
        frame["row"] = frame["row"].astype("int64")
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True, format="ISO8601")
    return frame


def labelled_predictions(
    workspace: Workspace | PathLike | None,
    name: str,
    *,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The logged predictions that have a label: `read_prediction_log`'s columns plus ``label`` and ``received_at``.

    The log is read in chunks and only the labelled rows are kept, so a large
    window stays in bounded memory (beyond its labelled rows).
    """
    ws = _existing_workspace(workspace)
    feedback = read_feedback(ws, name)
    wanted = None if columns is None else list(dict.fromkeys(["request_id", "row", *columns]))
    parts = []
    if len(feedback):
        ids = set(feedback["request_id"])
        for chunk in iter_prediction_log(ws, name, since=since, until=until, columns=wanted):
            hits = chunk[chunk["request_id"].isin(ids)]
            if len(hits):
                parts.append(hits.merge(feedback, on=["request_id", "row"], how="inner"))
    if not parts:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in wanted or LOG_COLUMNS})
        return empty.assign(label=pd.Series(dtype=object), received_at=pd.Series(dtype="datetime64[ns, UTC]"))
    frame = pd.concat(parts, ignore_index=True)
    keys = [c for c in ("timestamp", "request_id", "row") if c in frame.columns]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)
