"""The reference a served version is monitored against: its training snapshot, scored by the model.

I/O lives here (the registry, the snapshot, the model through `mlpilot.runtime`);
the statistics in `_drift` and `_performance` get plain frames and arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.data import Schema
from mlpilot.exceptions import DataError
from mlpilot.monitor._performance import MetricEstimate
from mlpilot.registry import ModelVersion, Registry

# Reference rows scored by the model (for prediction drift and the calibration); a seeded sample of larger ones.
MAX_SCORED_ROWS = 20_000
_CLASSIFICATION = ("binary", "multiclass")


@dataclass(frozen=True)
class Reference:
    """A version's reference: its training rows, their roles, and what the model says on them.

    ``proba`` (rows × classes, in ``classes`` order) and ``predictions`` are the
    model's outputs on ``scored``, a sample of ``frame`` of at most
    `MAX_SCORED_ROWS` rows; ``y`` their labels encoded as class indices
    (classifiers) or values (regression).
    """

    name: str
    version: int
    frame: pd.DataFrame
    roles: dict[str, str]
    task: str | None
    metric: str | None
    target: str | None
    classes: tuple[Any, ...] | None
    importances: dict[str, float]
    holdout: MetricEstimate | None
    dataset_id: str | None
    predictions: np.ndarray = field(repr=False)
    proba: np.ndarray | None = field(repr=False)
    y: np.ndarray | None = field(repr=False)
    #: The binary model's decision threshold (None: labels at 0.5, models saved before thresholds).
    threshold: float | None = None

    @property
    def is_classifier(self) -> bool:
        return self.task in _CLASSIFICATION and self.proba is not None and self.classes is not None


def encode_labels(labels: Sequence[Any] | pd.Series | np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    """Class indices of ``labels`` (compared as text, as JSON gives them back); -1 for a label not in ``classes``.

    Examples
    --------
    >>> encode_labels(["yes", "no", 1], ["no", "yes"]).tolist()
    [1, 0, -1]
    """
    index = {str(c): i for i, c in enumerate(classes)}
    return np.array([index.get(str(v), -1) for v in labels], dtype=int)


def _importances(mv: ModelVersion) -> dict[str, float]:
    card = mv.info.get("model_card")
    rows = card.get("importance") if isinstance(card, dict) else None
    if not isinstance(rows, list):
        return {}
    return {str(r["column"]): float(r["mean"]) for r in rows if isinstance(r, dict) and "column" in r and "mean" in r}


def _holdout(mv: ModelVersion, metric: str | None) -> MetricEstimate | None:
    if metric is None:
        return None
    value = mv.metrics.get(f"holdout_{metric}")
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, int | float):
        return None
    ci = mv.metrics.get(f"holdout_{metric}_ci")
    interval = (float(ci[0]), float(ci[1])) if isinstance(ci, list | tuple) and len(ci) == 2 and None not in ci else None
    greater = bool(mv.info.get("greater_is_better", True))
    return MetricEstimate(metric, float(value), interval, "holdout at training time", 0, greater)


def _training_frame(registry: Registry, mv: ModelVersion) -> pd.DataFrame:
    from mlpilot.data._snapshot import read_snapshot

    if mv.dataset_id is None:
        raise DataError(
            f"{mv.ref} has no training snapshot recorded in the registry, so there is nothing to compare the "
            "live rows with. Retrain it with mlpilot train (which records the snapshot), or pass "
            "reference=<a DataFrame of training rows> to mlpilot.monitor."
        )
    return read_snapshot(registry.workspace, mv.dataset_id)


def load_reference(
    registry: Registry, mv: ModelVersion, *, frame: pd.DataFrame | None = None, random_state: int = 0,
) -> Reference:
    """The reference of ``mv``: its training snapshot (or ``frame``), scored by the model.

    Raises
    ------
    DataError
        When the version has no recorded snapshot and no ``frame`` is given, or
        has no input schema.
    """
    from mlpilot.runtime import load_version, score_frame

    if mv.schema is None:
        raise DataError(f"{mv.ref} has no input schema, so its inputs cannot be monitored.")
    schema = Schema.from_dict(mv.schema)
    data = _training_frame(registry, mv) if frame is None else frame
    roles = {c.name: c.role for c in schema.features}
    missing = [c for c in roles if c not in data.columns]
    if missing:
        raise DataError(
            f"The reference rows lack the model's feature column(s) {', '.join(map(repr, missing))}; "
            "pass rows with every feature of the model's schema."
        )
    target = mv.info.get("target") or schema.target
    task = mv.info.get("task")
    loaded = load_version(registry, mv, fast_path=False)  # scored once: not worth verifying a fast path
    scored = data.sample(MAX_SCORED_ROWS, random_state=random_state) if len(data) > MAX_SCORED_ROWS else data
    result = score_frame(loaded, scored[list(roles)].reset_index(drop=True))
    classes = loaded.classes
    proba = np.asarray(result.probabilities, dtype=float) if result.probabilities is not None else None
    y: np.ndarray | None = None
    if target is not None and target in scored.columns:
        labels = scored[target].to_numpy()
        if task in _CLASSIFICATION and classes is not None:
            encoded = encode_labels(labels, classes)
            y = encoded if (encoded >= 0).all() else None
        elif task == "regression":
            y = pd.to_numeric(pd.Series(labels), errors="coerce").to_numpy(dtype=float)
    metric = mv.info.get("metric")
    return Reference(
        name=mv.name, version=mv.version, frame=data[list(roles)], roles=roles, task=task,
        metric=metric, target=target, classes=tuple(classes) if classes is not None else None,
        importances=_importances(mv), holdout=_holdout(mv, metric), dataset_id=mv.dataset_id,
        predictions=np.asarray(result.predictions, dtype=object), proba=proba, y=y, threshold=loaded.threshold,
    )
