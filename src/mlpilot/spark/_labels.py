"""A classifier's labels on the cluster: rows of a known class, and their class codes, matched by value.

The classes come from the driver sample (`mlpilot.tasks.encode_target`), so they
are Python values of the column's kind: bools for a boolean column, ints for a
long one, or for a double one of whole numbers (``prepare_target`` makes 0.0/1.0
ints). Matching by text would miss them: Spark writes a boolean as "true"
(Python: "True") and a double as "1.0" (the class: "1"), so every row would be
dropped. Spark compares the literals by value, coercing 1 to 1.0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot.registry._labels import class_positions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def of_known_class(frame: DataFrame, target: str, classes: list[Any] | tuple[Any, ...]) -> DataFrame:
    """The rows of ``frame`` whose ``target`` is one of ``classes`` (by value; nulls left out)."""
    from pyspark.sql import functions as F

    column = F.col(f"`{target}`")
    return frame.where(column.isNotNull() & column.isin(*classes))


def class_codes(values: pd.Series, classes: list[Any] | tuple[Any, ...]) -> np.ndarray:
    """Each value's position in ``classes`` as a float (NaN: no class), as the learners' labels."""
    codes = class_positions(values, classes).astype(float)
    codes[codes < 0] = np.nan
    return codes


__all__ = ["class_codes", "of_known_class"]
