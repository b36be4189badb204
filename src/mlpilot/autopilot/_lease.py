"""The watcher's lease on a model: taken for a step, renewed by a heartbeat while it trains."""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlpilot.registry import Registry


def default_owner() -> str:
    """``host:pid``: tells watchers apart, also across machines sharing a PostgreSQL registry."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """Renew ``owner``'s lease on ``name`` every ``ttl / 3`` seconds until the block ends.

    A watcher killed mid-training stops renewing; its lease expires after
    ``ttl`` and the next watcher may take over.
    """

    def __init__(self, registry: Registry, name: str, owner: str, ttl: float) -> None:
        self.registry, self.name, self.owner, self.ttl = registry, name, owner, ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mlpilot-watch-lease-{name}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.registry.acquire_lease(self.name, self.owner, self.ttl, now=datetime.now(UTC))
            except Exception:  # a database hiccup: the next beat tries again
                continue

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
