"""Out-of-fold target encoding of high-cardinality categorical columns.

Beside its integer code (native categorical handling), a categorical column
with at least ``min_categories`` distinct values gets its smoothed mean target
per category: one column for regression and binary targets, one per class for
multiclass. scikit-learn's ``TargetEncoder`` does the work; its
``fit_transform`` cross-fits (each training row's value comes from the other
folds' rows), so the model trained on these columns never sees a row's own
target in its features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpilot.features._supervised import inner_splitter, target_type


def fit_target_encoder(values: np.ndarray, y: np.ndarray, random_state: int) -> tuple[Any, np.ndarray]:
    """A fitted ``TargetEncoder`` for one column of strings (None: missing) and its cross-fitted values."""
    from sklearn.preprocessing import TargetEncoder

    kind = target_type(y)
    encoder = TargetEncoder(target_type=kind, cv=inner_splitter(y, kind, random_state))
    out = encoder.fit_transform(values.reshape(-1, 1), y)
    return encoder, np.asarray(out, dtype=float)


def encode(encoder: Any, values: np.ndarray) -> np.ndarray:
    """The fitted encodings of ``values`` (unseen categories get the mean target)."""
    return np.asarray(encoder.transform(values.reshape(-1, 1)), dtype=float)


def encoding_tables(encoder: Any) -> tuple[list[dict[str, float]], list[float], list[float]]:
    """Per output column: category to value, the value for a missing one, the value for an unseen one."""
    categories = encoder.categories_[0].tolist()
    means = np.atleast_1d(encoder.target_mean_).astype(float).tolist()
    tables, missing = [], []
    for k, encodings in enumerate(encoder.encodings_):
        table = {str(c): float(v) for c, v in zip(categories, encodings, strict=True) if c is not None}
        missing.append(next((float(v) for c, v in zip(categories, encodings, strict=True) if c is None), means[k]))
        tables.append(table)
    return tables, missing, means


def output_names(encoder: Any, column: str) -> list[str]:
    """Output names: ``col__target`` or ``col__target_<class>``."""
    if encoder.target_type_ == "multiclass":
        return [f"{column}__target_{c}" for c in encoder.classes_.tolist()]
    return [f"{column}__target"]
