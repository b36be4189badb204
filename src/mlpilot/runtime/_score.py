"""Scoring a validated frame with a loaded model and shaping the answer."""

from __future__ import annotations

import logging
import math
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot.exceptions import DataError, MlpilotError
from mlpilot.runtime._blas import one_blas_thread
from mlpilot.runtime._compile_final import SINGLE_THREAD_ROWS, is_argmax_classifier
from mlpilot.runtime._compile_steps import Table
from mlpilot.tasks import labels_at

if TYPE_CHECKING:
    from mlpilot.runtime._loaded import LoadedModel

logger = logging.getLogger(__name__)


def _plain(values: Any) -> list[Any]:
    array = np.asarray(values)
    if array.dtype.kind == "f":
        out = array.astype(float).tolist()
        return [v if v == v and v not in (float("inf"), float("-inf")) else None for v in out]
    if array.dtype.kind == "M":
        return [str(v) for v in array]
    return [v.item() if hasattr(v, "item") else v for v in array.tolist()]


Scored = tuple[list[Any], list[list[float]] | None]


def _is_lightgbm(estimator: Any) -> bool:
    lightgbm = sys.modules.get("lightgbm")  # an instance exists only once lightgbm is imported
    return lightgbm is not None and isinstance(estimator, lightgbm.LGBMModel)


def _thresholded_labels(final: Any, proba: np.ndarray) -> np.ndarray | None:
    """An mlpilot ensemble's ``predict`` from its ``predict_proba``: `labels_at` its threshold, as it labels.

    ``None`` for any other estimator (its ``predict`` is asked). ``TabularEnsemble.predict``
    computes these same probabilities before labelling them, so asking it again would run
    every member and its preprocessing twice.
    """
    ensemble = sys.modules.get("mlpilot.search._ensemble")  # an instance exists only once it is imported
    if ensemble is None or not isinstance(final, ensemble.TabularEnsemble):
        return None
    return labels_at(final.classes_, proba, final.threshold_)


def _predict_kwargs(final: Any, n_rows: int) -> dict[str, Any]:
    if n_rows <= SINGLE_THREAD_ROWS and _is_lightgbm(final):
        return {"num_threads": 1}
    return {}


def predict_frame(loaded: LoadedModel, frame: pd.DataFrame) -> tuple[Any, np.ndarray | None]:
    """The general path: the loaded model's own predict methods on a frame.

    Returns labels (or values) and, for classifiers, the unrounded class probabilities.
    """
    model = loaded.model
    head, final = loaded.steps if loaded.steps is not None else (None, model)
    if len(frame) <= SINGLE_THREAD_ROWS:
        one_blas_thread()
    if loaded.classes is not None:
        features = head.transform(frame) if head is not None else frame
        proba = np.asarray(final.predict_proba(features, **_predict_kwargs(final, len(frame))), dtype=float)
        if is_argmax_classifier(final):
            labels = np.asarray(final.classes_, dtype=object)[np.argmax(proba, axis=1)]
        else:
            thresholded = _thresholded_labels(final, proba)
            labels = thresholded if thresholded is not None else final.predict(features)
        return labels, proba
    if head is not None and _is_lightgbm(final):
        return final.predict(head.transform(frame), **_predict_kwargs(final, len(frame))), None
    return model.predict(frame), None


def _round6(value: float) -> float:
    """``np.round(value, 6)`` on a plain float: the same multiply, round-half-even and divide."""
    rounded = round(value * 1e6) / 1e6
    return rounded if rounded else math.copysign(0.0, value)


def _shape(labels: Any, proba: np.ndarray | None) -> Scored:
    return _plain(labels), (np.round(proba, 6).tolist() if proba is not None else None)


def score(loaded: LoadedModel, frame: pd.DataFrame) -> Scored:
    """Predict labels (and class probabilities for classifiers) for ``frame``.

    Runs in a worker thread. A model that rejects the values it gets raises
    `DataError` (422) naming the model; that is a problem with the input, not
    a server fault.
    """
    try:
        labels, proba = predict_frame(loaded, frame)
    except MlpilotError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        logger.info("model %s rejected the input: %s", loaded.version.ref, exc)
        raise DataError(
            f"Model {loaded.version.ref} could not score these rows: {type(exc).__name__}: "
            f"{str(exc)[:300]}. Check the values against GET /v1/models/{loaded.name}."
        ) from None
    return _shape(labels, proba)


def score_compiled(loaded: LoadedModel, table: Table, n_rows: int) -> Scored | None:
    """Score validated JSON values with the compiled model; ``None`` where only the general path can.

    The compiled path refuses what it cannot encode (a category the encoder
    rejects, a missing value a linear model cannot take); the general path
    then gives the answer, or the error message, it always gave. A batch of
    at least ``compiled.pipeline_rows`` rows is left to the general path too,
    which was measured faster at that size when the model loaded.
    """
    compiled = loaded.compiled
    if compiled is None:
        return None
    if compiled.pipeline_rows is not None and n_rows >= compiled.pipeline_rows:
        return None  # a batch the pipeline scores faster (measured at load, `LoadedModel.dispatch`)
    try:
        if n_rows == 1 and isinstance(table, list):
            one = compiled.predict_one(table[0])
            if one is not None:
                label, values = one
                return _plain([label]), [[_round6(v) for v in values]] if values is not None else None
        labels, proba = compiled.predict(table, n_rows)
    except Exception as exc:
        logger.debug("compiled path of %s declined the input (%s: %s)", loaded.version.ref, type(exc).__name__, exc)
        return None
    return _shape(labels, proba)


def probability_dicts(classes: tuple[Any, ...], probabilities: list[list[float]]) -> list[dict[str, float]]:
    keys = [str(c) for c in classes]
    if len(keys) == 2 and probabilities and len(probabilities[0]) == 2:
        # a binary model: a dict display per row, five times faster than dict(zip())
        no, yes = keys
        return [{no: p, yes: q} for p, q in probabilities]
    return [dict(zip(keys, row, strict=False)) for row in probabilities]
