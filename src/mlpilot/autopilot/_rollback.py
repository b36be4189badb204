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
    from mlpilot.tasks import Metric

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
    registry.set_alias(name, "champion", target, by="rollback", reason=reason)
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
               min_rows: int = 30, n_boot: int = 500, random_state: int = 0) -> dict[str, Any]:
    """Score the new and the old champion on the same fresh labelled rows; say whether to roll back.

    Returns the evidence: ``rows``, ``metric``, both scores, the old one's 95%
    interval, and ``rollback`` (bool) with ``reason``.
    """
    from mlpilot.autopilot._timecut import encode_target
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
    return _verdict(metric, y, preds[0], preds[1], new, old, "fresh labelled rows", n_boot=n_boot, random_state=random_state)


def logged_live_check(registry: Registry, name: str, new: ModelVersion, old: ModelVersion, *,
                      since: str | None = None, min_rows: int = 30, n_boot: int = 500,
                      random_state: int = 0) -> dict[str, Any] | None:
    """Check the new champion on its own logged live predictions whose labels have come back.

    The rows are the new champion's logged predictions (``source`` api or
    stream, newer than ``since``) joined to their labels
    (`mlpilot.monitor.labelled_predictions`). The old champion's predictions on
    the same rows come from its shadow log where it has one, and otherwise from
    scoring the logged inputs with it through `mlpilot.runtime`, as serve does.
    Returns the evidence as `live_check` does (``source`` "prediction log"),
    or None when no labelled live row of the new champion exists (the caller
    falls back to the source's fresh rows).
    """
    from mlpilot.autopilot._shadow import LIVE_SOURCES, logged_scores
    from mlpilot.monitor import LOG_COLUMNS, labelled_predictions
    from mlpilot.tasks import get_metric

    metric_name = new.info.get("metric")
    if not metric_name:
        return None
    labelled = labelled_predictions(registry.workspace, name, since=since)
    keys = ["request_id", "row"]
    live = labelled[labelled["source"].isin(LIVE_SOURCES) & (labelled["version"] == new.version)]
    if live.empty:
        return None
    base = {"rollback": False, "source": "prediction log", "since": since, "new_version": new.version,
            "old_version": old.version}
    if len(live) < min_rows:
        return {**base, "rows": len(live),
                "reason": f"only {len(live)} labelled live rows of v{new.version} since its promotion (at least "
                          f"{min_rows} are needed to check it)"}
    task = str(new.info.get("task") or "regression")
    classes = list(new.info.get("classes") or [])
    live = live.drop_duplicates(keys).reset_index(drop=True)
    shadow = labelled[(labelled["source"] == "shadow") & (labelled["version"] == old.version)]
    paired = live.merge(shadow[[*keys, "prediction", "probabilities"]].drop_duplicates(keys), on=keys, how="left",
                        suffixes=("", "_old"), indicator=True)
    y, new_pred, known = logged_scores(paired, task, classes)
    paired = paired[known].reset_index(drop=True)
    from_shadow = paired["_merge"].to_numpy() == "both"
    old_pred = np.zeros_like(new_pred)
    if from_shadow.any():
        old_pred[from_shadow] = logged_scores(paired[from_shadow], task, classes, suffix="_old")[1]
    rest = ~from_shadow
    if rest.any():
        features = [c for c in old.info.get("features") or [] if c not in LOG_COLUMNS]
        lacking = [c for c in features if c not in paired.columns or paired[c].isna().all()]
        if lacking:
            return {**base, "rows": len(paired),
                    "reason": f"the log has no {', '.join(map(repr, lacking[:5]))} to score v{old.version} on "
                              f"v{new.version}'s live rows; no live check on the log"}
        old_pred[rest] = _score_logged(registry, old, paired.loc[rest, features], task, classes)
    evidence = _verdict(get_metric(str(metric_name)), y, new_pred, old_pred, new, old, "labelled live rows",
                        n_boot=n_boot, random_state=random_state)
    return {**evidence, "source": "prediction log", "since": since, "old_from_shadow": int(from_shadow.sum()),
            "old_rescored": int(rest.sum())}


def _score_logged(registry: Registry, mv: ModelVersion, rows: pd.DataFrame, task: str,
                  classes: list[Any]) -> np.ndarray:
    """``mv``'s predictions (probabilities in ``classes``' order for a classifier) on logged inputs."""
    from mlpilot.registry._labels import class_positions
    from mlpilot.runtime import load_version, score_frame

    scored = score_frame(load_version(registry, mv, fast_path=False), rows.reset_index(drop=True))
    if task == "regression":
        return np.asarray(scored.predictions, dtype=float)
    probabilities = np.asarray(scored.probabilities, dtype=float)
    # by value: a version trained on 0.0/1.0 and one trained on 0/1 have the same classes; one it never saw is 0
    own = class_positions(classes, mv.info.get("classes") or classes)
    out = np.zeros((len(probabilities), len(classes)))
    out[:, own >= 0] = probabilities[:, own[own >= 0]]
    return out


def _verdict(metric: Metric, y: np.ndarray, new_pred: np.ndarray, old_pred: np.ndarray, new: ModelVersion,
             old: ModelVersion, unit: str, *, n_boot: int, random_state: int) -> dict[str, Any]:
    """Roll back when the new champion's score falls outside the old one's 95% interval, on the worse side.

    Label metrics score each version's labels at its own decision threshold.
    """
    from mlpilot.autopilot._shadow import version_threshold
    from mlpilot.evaluate import bootstrap_ci

    new_pred, old_pred = metric.decided(new_pred, version_threshold(new)), metric.decided(old_pred, version_threshold(old))

    new_score, old_score = metric(y, new_pred), metric(y, old_pred)
    low, high = bootstrap_ci(y, old_pred, metric, n_boot=n_boot, random_state=random_state)
    bound = low if metric.greater_is_better else high
    worse = new_score < bound if metric.greater_is_better else new_score > bound
    word = "below" if metric.greater_is_better else "above"
    verdict = word if worse else "not " + word
    reason = (f"live {metric.name} of v{new.version} {new_score:.4f} is {verdict} the 95% interval bound "
              f"{bound:.4f} of v{old.version} ({old_score:.4f} [{low:.4f}, {high:.4f}]) on the same {len(y)} "
              f"{unit}")
    return {"rollback": bool(worse), "reason": reason, "rows": len(y), "metric": metric.name,
            "new_version": new.version, "new": new_score, "old_version": old.version, "old": old_score,
            "old_interval": [low, high]}
