"""Class labels as a version records them (``info["classes"]``), and values matched to them by value.

A label is recorded as JSON keeps it: a bool stays a bool, a numpy integer is
the Python int it holds (``np.int64(1)`` was recorded as ``"1"`` before, since
it is no ``int``), any other object is its text. Values are matched to labels
by value, not by their text: ``0``, ``0.0`` and ``np.int64(0)`` are one class,
which their texts ("0", "0.0") are not, so a model trained on a float target
and one trained on its integers agree on their classes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


def recorded_label(value: Any) -> Any:
    """``value`` as ``info["classes"]`` records it: a bool, int, float or str.

    Examples
    --------
    >>> [recorded_label(v) for v in (np.int64(1), np.bool_(True), 0.5, "yes")]
    [1, True, 0.5, 'yes']
    """
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, bool | int | float | str) else str(value)


def label_key(value: Any) -> Any:
    """What a label compares by: integral numbers as ints (``1.0`` -> ``1``), numpy scalars as Python ones.

    Examples
    --------
    >>> label_key(0.0) == label_key(np.int64(0)) == 0, label_key(True), label_key(2.5), label_key("a")
    (True, True, 2.5, 'a')
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def class_positions(values: Iterable[Any], classes: Iterable[Any]) -> np.ndarray:
    """Each value's position in ``classes`` (-1: none), matched by `label_key`.

    A value of no label's value falls back to the text: a label recorded as
    text by an older version (``"1"`` for a numpy int), or a probability logged
    under a float's text (``"0.0"``), still matches its number.

    Examples
    --------
    >>> class_positions([1.0, 0, "1", "0.0", 2, None], [0, 1]).tolist()
    [1, 0, 1, 0, -1, -1]
    """
    labels = list(classes)
    by_value: dict[Any, int] = {}
    by_text: dict[str, int] = {}
    for i, c in enumerate(labels):
        key = label_key(c)
        by_value.setdefault(_hashable(key), i)
        by_text.setdefault(_text(key), i)
    out = []
    for v in values:
        key = label_key(v)
        if _missing(key):
            out.append(-1)
            continue
        found = by_value.get(_hashable(key))
        out.append(found if found is not None else by_text.get(_text(key), -1))
    return np.asarray(out, dtype=np.int64)


def same_classes(a: Iterable[Any], b: Iterable[Any]) -> bool:
    """Whether two class lists hold the same labels in the same order, compared by value."""
    left, right = list(a), list(b)
    return len(left) == len(right) and bool((class_positions(left, right) == np.arange(len(left))).all())


def _missing(key: Any) -> bool:
    return key is None or key is pd.NA or key is pd.NaT or (isinstance(key, float) and math.isnan(key))


def _text(key: Any) -> str:
    """A label's text, a number's written as `label_key` gives it ("1.0" -> "1")."""
    text = str(key)
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        return str(key)
    return key


__all__ = ["class_positions", "label_key", "recorded_label", "same_classes"]
