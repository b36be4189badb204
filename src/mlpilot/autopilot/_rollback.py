"""Rollback: back to the previous champion, by hand or when the live metric says so.

The champion's history is read from the registry's events (a version
registered as champion, an alias moved), so a rollback needs no state of its
own. The automatic rule compares the new champion with the one it replaced
on the same fresh labelled rows (rows neither was trained on): the new one is
rolled back when its metric falls below the old one's lower 95% interval bound.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot.automl._promote import Champion, hash_prefixes, predict_in_order, row_hashes
from mlpilot.exceptions import InvalidParameterError, ModelNotFoundError

if TYPE_CHECKING:
    from mlpilot.registry import ModelVersion, Registry

logger = logging.getLogger(__name__)


def champion_timeline(registry: Registry, name: str) -> list[dict[str, Any]]:
    """Each move of ``name``'s champion alias, oldest first: ``{"version", "at", "event"}``."""
    moves: list[dict[str, Any]] = []
    for event in registry.list_events(name=name):
        payload = event["payload"] or {}
        version = None
        if (event["kind"] == "model_registered" and "champion" in (payload.get("aliases") or [])) or (event["kind"] == "alias_set" and payload.get("alias") == "champion"):
            version = payload.get("version")
        if version is not None:
            moves.append({"version": int(version), "at": event["created_at"], "event": event["kind"]})
    return moves


def previous_champion(registry: Registry, name: str) -> int | None:
    """The version that was champion before the current one (None when there was none)."""
    current = registry.get_aliases(name).get("champion")
    versions = [m["version"] for m in champion_timeline(registry, name)]
    while versions and versions[-1] == current:
        versions.pop()
    return versions[-1] if versions else None


def rollback(registry: Registry, name: str, *, to: int | None = None, reason: str = "rolled back by hand",
             evidence: dict[str, Any] | None = None) -> tuple[int, int]:
    """Point ``name@champion`` back at the previous champion (or ``to``) and record why.

    Returns ``(from_version, to_version)``. A running server follows the alias
    and hot-swaps on its next check.

    Raises
    ------
    ModelNotFoundError
        When ``name`` has no champion or no earlier champion to go back to.
    """
    current = registry.get_aliases(name).get("champion")
    if current is None:
        registry.list_versions(name)  # names the model when it does not exist
        raise ModelNotFoundError(f"Model {name!r} has no champion to roll back. Promote one with: "
                                 f"mlpilot models promote {name}:VERSION")
    target = previous_champion(registry, name) if to is None else to
    if target is None:
        raise ModelNotFoundError(f"Model {name!r} has had only one champion (v{current}); there is nothing to roll "
                                 "back to. See its history with: mlpilot models history " + name)
    if target == current:
        raise InvalidParameterError(f"v{target} is already the champion of {name!r}; nothing was changed.")
    registry.set_alias(name, "champion", target)
    registry.log_event("rollback", name, {"from_version": current, "to_version": target, "reason": reason,
                                          "evidence": evidence or {}})
    logger.info("%s: champion rolled back from v%s to v%s (%s)", name, current, target, reason)
    return current, target


def fresh_positions(frame: pd.DataFrame, versions: list[ModelVersion], registry: Registry) -> np.ndarray | None:
    """Positions of ``frame``'s rows that none of ``versions`` was trained on (by their recorded row hashes).

    None when a version has no usable record of its training rows (registered
    before mlpilot kept one, or over columns ``frame`` lacks).
    """
    keep = np.ones(len(frame), dtype=bool)
    for mv in versions:
        champion = Champion.from_version(mv, registry)
        if champion.seen is None or champion.seen_columns is None:
            return None
        if any(c not in frame.columns for c in champion.seen_columns):
            return None
        keep &= ~np.isin(hash_prefixes(row_hashes(frame, champion.seen_columns)), champion.seen)
    return np.flatnonzero(keep)


def live_check(registry: Registry, name: str, frame: pd.DataFrame, new: ModelVersion, old: ModelVersion, *,
               min_rows: int = 30, n_boot: int = 500, seed: int = 0) -> dict[str, Any]:
    """Score the new and the old champion on the same fresh labelled rows; say whether to roll back.

    Returns the evidence: ``rows``, ``metric``, both scores, the old one's 95%
    interval, and ``rollback`` (bool) with ``reason``.
    """
    from mlpilot.autopilot._timecut import encode_target
    from mlpilot.evaluate import bootstrap_ci
    from mlpilot.tasks import get_metric

    target, metric_name = new.info.get("target"), new.info.get("metric")
    if not target or not metric_name or target not in frame.columns:
        return {"rollback": False, "reason": "the champion records no target or metric to check it live"}
    positions = fresh_positions(frame, [new, old], registry)
    if positions is None:
        return {"rollback": False, "reason": "a champion has no record of its training rows, so fresh rows "
                                             "cannot be told; no live check"}
    if len(positions) < min_rows:
        return {"rollback": False, "rows": len(positions),
                "reason": f"only {len(positions)} fresh labelled rows since the promotion (at least {min_rows} "
                          "are needed to check it)"}
    rows = frame.iloc[positions]
    metric = get_metric(str(metric_name))
    classes = new.info.get("classes")
    known, y = encode_target(rows[target], classes)
    rows = rows[known]
    features = rows.drop(columns=[target])
    task = str(new.info.get("task") or "regression")
    preds = [predict_in_order(registry.load_model(mv), features, task, list(classes or [])) for mv in (new, old)]
    new_score, old_score = metric(y, preds[0]), metric(y, preds[1])
    low, high = bootstrap_ci(y, preds[1], metric, n_boot=n_boot, random_state=seed)
    bound = low if metric.greater_is_better else high
    worse = new_score < bound if metric.greater_is_better else new_score > bound
    word = "below" if metric.greater_is_better else "above"
    verdict = word if worse else "not " + word
    reason = (f"live {metric.name} of v{new.version} {new_score:.4f} is {verdict} the 95% interval bound "
              f"{bound:.4f} of v{old.version} ({old_score:.4f} [{low:.4f}, {high:.4f}]) on the same {len(y)} "
              "fresh labelled rows")
    return {"rollback": bool(worse), "reason": reason, "rows": len(y), "metric": metric.name,
            "new_version": new.version, "new": new_score, "old_version": old.version, "old": old_score,
            "old_interval": [low, high]}
