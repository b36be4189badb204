"""``tune_gc`` (what `mlpilot serve` sets): the loaded model frozen out of the collector's sight, restored after."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime._collector import YOUNG_THRESHOLD, freeze_loaded, scoring_collector
from mlpilot.serve import ServeSettings, create_app


def _collectable(obj: Any) -> bool:
    """Whether ``obj`` is among the objects a collection would walk (frozen ones are not)."""
    return any(o is obj for o in gc.get_objects())


@pytest.mark.parametrize("tune", [True, False])
def test_the_served_model_is_frozen_only_when_asked_and_the_collector_is_restored(
    registry: Registry, churn_model: ModelVersion, rows: list[dict[str, Any]], tune: bool,
) -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    settings = ServeSettings(home=registry.workspace.root, tune_gc=tune, poll_interval=0.1, log_flush_interval=0.05)
    app = create_app(settings, registry=registry)
    with TestClient(app) as client:
        answer = client.post("/v1/models/churn/predict", json={"rows": rows})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == len(rows)
        model = app.state.models.get("churn").model
        assert gc.is_tracked(model)
        if tune:
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
            assert gc.get_freeze_count() > 0 and not _collectable(model)
        else:
            assert gc.get_threshold() == before
            assert gc.get_freeze_count() == 0 and _collectable(model)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_cycle_frozen_by_one_load_is_collected_at_the_next() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    with scoring_collector():
        cycle = Node()
        freeze_loaded()  # the cycle is alive: frozen with everything else
        assert not _collectable(cycle)
        collected: list[bool] = []
        ref = weakref.ref(cycle, lambda _r: collected.append(True))
        del cycle
        assert ref() is not None  # only a collection can free a cycle, and none walks frozen objects
        freeze_loaded()  # the next load: the frozen objects are given back, collected, and the rest frozen
        assert ref() is None and collected == [True]
    assert gc.get_freeze_count() == 0
