"""Request bodies parse to the standard library's values with or without orjson; answers never fail on NaN."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from mlpilot.exceptions import InvalidParameterError
from mlpilot.runtime import _json
from mlpilot.runtime._inputs import parse_json

ACCEPTED = [
    b'{"rows": [{"a": 1, "b": "x", "c": null, "d": true, "e": -0.0, "f": 1e-7, "g": 0.30000000000000004}]}',
    b'\xef\xbb\xbf{"rows": []}',  # one byte order mark: json accepts it after utf-8-sig
    b'{"a": 123456789012345678901234567890}',  # beyond 64 bits: json keeps the integer exact
    b'{"a": -9223372036854775809, "b": 18446744073709551616}',
    b'{"a": 1e400}',  # json: infinity
    b'{"a": "\\ud800"}',  # a lone surrogate
    b'{"a": 1, "a": 2}',
    b'{"a": "caf\xc3\xa9 \\u00e9"}',
]
REFUSED = [b'{"a": NaN}', b'{"a": Infinity}', b'{"rows": [', b"\xff\xfe", b'\xef\xbb\xbf\xef\xbb\xbf{}', b"[" * 5000]


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types (json's 1 and 1.0 differ here; -0.0 keeps its sign)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


@pytest.fixture(params=["orjson", "json only"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "json only":
        monkeypatch.setattr(_json, "orjson", None)
    elif _json.orjson is None:
        pytest.skip("orjson is not installed")
    return str(request.param)


@pytest.mark.parametrize("body", ACCEPTED)
def test_bodies_parse_to_the_standard_librarys_values(parser: str, body: bytes) -> None:
    assert _same(parse_json(body), json.loads(body.decode("utf-8-sig")))


@pytest.mark.parametrize("body", REFUSED)
def test_refused_bodies_get_the_same_message_either_way(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidParameterError) as fast:
        parse_json(body)
    monkeypatch.setattr(_json, "orjson", None)
    with pytest.raises(InvalidParameterError) as plain:
        parse_json(body)
    assert str(fast.value) == str(plain.value)


def test_answers_encode_nan_and_infinity_as_null(parser: str) -> None:
    answer = {"predictions": [1.5, float("nan")], "probabilities": [{"no": float("inf"), "yes": -0.0}],
              "big": 2**70, "text": "caf\u00e9"}
    assert json.loads(_json.dumps(answer)) == {"predictions": [1.5, None], "probabilities": [{"no": None, "yes": -0.0}],
                                               "big": 2**70, "text": "caf\u00e9"}
