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


# A target that is numbers except for a few strings ("n/a", "unknown", "?") is a
# quantity with junk in it, not hundreds of classes. Up to this share of its values
# is treated as missing (those rows are dropped, with a warning); more is refused.
MAX_JUNK_SHARE = 0.02
_MIN_NUMERIC_SHARE = 0.5
_SHOWN = 5


@dataclass(frozen=True)
class NonNumericValues:
    """The values that keep a mostly-numeric target from being numbers, and their rows."""

    target: str
    rows: tuple[object, ...]
    values: tuple[str, ...]
    n_values: int  # non-missing values in all

    @property
    def share(self) -> float:
        return len(self.rows) / self.n_values

    def listing(self) -> str:
        shown = ", ".join(f"{v!r} (row {r})" for v, r in list(zip(self.values, self.rows, strict=True))[:_SHOWN])
        more = f" and {len(self.rows) - _SHOWN} more" if len(self.rows) > _SHOWN else ""
        return shown + more

    def summary(self) -> str:
        n = len(self.rows)
        return (
            f"The target {self.target!r} is numeric except {n} value{'s' if n > 1 else ''} "
            f"of {self.n_values:,} ({self.share:.1%}): {self.listing()}"
        )


def _numbers(values: pd.Series) -> pd.Series:
    coerced = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")
    return coerced.where(np.isfinite(coerced.fillna(np.inf)))


def find_non_numeric(y: pd.Series) -> NonNumericValues | None:
    """The non-numeric values of a target that is otherwise a numeric quantity, or None.

    None unless ``y`` holds text, at least half of its values read as finite
    numbers, and those numbers alone would be a regression target. Rows are
    the labels of ``y``'s index (positions from 0 for a file read by mlpilot).

    Examples
    --------
    >>> junk = find_non_numeric(pd.Series([str(v / 4) for v in range(40)] + ["unknown"], name="price"))
    >>> junk.summary()
    "The target 'price' is numeric except 1 value of 41 (2.4%): 'unknown' (row 40)"
    """
    if pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y) or pd.api.types.is_datetime64_any_dtype(y):
        return None
    values = y.dropna()
    if values.empty:
        return None
    # parse each distinct value once: class labels have few
    distinct = pd.Series(pd.unique(values.astype(str)))
    parsed = _numbers(distinct)
    junk = set(distinct[parsed.isna()])
    if not junk:
        return None
    bad = values.astype(str).isin(junk)
    if 1 - float(bad.mean()) < _MIN_NUMERIC_SHARE:
        return None
    if _decide(_numbers(values[~bad])) != "regression":
        return None  # e.g. grades "1".."5" and "F": classes, not a quantity
    name = str(y.name) if y.name is not None else "target"
    return NonNumericValues(name, tuple(values.index[bad]), tuple(values[bad].astype(str)), len(values))


def drop_non_numeric_target(y: pd.Series, task: str | None = None) -> tuple[pd.Series, NonNumericValues | None]:
    """Treat the few junk values of a numeric target as missing.

    When ``task`` is None or ``"regression"`` and at most 2% of the values of
    an otherwise numeric target are not numbers (`find_non_numeric`), return
    the target as floats with those values missing, and what they were.
    Otherwise return ``y`` unchanged and None (`detect_task` then refuses a
    regression with the values named).
    """
    if task not in (None, "regression"):
        return y, None
    junk = find_non_numeric(y)
    if junk is None or junk.share > MAX_JUNK_SHARE:
        return y, None
    numbers = pd.Series(np.nan, index=y.index, name=y.name, dtype=float)
    present = y.notna()
    numbers[present] = _numbers(y[present])
    return numbers, junk


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
        junk = find_non_numeric(y) if task == "regression" else None
        if junk is not None:
            raise TargetError(
                f"{junk.summary()}. A regression target must be numbers: clean those values, or "
                f"remove their rows (up to {MAX_JUNK_SHARE:.0%} of them are treated as missing "
                "automatically)."
            )
        if task == "regression" and not numeric:
            numbers = _numbers(values)
            examples = ", ".join(repr(v) for v in values[numbers.isna()].astype(str).unique()[:3])
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
        junk = find_non_numeric(y)
        if junk is not None:
            raise TargetError(
                f"{junk.summary()}. Its numbers make it a regression target, but these values are "
                f"not numbers: clean them, or remove their rows (up to {MAX_JUNK_SHARE:.0%} of them "
                "are treated as missing automatically); or pass --task multiclass to treat every "
                "distinct value as a class."
            )
        return "binary" if n_unique == 2 else "multiclass"
    return _decide(values)


def _decide(values: pd.Series) -> str:
    """The task for numeric, non-missing ``values`` with at least two distinct values."""
    n_unique = int(values.nunique())
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
