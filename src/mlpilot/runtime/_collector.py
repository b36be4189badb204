"""The cyclic garbage collector tuned for a process that scores: `mlpilot serve`, `mlpilot stream`.

A scoring process holds a few hundred thousand long-lived objects (the loaded
models, scikit-learn, CatBoost, pandas, FastAPI) and makes many short-lived
ones per request (row dicts, columns, answers) that their reference counts
free. At CPython's default thresholds (700 allocations) a 1,000-row request
sets off several young collections, and every so often a full one walks all
the long-lived objects: measured on the demo's champion behind `mlpilot serve`,
about 590 collections per 150 requests of 1,000 rows, 1.7 ms of each
request's CPU (a full collection 150-170 ms), and none with the tuning here.

- `freeze_loaded` moves everything alive now out of the collector's sight
  (`gc.freeze`) once a model is loaded; it first gives back what an earlier
  call froze and collects (`gc.unfreeze`, `gc.collect`), so the objects of a
  replaced model that only a cycle kept are still freed, at the next load.
- `scoring_collector` raises the young generation's threshold to
  `YOUNG_THRESHOLD` while the process scores: the rare cycle (an exception's
  traceback) is still collected.

Both are for a process that is the scorer's alone: the CLI's commands use
them; `create_app` and `StreamConsumer.run` only when asked, so a test suite
or a notebook that embeds them keeps its collector as it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: The young generation's collection threshold in `scoring_collector` (allocations less deallocations).
YOUNG_THRESHOLD = 50_000


def freeze_loaded() -> None:
    """Collect, then move every object alive now (the loaded models, the libraries) out of the collector's sight."""
    gc.unfreeze()  # what an earlier load froze may be garbage now (a replaced model's cycles)
    gc.collect()
    gc.freeze()


@contextmanager
def scoring_collector() -> Iterator[None]:
    """Inside: young collections every `YOUNG_THRESHOLD` allocations; after: the thresholds restored, nothing frozen."""
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


__all__ = ["YOUNG_THRESHOLD", "freeze_loaded", "scoring_collector"]
