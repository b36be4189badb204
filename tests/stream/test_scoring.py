"""The batch's encodings without a broker: outputs built by column are the per-row encoding byte for byte,
and the prediction log's fast (orjson) line reads back as its standard-library line does."""

from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from mlpilot.data import Problem
from mlpilot.monitor import _prediction_log as prediction_log
from mlpilot.runtime._quality import row_flags
from mlpilot.stream._scoring import Rows, ScoredBatch, _fragments, _shape
from mlpilot.stream._transport import Message, Record


def _reference(loaded: Any, rows: Rows, todo: list[int], prepared: Any, predictions: list[Any],
               probabilities: list[list[float]] | None) -> list[Record]:
    """One dict per row and one orjson.dumps of it: what the outputs were before they were built by column."""
    flags = row_flags(prepared.warnings, len(todo)) if prepared.warnings else None
    out = []
    for j, i in enumerate(todo):
        message, index = rows.messages[i], rows.indexes[i]
        record: dict[str, Any] = {
            "key": message.key,
            "request_id": message.request_id if index is None else f"{message.request_id}:{index}",
            "model": loaded.name, "version": loaded.version.version, "prediction": predictions[j],
        }
        if index is not None:
            record["row"] = index
        if probabilities is not None:
            record.update(zip([f"probability_{c}" for c in loaded.classes], probabilities[j], strict=True))
        if loaded.threshold is not None:
            record["threshold"] = loaded.threshold
        record["warnings"] = flags[j] if flags is not None else ""
        out.append(Record(message.key, orjson.dumps(record, default=str, option=orjson.OPT_SERIALIZE_NUMPY)))
    return out


def _model(classes: tuple[Any, ...] | None, threshold: float | None = None, name: str = "churn") -> Any:
    return SimpleNamespace(name=name, version=SimpleNamespace(version=3), classes=classes, threshold=threshold)


def _rows(keys: list[str | None], indexes: list[int | None]) -> Rows:
    rows = Rows()
    for n, (key, index) in enumerate(zip(keys, indexes, strict=True)):
        rows.values.append({"x": n})
        rows.messages.append(Message(key, b"{}", f"events:0:{n}", None))
        rows.indexes.append(index)
    return rows


KEYS = ["plain", None, 'a "quoted", key', "100%", "ünï,cödé", "back\\slash", "", "a],[b"]


@pytest.mark.parametrize(("classes", "predictions", "threshold"), [
    (("no", "yes"), ["no", "yes", "yes", "no", "no", "yes", "no", "yes"], None),
    (("no", "yes"), ["no", "yes", "yes", "no", "no", "yes", "no", "yes"], 0.35),
    (("a,b", 'say "hi"', "50%"), ["a,b", 'say "hi"', "50%", "a,b", "50%", "a,b", 'say "hi"', "a,b"], None),
    ((0, 1), [0, 1, 1, 0, 0, 1, 1, 0], None),
    (None, [1.5, -0.0, 2e-7, 1e300, float("nan"), 3, 0.1, -7.25], None),  # a regressor: no probabilities
])
@pytest.mark.parametrize("indexes", [[None] * 8, [None, 0, 1, None, 0, 1, 2, None]])
@pytest.mark.parametrize("warned", [False, True])
def test_outputs_built_by_column_are_the_per_row_encoding(
    classes: tuple[Any, ...] | None, predictions: list[Any], threshold: float | None, indexes: list[int | None],
    warned: bool,
) -> None:
    rows = _rows(KEYS, indexes)
    todo = [0, 1, 2, 3, 4, 5, 6, 7]
    probabilities = None
    if classes is not None:
        probabilities = [[round(1 / (i + 2), 6)] + [round(1 - 1 / (i + 2), 6)] * (len(classes) - 1)
                         for i in range(len(todo))]
    warnings = [Problem("x,y", "out_of_range", "...", rows=(1, 4), severity="warning"),
                Problem("z", "unseen_category", "...", rows=(4,), severity="warning")] if warned else []
    prepared = SimpleNamespace(warnings=warnings, inputs=[rows.values[i] for i in todo])
    loaded = _model(classes, threshold)
    batch = ScoredBatch()
    _shape(loaded, rows, todo, prepared, predictions, probabilities, batch)  # type: ignore[arg-type]
    expected = _reference(loaded, rows, todo, prepared, predictions, probabilities)
    assert batch.outputs == expected
    assert all(type(r) is Record for r in batch.outputs)
    [entry] = batch.log_entries
    assert entry.request_ids == [json.loads(r.value)["request_id"] for r in expected]
    if classes is not None:
        assert entry.probabilities == [dict(zip(map(str, classes), p, strict=True)) for p in probabilities or []]


