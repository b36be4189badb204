"""Judging a retrain on the rows newer than its training cut, where the source has a time column.

A random holdout mixes old and new rows; with a time column the watcher holds
out the newest fresh rows instead (those after the cut, which neither the
champion nor the challenger saw), trains on the rows up to the cut, and
compares both models on the held-out window with the one promotion policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot.automl._promote import Decision, PromotionPolicy, predict_in_order
from mlpilot.exceptions import ColumnNotFoundError

if TYPE_CHECKING:
    from mlpilot.registry import ModelVersion, Registry


def time_split(frame: pd.DataFrame, column: str, fresh: np.ndarray, *, fraction: float = 0.2,
               min_rows: int = 30) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """The rows to train on (a mask) and the window after the cut (positions), or None when too few are fresh.

    The cut leaves the newest ``fraction`` of the fresh rows (at least
    ``min_rows``) after it.
    """
    if column not in frame.columns:
        raise ColumnNotFoundError(column, [str(c) for c in frame.columns], what="time column (--time-column)")
    values = frame[column]
    times = values.astype(float) if pd.api.types.is_numeric_dtype(values) else pd.to_datetime(
        values, utc=True, errors="coerce")
    n_window = max(min_rows, round(fraction * len(fresh)))
    if len(fresh) < 2 * min_rows or n_window >= len(fresh):
        return None
    order = np.argsort(np.asarray(times.iloc[fresh]), kind="stable")
    cut = times.iloc[fresh[order[-n_window - 1]]]
    window = fresh[np.asarray(times.iloc[fresh] > cut)]
    if len(window) < min_rows:
        return None
    train_mask = np.asarray(times <= cut)
    evidence = {"time_column": column, "cut": str(cut), "window_rows": len(window),
                "window_start": str(times.iloc[window].min()), "window_end": str(times.iloc[window].max()),
                "train_rows": int(train_mask.sum())}
    return train_mask, window, evidence


def encode_target(values: pd.Series, classes: list[Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose label is a known class (a mask) and their codes; every row and its value for a regression."""
    if not classes:
        return np.ones(len(values), dtype=bool), values.to_numpy(dtype=float)
    from mlpilot.registry._labels import class_positions

    codes = class_positions(values, classes)  # by value: a label 1.0 is the class 1
    return codes >= 0, codes[codes >= 0].astype(int)


def judge_on_window(registry: Registry, challenger: ModelVersion, champion: ModelVersion, window: pd.DataFrame,
                    policy: PromotionPolicy) -> Decision:
    """Score both models on ``window`` (rows after the challenger's cut) and apply ``policy``."""
    target = str(champion.info.get("target"))
    task = str(champion.info.get("task") or "regression")
    classes = list(champion.info.get("classes") or [])
    known, y = encode_target(window[target], classes)
    features = window[known].drop(columns=[target])
    model, old_model = registry.load_model(challenger), registry.load_model(champion)
    new_pred = predict_in_order(model, features, task, classes)
    old_pred = predict_in_order(old_model, features, task, classes)
    return policy.decide_live(task, str(champion.info.get("metric")), y, new_pred, old_pred, champion.version,
                              model=model, rows=features, unit="rows after the challenger's training cut",
                              measure="fresh", thresholds=(getattr(model, "threshold_", None),
                                                           getattr(old_model, "threshold_", None)))
