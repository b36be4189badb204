"""Which batches a compiled model leaves to its pipeline: decided from timings taken at load (injected here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime import _dispatch, load_version, score_prepared
from mlpilot.runtime._request import prepare
from mlpilot.runtime._verify import with_fast_path


def _timer(compiled: tuple[float, float], pipeline: tuple[float, float]) -> _dispatch.Timer:
    """Seconds as straight lines ``fixed + per_row * n`` per path, without running or timing anything."""
    lines = {"compiled": compiled, "pipeline": pipeline}

    def timer(path: str, n_rows: int, call: Callable[[], Any]) -> float:
        fixed, per_row = lines[path]
        return fixed + per_row * n_rows

    return timer


@pytest.mark.parametrize(("compiled", "pipeline", "expected"), [
    ((0.5e-3, 10e-6), (4e-3, 2e-6), 508),  # the lines cross at 438 rows; 0.9 of the compiled time from 508
    ((0.5e-3, 10e-6), (4e-3, 9.5e-6), None),  # the pipeline is not 10% faster at 1,000 rows
    ((0.5e-3, 10e-6), (0.1e-3, 1e-6), 64),  # faster already at the smallest size measured
    ((0.5e-3, 1e-6), (4e-3, 2e-6), None),  # the compiled path is faster everywhere
])
def test_the_pipeline_takes_the_batches_it_scores_faster(
    compiled: tuple[float, float], pipeline: tuple[float, float], expected: int | None,
) -> None:
    rows, evidence = _dispatch.pipeline_rows(lambda n: None, lambda n: None, timer=_timer(compiled, pipeline))
    assert rows == expected
    assert "1,000 rows compiled" in evidence and "pipeline" in evidence
    assert ("or more scored by the pipeline" in evidence) == (expected is not None), evidence


def test_the_crossover_is_where_the_lines_meet_within_the_margin() -> None:
    # compiled 1 + 0.01 n, pipeline 5 + 0.001 n (ms): 5 + 0.001 n <= 0.9 (1 + 0.01 n) from n = 512.5
    assert _dispatch.crossover((64, 1000), (1.64, 11.0), (5.064, 6.0)) == 513
    assert _dispatch.crossover((64, 1000), (1.64, 11.0), (5.064, 6.0), margin=1.0) == 445


def test_timing_failures_keep_the_compiled_path() -> None:
    def refuses(n: int) -> None:
        raise ValueError("no")

    rows, evidence = _dispatch.pipeline_rows(lambda n: None, refuses)
    assert rows is None and "timing the pipeline failed: ValueError" in evidence


def test_a_load_records_the_decision_and_large_batches_get_the_pipelines_answers(
    registry: Registry, churn_model: ModelVersion, churn_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = load_version(registry, churn_model, fast_path=False)
    loaded = with_fast_path(plain, timer=_timer((0.5e-3, 10e-6), (4e-3, 2e-6)))
    compiled = loaded.compiled
    assert compiled is not None and compiled.pipeline_rows == 508
    assert "batches of 508 rows or more scored by the pipeline (1,000 rows compiled 10.50 ms" in loaded.dispatch
    assert "event loop" in loaded.dispatch or "worker threads" in loaded.dispatch  # the small-request decision stays

    calls: list[int] = []
    predict = compiled.predict
    monkeypatch.setattr(compiled, "predict", lambda table, n: calls.append(n) or predict(table, n))
    records = churn_frame.drop(columns=["churn"]).head(600).to_dict("records")
    for n in (507, 508, 600):
        payload = {"rows": records[:n]}
        scored = score_prepared(loaded, prepare(loaded, payload, 10_000))
        general = score_prepared(plain, prepare(plain, payload, 10_000))
        if n >= 508:
            assert scored == general  # the pipeline's own answer, exactly
        else:
            assert scored[0] == general[0]
    assert calls == [507]  # the compiled model scored only the batch below the crossover


def test_a_timer_measures_each_path_at_both_sizes(registry: Registry, churn_model: ModelVersion) -> None:
    seen: list[tuple[str, int]] = []

    def timer(path: str, n_rows: int, call: Callable[[], Any]) -> float:
        labels, _proba = call()
        assert len(labels) == n_rows  # the call scores that many rows
        seen.append((path, n_rows))
        return 1.0

    with_fast_path(load_version(registry, churn_model, fast_path=False), timer=timer)
    assert seen == [("compiled", 64), ("compiled", 1000), ("pipeline", 64), ("pipeline", 1000)]
