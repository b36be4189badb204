"""Micro-batching: concurrent requests share one pipeline call and get their own answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlpilot.exceptions import DataError
from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime import load_version
from mlpilot.runtime._inputs import columns_from_payload, convert_columns
from mlpilot.serve._batching import MicroBatcher


def _data(loaded: Any, rows: list[dict[str, Any]], json_values: bool = False) -> dict[str, Any]:
    columns, _n, _rows = columns_from_payload({"rows": rows}, 1000)
    return columns if json_values else convert_columns(columns, loaded.schema)[0]


@pytest.mark.parametrize("json_values", [False, True], ids=["pipeline", "compiled"])
def test_queued_requests_are_scored_together(
    registry: Registry, churn_model: ModelVersion, churn_frame: pd.DataFrame, churn_pipeline: Pipeline,
    json_values: bool,
) -> None:
    loaded = load_version(registry, churn_model)
    features = churn_frame.drop(columns=["churn"]).head(30)
    records = json.loads(features.to_json(orient="records"))
    chunks = [records[i : i + 3] for i in range(0, 30, 3)]
    batcher = MicroBatcher(max_rows=100, workers=1)

    async def run() -> list[Any]:
        try:
            return await asyncio.gather(*(batcher.submit(loaded, _data(loaded, c, json_values), len(c),
                                                         json_values=json_values) for c in chunks))
        finally:
            await batcher.stop()

    results = asyncio.run(run())
    # the first request finds the queue empty and is scored at once; the nine behind it share one batch
    assert batcher.batches == 2 and batcher.batched_requests == 10
    predictions = [p for preds, _proba in results for p in preds]
    assert predictions == churn_pipeline.predict(features).tolist()
    proba = np.array([row for _preds, probas in results for row in probas])
    np.testing.assert_allclose(proba, churn_pipeline.predict_proba(features), atol=1e-6)


def test_max_rows_splits_batches(registry: Registry, churn_model: ModelVersion, rows: list[dict[str, Any]]) -> None:
    loaded = load_version(registry, churn_model)
    batcher = MicroBatcher(max_rows=4, workers=1)

    async def run() -> list[Any]:
        try:
            return await asyncio.gather(*(batcher.submit(loaded, _data(loaded, rows[:2]), 2) for _ in range(6)))
        finally:
            await batcher.stop()

    assert len(asyncio.run(run())) == 6
    assert batcher.batches == 4  # the first alone, then five queued requests of 2 rows in 4-row batches


def test_one_bad_request_does_not_fail_its_batch(
    registry: Registry, churn_model: ModelVersion, rows: list[dict[str, Any]]
) -> None:
    loaded = load_version(registry, churn_model)
    good = _data(loaded, rows[:2])
    bad = dict(good, total_day_minutes=np.array([{"nested": 1}, [1]], dtype=object))  # past validation
    batcher = MicroBatcher(workers=1)

    async def run() -> list[Any]:
        try:
            return await asyncio.gather(
                batcher.submit(loaded, good, 2), batcher.submit(loaded, bad, 2), batcher.submit(loaded, good, 2),
                return_exceptions=True,
            )
        finally:
            await batcher.stop()

    first, second, third = asyncio.run(run())
    assert isinstance(second, DataError) and "could not score" in str(second)
    assert first[0] == third[0] and len(first[0]) == 2


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("batching", [True, False])
def test_batching_setting_gives_the_same_answers(
    registry: Registry, churn_model: ModelVersion, rows: list[dict[str, Any]], batching: bool, fast_path: bool
) -> None:
    from mlpilot.serve import ServeSettings, create_app
    from tests.serve.conftest import TestClient

    settings = ServeSettings(home=registry.workspace.root, batching=batching, fast_path=fast_path)
    app = create_app(settings, registry=registry)
    with TestClient(app) as client:
        answer = client.post("/v1/models/churn/predict", json={"rows": rows}).json()
    assert len(answer["predictions"]) == 5
    # a compiled model scores small requests on the event loop, without the batcher
    assert app.state.batcher.batches == (1 if batching and not fast_path else 0)
