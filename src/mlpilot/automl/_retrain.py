"""Retrain a registered model on fresh data under a promotion policy: what the autopilot asks of automl."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlpilot._workspace import Workspace
from mlpilot.automl._promote import PromotionPolicy
from mlpilot.automl._run import _json_ready, train

#: The one rule turning records into JSON values (numpy scalars, non-finite floats).
json_ready = _json_ready


@dataclass(frozen=True)
class Retrained:
    """A retrain's outcome: the new version, whether it became champion, why, and the evidence."""

    version: int
    promoted: bool
    reason: str
    evidence: dict[str, Any]
    run_id: str | None


#: Registers a challenger without promoting it: no holdout can have this many rows unseen by the champion,
#: and the autopilot's modes never promote without them. The caller then decides on rows of its own.
REGISTER_ONLY = PromotionPolicy(mode="superiority", min_unseen_rows=2**62)


def retrain(frame: pd.DataFrame, target: str, *, name: str, workspace: Workspace, policy: PromotionPolicy,
            options: dict[str, Any]) -> Retrained:
    """Train ``name`` again on ``frame``, register it, and let ``policy`` decide the champion.

    ``options`` are `mlpilot.train` keywords (``time_budget``, ``deterministic``,
    ``n_trials``, ``families``, ``random_state``, ...). The registration and
    the alias move are one transaction: a crash leaves the champion as it was.
    With `REGISTER_ONLY` the new version is registered and never promoted here.
    """
    run = train(frame, target, name=name, workspace=workspace, policy=policy, report=False, **options)
    assert run.version is not None  # registered
    from mlpilot.registry import Registry

    registry = Registry(workspace)
    try:
        evidence = dict(registry.get_version(f"{name}:{run.version}").info.get("promotion") or {})
    finally:
        registry.close()
    return Retrained(run.version, run.champion, run.champion_reason, json_ready(evidence), run.run_id)
