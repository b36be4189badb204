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
from mlpilot.stream import _scoring as scoring
from mlpilot.stream._scoring import (
    Limits,
    Rows,
    ScoredBatch,
    _fragments,
    _shape,
    decode,
    score_messages,
)
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
    prepared = SimpleNamespace(warnings=warnings, inputs=[rows.values[i] for i in todo], data=None, columns=None,
                               by_column=None)
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
    prepared = SimpleNamespace(warnings=[], inputs=[rows.values[i] for i in todo], data=None, columns=None,
                               by_column=None)
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


def _messages(values: list[bytes | None]) -> list[Message]:
    return [Message(f"k{i}", v, f"events:0:{i}", None) for i, v in enumerate(values)]


def _slow_decode(messages: list[Message], limits: Limits, monkeypatch: pytest.MonkeyPatch) -> tuple[Rows, ScoredBatch]:
    """`decode` message by message (its one-pass path turned off)."""
    with monkeypatch.context() as patch:
        patch.setattr(scoring, "_decode_plain", lambda *_: None)
        batch = ScoredBatch()
        return decode(messages, limits, batch), batch


def test_a_clean_batch_decoded_in_one_pass_is_the_message_by_message_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [orjson.dumps({"x": i, "s": f"v{i}", "f": i / 3, "n": None}) for i in range(50)]
    values[3] = b'  {"x": 1e300, "s": "\\u00e9", "f": -0.0, "n": null}\n'  # spaces, escapes, a large float
    messages = _messages(values)
    batch = ScoredBatch()
    rows = decode(messages, Limits(), batch)
    assert scoring._decode_plain(messages, Limits(), orjson.loads) is not None  # the one-pass path took it
    slow, slow_batch = _slow_decode(messages, Limits(), monkeypatch)
    assert (rows.values, rows.messages, rows.indexes) == (slow.values, slow.messages, slow.indexes)
    assert not batch.dead_letters and not slow_batch.dead_letters


@pytest.mark.parametrize("bad", [
    b"{not json", None, b'{"x": "' + b"y" * 200 + b'"}', b"[1, 2]", b'"text"', b'{"rows": [{"x": 7}, {"x": 8}]}',
    b'{"rows": []}', b"\xef\xbb\xbf" + b'{"x": 5}',  # a BOM: orjson refuses it, the API's parser reads it
])
def test_one_bad_message_among_good_ones_is_handled_alone_and_the_good_ones_are_kept(
    bad: bytes | None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    values: list[bytes | None] = [orjson.dumps({"x": i}) for i in range(6)]
    values[2] = bad
    messages = _messages(values)
    limits = Limits(max_message_bytes=100)
    batch = ScoredBatch()
    rows = decode(messages, limits, batch)
    slow, slow_batch = _slow_decode(messages, limits, monkeypatch)
    assert (rows.values, rows.messages, rows.indexes) == (slow.values, slow.messages, slow.indexes)
    assert batch.dead_letters == slow_batch.dead_letters and batch.reasons == slow_batch.reasons
    good = [m for m in rows.messages if m.key != "k2"]
    assert [m.key for m in good] == ["k0", "k1", "k3", "k4", "k5"]
    assert [v for v, m in zip(rows.values, rows.messages, strict=True) if m.key != "k2"] == [{"x": i} for i in
                                                                                              (0, 1, 3, 4, 5)]
    kept = [(v, i) for v, m, i in zip(rows.values, rows.messages, rows.indexes, strict=True) if m.key == "k2"]
    if kept:  # a message that is rows after all: its rows, numbered when it held a list of them
        assert kept in ([({"x": 7}, 0), ({"x": 8}, 1)], [({"x": 5}, None)])
        assert not batch.dead_letters
    else:
        [dead] = batch.dead_letters
        record = orjson.loads(dead.value)
        assert dead.key == record["key"] == "k2" and record["request_id"] == "events:0:2"
        assert record["payload"] == ("" if bad is None else bad.decode()[:1024] + ("..." if len(bad) > 100 else ""))


def test_a_clean_batch_logs_the_columns_validation_built(stream_workspace: Any, churn_rows: list[dict[str, Any]],
                                                          tmp_path: Any) -> None:
    from mlpilot.monitor import PredictionLog, read_prediction_log
    from mlpilot.registry import Registry, Workspace
    from mlpilot.runtime import ModelCache

    loaded = ModelCache(Registry(stream_workspace)).get("churn")
    rows = churn_rows[:40]
    scored = score_messages(loaded, _messages([orjson.dumps(r) for r in rows]), Limits())
    [entry] = scored.log_entries
    assert len(scored.outputs) == 40
    assert isinstance(entry.inputs, dict)  # a clean batch: the columns validation built, not the row dicts
    assert entry.inputs == {name: [r[name] for r in rows] for name in entry.inputs}
    log = PredictionLog(Workspace.open(tmp_path)).start()
    log.log("churn", 1, entry.inputs, entry.predictions, 1.0, probabilities=entry.probabilities,
            request_ids=entry.request_ids, source="stream")
    log.close()
    frame = read_prediction_log(Workspace.open(tmp_path), "churn")
    frame = frame.iloc[frame["request_id"].str.rsplit(":", n=1).str[1].astype(int).argsort()]
    assert frame["request_id"].tolist() == [f"events:0:{i}" for i in range(40)]
    assert frame[list(rows[0])].to_dict(orient="records") == rows
