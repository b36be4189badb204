"""Finding feature columns that give the target away: the one detector lives in `mlpilot.data`.

`train` (through `mlpilot.features.find_leaks`) and `profile` call the same
function, so they flag the same columns with the same numbers.
"""

from __future__ import annotations

from mlpilot.data._leakage import find_leaks

__all__ = ["find_leaks"]
