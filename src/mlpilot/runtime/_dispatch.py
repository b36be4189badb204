"""How many rows a compiled model may score on the server's event loop, measured at load.

A request scored on the event loop holds every other request for as long as it takes;
one handed to a worker thread costs a hop (about 50–100 µs) but blocks nothing. A
linear model or a small LightGBM scores 64 rows in tens of microseconds; a 200-tree
forest takes milliseconds. So each compiled model is timed once at load, on the
verification's own sample rows as JSON row dicts (what a request brings): one row
(its one-row path) and `MAX_INLINE_ROWS` rows, the least CPU time of this thread over
a few calls each (so that a busy machine's waits do not count). From
the straight line through the two, the model scores on the event loop the largest
number of rows that fits `INLINE_BUDGET_SECONDS`; larger requests, and every request
of a model whose one row does not fit, go to the thread pool (micro-batched) as large
batches always did. The measurement and the decision are `LoadedModel.dispatch`
(shown by ``GET /v1/models/{name}`` and logged at load).

Large batches are a second decision: the compiled path is plain numpy over the JSON
values, the model's own pipeline converts them to a frame and calls the library,
which may spread a batch over threads. Both are verified to give the same answers,
so a batch goes to whichever is faster: `pipeline_rows` times both, in wall-clock
seconds (a batch waits for the library's threads), at `MAX_INLINE_ROWS` and
`LARGE_ROWS` rows, the least of a few calls each, and from the straight lines
through the two sizes gives the fewest rows from which the pipeline is at least
`PIPELINE_MARGIN` faster (``None``: the compiled path at every size measured;
nothing is assumed beyond `LARGE_ROWS`). Larger requests than measured keep the
decision at `LARGE_ROWS`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any

from mlpilot.runtime._compile import CompiledModel

#: Most rows a compiled model scores on the event loop.
MAX_INLINE_ROWS = 64
#: Longest a request may hold the event loop for scoring (a hop to a thread is about a third of it).
INLINE_BUDGET_SECONDS = 250e-6
_REPEATS = 5
#: Rows of the large batch at which the compiled path is timed against the pipeline.
LARGE_ROWS = 1000
#: The pipeline takes batches only where it needs at most this share of the compiled path's time.
PIPELINE_MARGIN = 0.9
_BATCH_REPEATS = 3

#: ``timer(path, n_rows, call)``: seconds one call of ``call`` takes on ``path``
#: (``"compiled"`` or ``"pipeline"``); tests inject their own.
Timer = Callable[[str, int, Callable[[], Any]], float]


def _best(call: Callable[[], Any], repeats: int = _REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()  # this thread's CPU time: other processes' load does not count
        call()
        best = min(best, time.thread_time() - start)
    return best


def inline_rows(compiled: CompiledModel, rows: list[dict[str, Any]]) -> tuple[int, str]:
    """Rows ``compiled`` may score on the event loop (0: none), and the measurement behind it.

    ``rows`` are validated JSON row dicts the model scores (at least one).
    """
    if not compiled.inline:
        return 0, "scored in worker threads (a member is the library's)"
    many = [rows[i % len(rows)] for i in range(MAX_INLINE_ROWS)]

    def one() -> Any:
        return compiled.predict_one(rows[0]) or compiled.predict([rows[0]], 1)

    try:
        one()  # warm
        t1 = _best(one)
        t_many = _best(lambda: compiled.predict(many, MAX_INLINE_ROWS))
    except Exception as exc:  # the rows were refused: do not guess, use the threads
        return 0, f"scored in worker threads (timing failed: {type(exc).__name__})"
    per_row = max(t_many - t1, 0.0) / (MAX_INLINE_ROWS - 1)
    fits = 0 if t1 > INLINE_BUDGET_SECONDS else (
        MAX_INLINE_ROWS if per_row == 0 else min(MAX_INLINE_ROWS, 1 + int((INLINE_BUDGET_SECONDS - t1) / per_row)))
    evidence = (f"1 row {t1 * 1e6:.0f} µs CPU, {MAX_INLINE_ROWS} rows {t_many * 1e6:.0f} µs: "
                f"{'up to ' + str(fits) + ' rows on the event loop' if fits else 'scored in worker threads'} "
                f"(budget {INLINE_BUDGET_SECONDS * 1e6:.0f} µs)")
    return fits, evidence


def _least_wall(path: str, n_rows: int, call: Callable[[], Any]) -> float:
    """The least wall-clock time of a few calls (after one to warm): what a batch waits for."""
    call()
    best = float("inf")
    for _ in range(_BATCH_REPEATS):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def crossover(sizes: tuple[int, int], compiled: tuple[float, float], pipeline: tuple[float, float],
              margin: float = PIPELINE_MARGIN) -> int | None:
    """The fewest rows, in ``sizes``' range, from which the pipeline needs at most ``margin`` of the compiled time.

    ``compiled`` and ``pipeline`` are the seconds each took at the two ``sizes``; each path's
    time is the straight line through its two. ``None`` when the pipeline is not that much
    faster at the larger size (the compiled path scores every batch).
    """
    small, large = sizes
    if pipeline[1] > margin * compiled[1]:
        return None
    slope_c = (compiled[1] - compiled[0]) / (large - small)
    slope_p = (pipeline[1] - pipeline[0]) / (large - small)
    # pipeline(n) - margin * compiled(n) is a line, at most 0 at ``large``: where does it reach 0?
    at_small = pipeline[0] - margin * compiled[0]
    slope = slope_p - margin * slope_c
    if at_small <= 0 or slope >= 0:  # already at ``small`` (nothing below it was measured)
        return small
    return min(large, max(small, math.ceil(small - at_small / slope)))


def pipeline_rows(compiled: Callable[[int], Any], pipeline: Callable[[int], Any],
                  timer: Timer | None = None) -> tuple[int | None, str]:
    """Rows from which a batch is scored by the pipeline instead of the compiled path, and the measurement.

    ``compiled(n)`` and ``pipeline(n)`` score ``n`` of the verification's sample rows, as a
    request's values reach each path (the compiled model the JSON values by column, the
    pipeline their conversion to a frame).
    """
    timer = timer or _least_wall
    sizes = (MAX_INLINE_ROWS, LARGE_ROWS)
    try:
        c = [timer("compiled", n, functools.partial(compiled, n)) for n in sizes]
        p = [timer("pipeline", n, functools.partial(pipeline, n)) for n in sizes]
    except Exception as exc:  # the rows were refused: keep the compiled path, which verified
        return None, f"batches scored compiled (timing the pipeline failed: {type(exc).__name__})"
    rows = crossover(sizes, (c[0], c[1]), (p[0], p[1]))
    measured = (f"{LARGE_ROWS:,} rows compiled {c[1] * 1e3:.2f} ms, pipeline {p[1] * 1e3:.2f} ms; "
                f"{MAX_INLINE_ROWS} rows {c[0] * 1e3:.2f} / {p[0] * 1e3:.2f} ms wall")
    if rows is None:
        return None, f"batches scored compiled ({measured})"
    return rows, f"batches of {rows:,} rows or more scored by the pipeline ({measured})"
