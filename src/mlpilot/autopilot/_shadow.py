"""Shadow mode: the challenger scores the champion's live traffic in the background, never on the request path.

The watcher reads the rows the champion scored (``source`` "api" or
"stream") from the prediction log, scores them with the challenger through
`mlpilot.runtime` (as serve does) and logs them with ``source="shadow"`` and
the champion's request ids, so each shadow row pairs with the champion's by
``(request_id, row)`` (rows of a request keep their order). Once labels
have arrived for those rows (the feedback store), both models are compared on
the same labelled live rows by the one promotion policy (`PromotionPolicy.decide_live`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot.automl._promote import Decision, PromotionPolicy

if TYPE_CHECKING:
    from mlpilot.registry import ModelVersion, Registry

#: ``read_feedback(workspace, name)``: a frame with ``request_id``, ``row`` and ``label``.
FeedbackReader = Callable[..., pd.DataFrame]
LIVE_SOURCES = ("api", "stream")


def shadow_score(registry: Registry, name: str, challenger: ModelVersion, champion: int,
                 after: str | None = None) -> tuple[int, str | None]:
    """Score the champion's logged rows newer than ``after`` with ``challenger``; return (rows, new cursor).

    The cursor is the timestamp (ISO 8601) of the last champion row scored.
    """
    from mlpilot.monitor import LOG_COLUMNS, PredictionLog, read_prediction_log
    from mlpilot.runtime import load_version, score_frame

    log = read_prediction_log(registry.workspace, name)
    if log.empty:
        return 0, after
    live = log[log["source"].isin(LIVE_SOURCES) & (log["version"] == champion)]
    if after is not None:
        live = live[live["timestamp"] > pd.Timestamp(after)]
    if live.empty:
        return 0, after
    loaded = load_version(registry, challenger)
    features = [c for c in log.columns if c not in LOG_COLUMNS]
    writer = PredictionLog(registry.workspace).start()
    try:
        for request_id, group in live.groupby("request_id", sort=False):
            rows = group.sort_values("row")[features].reset_index(drop=True)
            t0 = time.perf_counter()
            scored = score_frame(loaded, rows)
            writer.log(name, challenger.version, scored.inputs, scored.predictions,
                       (time.perf_counter() - t0) * 1000.0, probabilities=scored.probabilities,
                       request_ids=str(request_id), source="shadow")
    finally:
        writer.close()
    return len(live), pd.Timestamp(live["timestamp"].max()).isoformat()


def shadow_compare(registry: Registry, name: str, champion: ModelVersion, challenger: ModelVersion,
                   labels: pd.DataFrame, policy: PromotionPolicy) -> Decision:
    """Compare the champion and its shadow on the live rows both scored that have a label."""
    from mlpilot.monitor import read_prediction_log

    log = read_prediction_log(registry.workspace, name)
    keys = ["request_id", "row"]
    old = log[log["source"].isin(LIVE_SOURCES) & (log["version"] == champion.version)]
    new = log[(log["source"] == "shadow") & (log["version"] == challenger.version)]
    labelled = labels.assign(row=labels["row"] if "row" in labels.columns else 0)[[*keys, "label"]]
    pairs = (old[[*keys, "prediction", "probabilities"]]
             .merge(new[[*keys, "prediction", "probabilities"]], on=keys, suffixes=("_old", "_new"))
             .merge(labelled.astype({"request_id": str}), on=keys))
    task = str(champion.info.get("task") or "regression")
    classes = list(champion.info.get("classes") or [])
    y, new_pred, _ = logged_scores(pairs, task, classes, suffix="_new")
    old_pred = logged_scores(pairs, task, classes, suffix="_old")[1]
    return policy.decide_live(task, str(champion.info.get("metric")), y, new_pred, old_pred, champion.version,
                              thresholds=(version_threshold(challenger), version_threshold(champion)))


def version_threshold(mv: ModelVersion) -> float | None:
    """The version's decision threshold (None: a model saved before thresholds, or not binary)."""
    section = mv.info.get("threshold")
    value = section.get("value") if isinstance(section, dict) else None
    return float(value) if value is not None else None


def logged_scores(frame: pd.DataFrame, task: str, classes: list[Any], *, suffix: str = ""
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The encoded labels and logged predictions of labelled log rows, and the mask of the rows kept.

    A regression keeps every row (``prediction{suffix}`` as numbers); a
    classifier keeps the rows whose label is one of ``classes`` and gives the
    logged ``probabilities{suffix}`` in their order.
    """
    if task == "regression":
        return (frame["label"].to_numpy(dtype=float), frame["prediction" + suffix].to_numpy(dtype=float),
                np.ones(len(frame), dtype=bool))
    from mlpilot.registry._labels import class_positions

    codes = class_positions(frame["label"], classes)  # by value: a label 1.0 is the class 1
    known = codes >= 0
    return codes[known].astype(int), _probabilities(frame["probabilities" + suffix][known], classes), known


def _probabilities(values: pd.Series, classes: list[Any]) -> np.ndarray:
    """Logged probabilities (a list in class order, or a mapping of class to probability) as an array."""
    from mlpilot.registry._labels import class_positions

    out = np.zeros((len(values), len(classes)))
    for i, entry in enumerate(values):
        if isinstance(entry, dict):  # keyed by the text of the logging version's classes ("0.0" for 0.0)
            keys = list(entry)
            for j, k in enumerate(class_positions(classes, keys)):
                out[i, j] = float(entry[keys[k]] or 0.0) if k >= 0 else 0.0
        elif entry is not None:
            out[i, : len(entry)] = np.asarray(entry, dtype=float)
    return out
