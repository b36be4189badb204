"""`prepare_body` skips the 19-digit scan for clean bodies and answers exactly as parse-then-prepare does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlpilot.exceptions import MlpilotError
from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime import LoadedModel, load_version, predict_body, predict_payload, prepare_body
from mlpilot.runtime import _request as request_module
from mlpilot.runtime._inputs import parse_json


@pytest.fixture
def loaded(registry: Registry, churn_model: ModelVersion) -> LoadedModel:
    model = load_version(registry, churn_model)
    assert model.compiled is not None and model.validator is not None  # the path under test
    return model


def _body(rows: list[dict[str, Any]], **changes: Any) -> bytes:
    """``{"rows": rows}`` as JSON, the first row's fields replaced by ``changes`` (raw JSON text)."""
    first = {**rows[0], **{k: f"@{k}@" for k in changes}}
    text = json.dumps({"rows": [first, *rows[1:]]})
    for key, raw in changes.items():
        text = text.replace(f'"@{key}@"', raw)
    return text.encode()


def _answer(call: Any) -> tuple[str, Any]:
    try:
        answer, prepared, _ = call()
    except MlpilotError as exc:
        return type(exc).__name__, str(exc)
    inputs = json.dumps(prepared.inputs, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
    return "ok", (answer, prepared.n_rows, [str(w) for w in prepared.warnings], inputs)


BEYOND_64_BITS = [
    {"total_day_minutes": "18446744073709551616"},  # 2**64: orjson's nearest float, json's exact integer
    {"total_day_minutes": "-9223372036854775809"},  # below -2**63
    {"account_length": "123456789012345678901234567890"},
    {"state": "18446744073709551616"},  # a number where a text belongs
    {"total_day_minutes": "1234567890123456789"},  # 19 digits, within 64 bits: orjson keeps it exact too
    {"total_day_minutes": "12345678901234567890.5"},  # a float with 20 digits
]


@pytest.mark.parametrize("changes", [{}, {"total_day_minutes": "1e300"}, {"state": "12"}, *BEYOND_64_BITS],
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "clean")
def test_the_answer_or_error_is_the_one_of_parsing_then_preparing(
    loaded: LoadedModel, rows: list[dict[str, Any]], changes: dict[str, str],
) -> None:
    body = _body(rows, **changes)
    by_body = _answer(lambda: predict_body(loaded, body, 1000))
    assert by_body == _answer(lambda: predict_payload(loaded, parse_json(body), 1000))
    if not changes:
        assert by_body[0] == "ok" and len(by_body[1][0]["predictions"]) == len(rows)


def test_a_clean_body_is_not_scanned_and_a_refused_one_is(
    loaded: LoadedModel, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    scanned: list[bytes] = []

    def scan(body: bytes) -> bool:
        scanned.append(body)
        return b"18446744073709551616" in body

    monkeypatch.setattr(request_module, "has_long_number", scan)
    monkeypatch.setattr("mlpilot.runtime._json.has_long_number", scan)
    clean = prepare_body(loaded, _body(rows), 1000)
    assert clean.n_rows == len(rows) and not clean.warnings and scanned == []

    huge = _body(rows, total_day_minutes="18446744073709551616")
    prepared = prepare_body(loaded, huge, 1000)
    assert scanned and set(scanned) == {huge}  # not clean: scanned, and parsed again exactly (json keeps the int)
    value = prepared.rows[0]["total_day_minutes"]
    assert value == 2**64 and type(value) is int
    assert any("total_day_minutes" in str(w) for w in prepared.warnings)
