"""Deciding the task from the target and encoding the target for learners."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlpilot.exceptions import InvalidParameterError, TargetError

TASKS = ("binary", "multiclass", "regression")
_DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
# An integer target with more distinct values than this is treated as a quantity.
_MAX_INTEGER_CLASSES = 20


def default_metric(task: str) -> str:
    """The metric used when none is given: ROC AUC, log loss or RMSE."""
    return _DEFAULT_METRIC[task]


def detect_task(y: pd.Series, task: str | None = None) -> str:
    """Decide ``"binary"``, ``"multiclass"`` or ``"regression"`` for target ``y``.

    Strings, booleans and categories give classification; floats with
    non-integer values, and integers with many distinct values, give
    regression. An explicit ``task`` is checked against the values.

    Examples
    --------
    >>> detect_task(pd.Series(["yes", "no", "yes"]))
    'binary'
    >>> detect_task(pd.Series([0.5, 1.25, 3.0, 2.0]))
    'regression'
    """
    name = y.name if y.name is not None else "target"
    values = y.dropna()
    if values.empty:
        raise TargetError(f"The target column {name!r} has no non-missing values.")
    n_unique = int(values.nunique())
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if task is not None:
        if task not in TASKS:
            raise InvalidParameterError(f"Unknown task {task!r}. Accepted: {', '.join(TASKS)}.")
        if task == "regression" and not numeric:
            examples = ", ".join(repr(v) for v in values.astype(str).unique()[:3])
            raise TargetError(
                f"The target column {name!r} holds non-numeric values ({examples}); "
                "a regression target must be numbers. Use --task binary/multiclass "
                "or convert the column to numbers."
            )
        if n_unique < 2:
            raise TargetError(
                f"The target column {name!r} has a single value; there is nothing to learn."
            )
        if task == "binary" and n_unique != 2:
            raise TargetError(
                f"A binary task needs exactly 2 classes; the target column {name!r} has "
                f"{n_unique}. Use --task multiclass or leave --task out."
            )
        return task
    if n_unique < 2:
        raise TargetError(
            f"The target column {name!r} has a single value ({values.iloc[0]!r}); "
            "there is nothing to learn. Choose another target or add rows with other outcomes."
        )
    if not numeric:
        return "binary" if n_unique == 2 else "multiclass"
    if n_unique == 2:
        return "binary"
    as_float = values.astype(float)
    integral = bool(np.all(np.mod(as_float, 1) == 0))
    if integral and n_unique <= _MAX_INTEGER_CLASSES and n_unique < 0.5 * len(values):
        return "multiclass"
    return "regression"


@dataclass(frozen=True)
class TargetEncoding:
    """How original target values map to what learners see.

    ``classes`` holds the original labels, in the order of the probability
    columns; it is empty for regression.
    """

    task: str
    classes: tuple[object, ...]

    def encode(self, y: pd.Series) -> np.ndarray:
        if self.task == "regression":
            return y.to_numpy(dtype=float)
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[v] for v in y.tolist()], dtype=np.int64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[codes]


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def encode_target(y: pd.Series, task: str) -> tuple[np.ndarray, TargetEncoding]:
    """Encode ``y`` (no missing values) for ``task``; return codes and the encoding."""
    if task == "regression":
        try:
            values = pd.to_numeric(y, errors="raise").to_numpy(dtype=float)
        except (ValueError, TypeError) as exc:
            raise TargetError(
                f"The regression target {y.name!r} holds non-numeric values; convert it to numbers."
            ) from exc
        if not np.all(np.isfinite(values)):
            raise TargetError(f"The regression target {y.name!r} holds infinite values.")
        return values, TargetEncoding(task, ())
    classes = tuple(_plain(c) for c in sorted(pd.unique(y), key=lambda v: (str(type(v)), v)))
    encoding = TargetEncoding(task, classes)
    return encoding.encode(y.map(_plain)), encoding
