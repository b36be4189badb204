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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlpilot.runtime._compile import CompiledModel

#: Most rows a compiled model scores on the event loop.
MAX_INLINE_ROWS = 64
#: Longest a request may hold the event loop for scoring (a hop to a thread is about a third of it).
INLINE_BUDGET_SECONDS = 250e-6
_REPEATS = 5


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
