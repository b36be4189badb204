"""Shared type aliases."""

from __future__ import annotations

import os
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

PathLike: TypeAlias = str | os.PathLike[str]
ArrayLike: TypeAlias = npt.ArrayLike
FrameLike: TypeAlias = pd.DataFrame
JSONDict: TypeAlias = dict[str, Any]
FloatArray: TypeAlias = npt.NDArray[np.float64]
