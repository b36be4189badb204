"""Process-wide knobs, thread-local, in the manner of ``sklearn.get_config``."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from mlpilot.exceptions import InvalidParameterError

_DEFAULTS: dict[str, Any] = {
    # Show rich progress bars for long work (the CLI turns them on).
    "show_progress": False,
    # Fraction of total RAM a training job may use before candidates are skipped.
    "memory_fraction": 0.7,
}
_local = threading.local()


def _state() -> dict[str, Any]:
    if not hasattr(_local, "config"):
        _local.config = dict(_DEFAULTS)
    return _local.config  # type: ignore[no-any-return]


def get_config() -> dict[str, Any]:
    """Return a copy of the current configuration."""
    return dict(_state())


def set_config(**kwargs: Any) -> None:
    """Set configuration values for the current thread."""
    unknown = set(kwargs) - set(_DEFAULTS)
    if unknown:
        from mlpilot.exceptions import InvalidParameterError

        raise InvalidParameterError(
            f"Unknown config key(s) {sorted(unknown)}; accepted: {sorted(_DEFAULTS)}."
        )
    _state().update(kwargs)


@contextmanager
def config_context(**kwargs: Any) -> Iterator[None]:
    """Temporarily change configuration values."""
    old = get_config()
    set_config(**kwargs)
    try:
        yield
    finally:
        _state().clear()
        _state().update(old)


#: Units of a duration, in seconds (``"90s"``, ``"2m"``, ``"1.5h"``, ``"30d"``, ``"2w"``, ``"1h30m"``).
DURATION_UNITS = {
    "ms": 0.001, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0, "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.I)
_DURATION = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[a-z]*\s*)+$", re.I)


def parse_duration(value: float | int | str, *, what: str = "The duration", bare: bool = True) -> float:
    """Seconds from a duration: ``60``, ``"90s"``, ``"2m"``, ``"1.5h"``, ``"30d"``, ``"2w"`` or ``"1h30m"``.

    The one parser of durations (time budgets, ``--every``, ``--keep``,
    ``--window``, ``--since``). A number without a unit counts as seconds
    where ``bare`` (time budgets) and is refused otherwise; the error starts
    with ``what``.

    Examples
    --------
    >>> parse_duration("2m"), parse_duration(30), parse_duration("1h30m")
    (120.0, 30.0, 5400.0)
    """
    forms = "'30d', '2w', '1h30m', '90s', '2m', '1h'"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not bare:
            raise InvalidParameterError(f"{what} must be a positive duration with a unit, such as {forms}. "
                                        f"Got {value!r}.")
        seconds = float(value)
    else:
        text = str(value).strip()
        parts = _PART.findall(text) if _DURATION.match(text) else []
        if not parts or any(unit.lower() not in DURATION_UNITS and unit for _, unit in parts) or (
                len(parts) > 1 and any(not unit for _, unit in parts)):
            seconds_too = "a number of seconds or " if bare else ""
            raise InvalidParameterError(f"{what} must be {seconds_too}a positive duration such as {forms}. "
                                        f"Got {value!r}.")
        if not parts[0][1] and not bare:
            raise InvalidParameterError(f"{what} must be a positive duration with a unit, such as {forms}. "
                                        f"Got {value!r}.")
        seconds = sum(float(number) * DURATION_UNITS[unit.lower() or "s"] for number, unit in parts)
    if not seconds > 0:
        raise InvalidParameterError(f"{what} must be positive: a duration such as {forms}. Got {value!r}.")
    return seconds


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a file created, renamed or removed in it) durable; a no-op where unsupported."""
    with contextlib.suppress(OSError):  # not every filesystem (or OS) lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_Settings = TypeVar("_Settings")


def build_settings(cls: Callable[..., _Settings], values: dict[str, Any], what: str) -> _Settings:
    """``cls(**values)`` for a pydantic settings model, its validation errors as one `InvalidParameterError`.

    The message names every bad field with what was given: ``"Invalid {what}: field: message (got value); ..."``.
    """
    from pydantic import (
        ValidationError,  # here, not at import: the CLI's start-up reads this module
    )

    try:
        return cls(**values)
    except InvalidParameterError:
        raise
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
        )
        raise InvalidParameterError(f"Invalid {what}: {problems}.") from None
