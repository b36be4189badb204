"""Scoring a validated frame with a loaded model and shaping the answer."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.exceptions import DataError, MlpilotError
from mlpilot.serve._models import LoadedModel

logger = logging.getLogger(__name__)


def _plain(values: Any) -> list[Any]:
    array = np.asarray(values)
    if array.dtype.kind == "f":
        out = array.astype(float).tolist()
        return [v if v == v and v not in (float("inf"), float("-inf")) else None for v in out]
    if array.dtype.kind == "M":
        return [str(v) for v in array]
    return [v.item() if hasattr(v, "item") else v for v in array.tolist()]


# Classifiers whose ``predict`` is exactly the class of highest probability, so one
# ``predict_proba`` call gives both answers. Anything else (tuned thresholds,
# custom wrappers) is asked for ``predict`` separately.
ARGMAX_CLASSIFIERS = frozenset({
    "LGBMClassifier", "LogisticRegression", "RandomForestClassifier", "ExtraTreesClassifier",
    "HistGradientBoostingClassifier", "GradientBoostingClassifier", "DecisionTreeClassifier",
    "KNeighborsClassifier", "GaussianNB", "MLPClassifier",
})


# LightGBM predicts with every core by default; for the small batches a server
# sees, starting the OpenMP team costs more than the trees (16 ms against 0.5 ms
# for one row on a busy 2-core machine), and concurrent requests already use
# the cores. Large batches keep LightGBM's own threading.
_SINGLE_THREAD_ROWS = 2_000
_LIGHTGBM = frozenset({"LGBMClassifier", "LGBMRegressor", "LGBMRanker"})


def _predict_kwargs(final: Any, n_rows: int) -> dict[str, Any]:
    if type(final).__name__ in _LIGHTGBM and n_rows <= _SINGLE_THREAD_ROWS:
        return {"num_threads": 1}
    return {}


def score(loaded: LoadedModel, frame: pd.DataFrame) -> tuple[list[Any], list[list[float]] | None]:
    """Predict labels (and class probabilities for classifiers) for ``frame``.

    Runs in a worker thread. A model that rejects the values it gets raises
    `DataError` (422) naming the model; that is a problem with the input, not
    a server fault.
    """
    model = loaded.model
    try:
        probabilities = None
        if loaded.classes is not None:
            head, final = loaded.steps if loaded.steps is not None else (None, model)
            features = head.transform(frame) if head is not None else frame
            proba = np.asarray(final.predict_proba(features, **_predict_kwargs(final, len(frame))), dtype=float)
            if type(final).__name__ in ARGMAX_CLASSIFIERS:
                labels = np.asarray(final.classes_, dtype=object)[np.argmax(proba, axis=1)]
            else:
                labels = final.predict(features)
            predictions = _plain(labels)
            probabilities = np.round(proba, 6).tolist()
        else:
            head, final = loaded.steps if loaded.steps is not None else (None, model)
            if head is not None and type(final).__name__ in _LIGHTGBM:
                predictions = _plain(final.predict(head.transform(frame), **_predict_kwargs(final, len(frame))))
            else:
                predictions = _plain(model.predict(frame))
    except MlpilotError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        logger.info("model %s rejected the input: %s", loaded.version.ref, exc)
        raise DataError(
            f"Model {loaded.version.ref} could not score these rows: {type(exc).__name__}: "
            f"{str(exc)[:300]}. Check the values against GET /v1/models/{loaded.name}."
        ) from None
    return predictions, probabilities


def probability_dicts(classes: tuple[Any, ...], probabilities: list[list[float]]) -> list[dict[str, float]]:
    keys = [str(c) for c in classes]
    return [dict(zip(keys, row, strict=False)) for row in probabilities]
