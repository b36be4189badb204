"""Process-wide knobs, thread-local, in the manner of ``sklearn.get_config``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
