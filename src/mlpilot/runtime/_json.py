"""JSON for request bodies and answers: orjson where it gives the standard library's values, json otherwise.

orjson parses a 1,000-row body in about a third of the time ``json`` takes and
encodes an answer in a fifth. Every body orjson refuses goes to ``json``
(`mlpilot.runtime._inputs.parse_json`), which accepts what it always accepted
(a byte order mark, a number too large for a double, a lone surrogate) and
words every error as before; so does a body with a run of 19 digits, where
orjson would make a float of an integer beyond 64 bits that ``json`` keeps
exact. Answers encode a non-finite float as ``null`` either way.
"""

from __future__ import annotations

import json
import math
from typing import Any

try:
    import orjson
except ImportError:  # a base dependency; an environment without it still serves, more slowly
    orjson = None  # type: ignore[assignment]

#: What `loads` returns when the standard library must parse the body.
NOT_PARSED: Any = object()

_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19  # 2**63 has 19 digits: shorter integers orjson keeps exact


def loads(body: bytes, *, exact: bool = True) -> Any:
    """``body`` parsed by orjson, or `NOT_PARSED` where only ``json`` gives the values and messages.

    With ``exact=False`` the scan for runs of 19 digits (`has_long_number`, about a third of orjson's own
    time on a 1,000-row body) is skipped: an integer beyond 64 bits then comes back as orjson's nearest
    float instead of `NOT_PARSED`, so the caller must tell such a body apart later (see
    `mlpilot.runtime._request.prepare_body`).
    """
    if orjson is None or (exact and has_long_number(body)):
        return NOT_PARSED
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return NOT_PARSED


def has_long_number(body: bytes) -> bool:
    """Whether ``body`` has a run of 19 digits, where orjson may give a float for an integer ``json`` keeps exact."""
    return _LONG_NUMBER in body.translate(_DIGITS)


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity (in lists and dicts, at any depth) replaced by ``None``."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON bytes; NaN and infinity become ``null`` (JSON has neither)."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # an integer beyond 64 bits, a key that is not a string: what json encodes
            pass
    return _ENCODER.encode(_finite(value)).encode()


__all__ = ["NOT_PARSED", "dumps", "has_long_number", "loads"]