def test_a_subset_of_rows_and_a_model_name_with_a_percent_sign() -> None:
    rows = _rows(KEYS, [None] * 8)
    todo = [6, 2, 5]  # the rows left after dead letters, in order
    prepared = SimpleNamespace(warnings=[], inputs=[rows.values[i] for i in todo])
    loaded = _model(("no", "yes"), name="churn%d")
    batch = ScoredBatch()
    _shape(loaded, rows, todo, prepared, ["a", "b", "c"], [[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]], batch)  # type: ignore[arg-type]
    assert batch.outputs == _reference(loaded, rows, todo, prepared, ["a", "b", "c"], [[0.1, 0.9], [0.2, 0.8],
                                                                                        [0.3, 0.7]])


def test_fragments_fall_back_to_one_value_at_a_time_when_a_comma_is_in_one() -> None:
    def dumps(v: Any) -> bytes:
        return orjson.dumps(v)

    assert _fragments([1.5, None, 2, "x"], dumps) == [b"1.5", b"null", b"2", b'"x"']
    assert _fragments(["a,b", "c"], dumps) == [b'"a,b"', b'"c"']
    assert _fragments([[1, 2], [3]], dumps) == [b"[1,2]", b"[3]"]
    assert _fragments([], dumps) == []


def _entry(inputs: Any, outputs: list[Any], probabilities: Any = None, warnings: Any = None,
           request_ids: Any = "req-1") -> Any:
    return prediction_log._Entry("m", 2, time.time(), inputs, outputs, probabilities, 1.25, warnings, request_ids,
                                 "stream")


@pytest.mark.parametrize("entry", [
    _entry([{"x": 1.0, "s": "a"}, {"x": float("nan"), "s": None}, {"x": math.inf, "s": "b"}], ["y", "n", "y"],
           [{"n": 0.1, "y": 0.9}] * 3, ["", "out_of_range:x", ""], ["r0", "r1", "r2"]),
    _entry([{"x": 1}, {"x": 2, "extra": True}], [0.5, float("nan")]),  # rows with different fields
    _entry({"x": np.array([1.0, np.nan]), "n": np.array([1, 2]), "s": ["a", None]}, [np.float64(1.5), 2]),
    _entry([{"x": 2**70}], ["big"]),  # beyond orjson's integers: the json path
    _entry([{"x": "\ud800"}], ["surrogate"]),  # not UTF-8: the json path
])
def test_the_fast_log_line_reads_back_as_the_json_line(entry: Any) -> None:
    log = prediction_log.PredictionLog.__new__(prediction_log.PredictionLog)
    fast = log._line(entry)
    slow = json.dumps(log._record(entry, prediction_log._column), default=prediction_log._json_default,
                      allow_nan=False) + "\n"
    assert fast.endswith("\n") and fast.count("\n") == 1
    fast_record, slow_record = json.loads(fast), json.loads(slow)
    if not isinstance(entry.request_ids, str):  # a new random id for the line
        assert len(fast_record.pop("request_id")) == len(slow_record.pop("request_id")) == 32
    assert fast_record == slow_record
