"""The prediction log: non-blocking, batched, bounded, readable after a crash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpilot.exceptions import InvalidParameterError
from mlpilot.monitor import LOG_COLUMNS, PredictionLog, predictions_dir, read_prediction_log
from mlpilot.registry import Workspace


def test_rows_and_frames_are_logged(workspace: Workspace) -> None:
    log = PredictionLog(workspace, flush_interval=0.01).start()
    log.log("churn", 1, [{"x": 1.0, "c": "a"}, {"x": None, "c": "b"}], ["yes", "no"], 3.0,
            probabilities=[{"no": 0.2, "yes": 0.8}, {"no": 0.9, "yes": 0.1}])
    log.log("churn", 2, pd.DataFrame({"x": [np.nan], "c": ["z"]}), [np.int64(1)], 1.5)
    log.log("other", 1, [{"row": 5}], [0.5], 1.0)
    log.close()
    frame = read_prediction_log(workspace, "churn")
    assert list(frame.columns[: len(LOG_COLUMNS)]) == list(LOG_COLUMNS)
    assert frame["prediction"].tolist() == ["yes", "no", 1]
    assert frame["version"].tolist() == [1, 1, 2]
    assert frame["x"].isna().tolist() == [False, True, True]
    assert frame["probabilities"].iloc[0] == {"no": 0.2, "yes": 0.8}
    assert str(frame["timestamp"].dt.tz) == "UTC"
    everything = read_prediction_log(workspace)
    assert len(everything) == 4
    assert everything.loc[everything["model"] == "other", "input.row"].tolist() == [5]  # clashes are prefixed


def test_full_queue_drops_without_blocking(workspace: Workspace) -> None:
    log = PredictionLog(workspace, max_queue=5)  # writer not started: nothing drains the queue
    for i in range(20):
        log.log("m", 1, [{"i": i}], [i], 0.1)
    assert log.dropped == 15 and log.pending == 5
    log.start()
    log.close()
    assert len(read_prediction_log(workspace, "m")) == 5


def test_truncated_lines_are_skipped_and_counted(workspace: Workspace) -> None:
    log = PredictionLog(workspace).start()
    log.log("m", 1, [{"a": 1}], [1], 0.1)
    log.flush()
    segment = next(predictions_dir(workspace, "m").glob("*.jsonl"))
    with open(segment, "a") as fh:
        fh.write('{"timestamp": "2024-01-01T00:00:00+00:00", "mod')  # a crash mid-write
    assert len(read_prediction_log(workspace, "m")) == 1
    log.close()  # the segment is compacted; the cut line is counted, not kept
    assert not list(predictions_dir(workspace, "m").glob("*.jsonl"))
    assert log.corrupt_lines == 1 and len(read_prediction_log(workspace, "m")) == 1


def test_empty_log(workspace: Workspace) -> None:
    frame = read_prediction_log(workspace, "nothing")
    assert frame.empty and list(frame.columns) == list(LOG_COLUMNS)


def test_request_ids_per_request_or_per_row_and_the_source(workspace: Workspace) -> None:
    log = PredictionLog(workspace, flush_interval=0.01).start()
    log.log("m", 1, [{"x": 1}, {"x": 2}], [0, 1], 1.0, request_ids="req-a")
    log.log("m", 1, [{"x": 3}, {"x": 4}], [1, 0], 1.0, request_ids=["msg-1", "msg-2"], source="stream")
    log.log("m", 1, [{"x": 5}], [1], 1.0)
    log.close()
    frame = read_prediction_log(workspace, "m")
    assert frame["request_id"].tolist()[:4] == ["req-a", "req-a", "msg-1", "msg-2"]
    assert frame["row"].tolist()[:4] == [0, 1, 0, 0]  # a per-row id is its own request
    assert frame["source"].tolist() == ["api", "api", "stream", "stream", "api"]
    assert isinstance(frame["request_id"].iloc[4], str) and frame["request_id"].iloc[4] not in {"req-a"}
    with pytest.raises(InvalidParameterError, match="2 ids for 1 predicted rows"):
        log.log("m", 1, [{"x": 1}], [0], 1.0, request_ids=["a", "b"])
