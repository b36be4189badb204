"""Micro-batching: concurrent small requests to one model share one pipeline call.

A scikit-learn pipeline spends most of a one-row prediction on per-call
overhead (column selection, input checks), so 32 rows cost little more than
one. Requests are queued; each of a few workers takes the oldest request and
every request for the same model queued behind it, up to ``max_rows``, and
scores them together in a worker thread. Nothing waits for a batch to fill: a
request that finds the queue empty and a worker slot free is scored at once by
its own task (no queue, no wake-up of a worker), and batches grow only while
the slots are busy, which is when they pay off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from starlette.concurrency import run_in_threadpool

from mlpilot.runtime import LoadedModel, score, score_compiled
from mlpilot.runtime._inputs import convert_columns

logger = logging.getLogger(__name__)

Result = tuple[list[Any], list[list[float]] | None]


@dataclass
class _Item:
    loaded: LoadedModel
    data: dict[str, Any]
    n_rows: int
    future: asyncio.Future[Result]
    #: ``data`` holds the request's validated JSON values (for the compiled model), not converted arrays.
    json_values: bool = False


def _concat(values: list[Any]) -> Any:
    if len(values) == 1:
        return values[0]
    if all(isinstance(v, np.ndarray) for v in values):
        kinds = {v.dtype.kind for v in values}
        if len(kinds) == 1 or kinds <= {"i", "u", "f"}:
            return np.concatenate(values)
    return np.concatenate([np.asarray(v, dtype=object) for v in values])


def _scored(loaded: LoadedModel, items: list[_Item], n: int) -> Result:
    names = list(items[0].data)
    if items[0].json_values:  # the compiled model reads the JSON values; the pipeline their conversion
        columns = {name: [v for item in items for v in item.data[name]] for name in names}
        scored = score_compiled(loaded, columns, n)
        if scored is not None:
            return scored
        data = convert_columns(columns, loaded.schema)[0]
    else:
        data = {name: _concat([item.data[name] for item in items]) for name in names}
    return score(loaded, pd.DataFrame(data, index=pd.RangeIndex(n), copy=False))


def score_together(loaded: LoadedModel, items: list[_Item]) -> list[Result]:
    """Score several requests' columns in one call and split the answers back."""
    n = sum(item.n_rows for item in items)
    predictions, probabilities = _scored(loaded, items, n)
    out: list[Result] = []
    start = 0
    for item in items:
        stop = start + item.n_rows
        out.append((predictions[start:stop], probabilities[start:stop] if probabilities is not None else None))
        start = stop
    return out


class MicroBatcher:
    """Queue of small requests, scored in per-model batches by ``workers`` tasks.

    Parameters
    ----------
    max_rows : int
        Rows per batch at most.
    workers : int
        Batches scored at the same time (each in a worker thread).
    """

    def __init__(self, *, max_rows: int = 1024, workers: int = 2) -> None:
        self.max_rows = max_rows
        self.workers = workers
        self.batches = 0
        self.batched_requests = 0
        self._pending: deque[_Item] = deque()
        self._busy = 0  # batches being scored, by workers or by requests themselves
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def submit(
        self, loaded: LoadedModel, data: dict[str, Any], n_rows: int, *, json_values: bool = False
    ) -> Result:
        """Score one request's columns; returns (predictions, probabilities).

        ``data`` maps each feature to its converted array, or with
        ``json_values`` to its validated JSON values (lists), which the
        loaded model's compiled form scores.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._start(loop)
        assert self._wakeup is not None
        future: asyncio.Future[Result] = loop.create_future()
        item = _Item(loaded, data, n_rows, future, json_values)
        if not self._pending and self._busy < self.workers:
            await self._score([item])
        else:
            self._pending.append(item)
            self._wakeup.set()
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        # A new event loop (a restarted server, a test client) gets fresh workers.
        self._loop = loop
        self._wakeup = asyncio.Event()
        self._pending = deque(item for item in self._pending if not item.future.done())
        self._busy = 0
        self._tasks = [loop.create_task(self._work(), name=f"mlpilot-batcher-{i}") for i in range(self.workers)]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await task
        self._loop = None

    def _take(self) -> list[_Item]:
        first = self._pending.popleft()
        batch, rows, skipped = [first], first.n_rows, []
        while self._pending and rows < self.max_rows:
            item = self._pending.popleft()
            if (item.loaded is first.loaded and item.json_values == first.json_values
                    and rows + item.n_rows <= self.max_rows):
                batch.append(item)
                rows += item.n_rows
            else:
                skipped.append(item)
        self._pending.extendleft(reversed(skipped))
        return [item for item in batch if not item.future.done()]

    async def _work(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        while True:
            while not self._pending or self._busy >= self.workers:
                wakeup.clear()
                await wakeup.wait()
            batch = self._take()
            if batch:
                await self._score(batch)

    async def _score(self, batch: list[_Item]) -> None:
        self._busy += 1
        try:
            try:
                results = await run_in_threadpool(score_together, batch[0].loaded, batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0].future, exc=exc)
                    return
                # One request's values broke the batch: score each alone so only it fails.
                for item in batch:
                    try:
                        _settle(item.future, (await run_in_threadpool(score_together, item.loaded, [item]))[0])
                    except Exception as single:
                        _settle(item.future, exc=single)
                return
            self.batches += 1
            self.batched_requests += len(batch)
            for item, result in zip(batch, results, strict=True):
                _settle(item.future, result)
        finally:
            self._busy -= 1
            if self._pending and self._wakeup is not None:
                self._wakeup.set()


def _settle(future: asyncio.Future[Result], result: Result | None = None, exc: BaseException | None = None) -> None:
    if future.done():  # the client went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert result is not None
        future.set_result(result)
