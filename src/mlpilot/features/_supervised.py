"""Cross-fitted helpers shared by the features that learn from the target.

A feature built from the target (a text column's linear model, a category's
mean target) must not be computed on the rows it is then used to train on,
or the model downstream learns from a value that already knows the answer.
`cross_fit` gives each training row the prediction of a model fitted on the
other folds, the standard stacking recipe; the model fitted on all the
training rows is what `transform` uses on new rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

#: Inner folds of every cross-fitted feature.
INNER_FOLDS = 5


def target_type(y: np.ndarray) -> str:
    """``"continuous"`` for a float target, else ``"binary"`` or ``"multiclass"`` by its classes.

    mlpilot's `encode_target` gives floats for regression and integer codes for
    classification, so the dtype decides (an integer-valued regression target is
    still floats there).
    """
    y = np.asarray(y)
    if y.dtype.kind == "f":
        return "continuous"
    return "binary" if len(np.unique(y)) <= 2 else "multiclass"


def inner_splitter(y: np.ndarray, kind: str, random_state: int) -> Any:
    """`INNER_FOLDS` shuffled folds over ``y`` (stratified for classes when every class allows it)."""
    n_splits = max(2, min(INNER_FOLDS, len(y)))
    if kind != "continuous":
        counts = np.bincount(np.unique(y, return_inverse=True)[1])
        if counts.min() >= n_splits:
            return StratifiedKFold(n_splits, shuffle=True, random_state=random_state)
    return KFold(n_splits, shuffle=True, random_state=random_state)


def cross_fit(
    fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], y: np.ndarray, kind: str, random_state: int
) -> np.ndarray:
    """Out-of-fold predictions: ``fit_predict(train_rows, predict_rows)`` over `inner_splitter`'s folds.

    ``fit_predict`` fits on ``train_rows`` and returns a 2-D array for ``predict_rows``.
    """
    out: np.ndarray | None = None
    for train_rows, predict_rows in inner_splitter(y, kind, random_state).split(np.zeros(len(y)), y):
        values = fit_predict(train_rows, predict_rows)
        if out is None:
            out = np.zeros((len(y), values.shape[1]))
        out[predict_rows] = values
    assert out is not None
    return out
