"""Handing predictions to the prediction log in bursts rather than one request at a time.

`PredictionLog.log` puts each record on a queue that its writer thread waits
on, so every call wakes that thread, which then competes with the event loop
for the GIL. For a one-row request served in a few hundred microseconds the
wake-up is a noticeable share of the latency. `DeferredLog` keeps the records
of the event loop's requests for a few milliseconds and hands them over
together: the writer wakes once per burst, and every record still reaches
the log (`flush` and `close` hand over what is left).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class DeferredLog:
    """The prediction log's ``log`` / ``flush`` / ``close`` with a short hand-over delay.

    Parameters
    ----------
    log : PredictionLog
        Where the records go.
    delay : float
        Seconds a record may wait before it is handed over.
    """

    def __init__(self, log: Any, *, delay: float = 0.02) -> None:
        self.target = log
        self.delay = delay
        self._waiting: deque[tuple[tuple[Any, ...], dict[str, Any]]] = deque()
        self._scheduled = False

    def log(self, *args: Any, **kwargs: Any) -> None:
        """Record one request (same arguments as `PredictionLog.log`); never blocks."""
        self._waiting.append((args, kwargs))
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop (a worker thread): no one to defer to
            self.hand_over()
            return
        self._scheduled = True
        loop.call_later(self.delay, self.hand_over)

    def hand_over(self) -> None:
        """Pass every waiting record to the log now."""
        self._scheduled = False
        while True:
            try:
                args, kwargs = self._waiting.popleft()
            except IndexError:
                return
            self.target.log(*args, **kwargs)

    def start(self) -> DeferredLog:
        self.target.start()
        return self

    def flush(self, timeout: float = 10.0) -> None:
        """Hand over what waits here, then wait until the log has written it."""
        self.hand_over()
        flush = getattr(self.target, "flush", None)
        if flush is not None:
            flush(timeout)

    def close(self) -> None:
        self.hand_over()
        self.target.close()

    @property
    def pending(self) -> int:
        return int(self.target.pending) + len(self._waiting)

    @property
    def dropped(self) -> int:
        return int(self.target.dropped)

    @property
    def written(self) -> int:
        return int(self.target.written)

    @property
    def errors(self) -> int:
        return int(self.target.errors)
