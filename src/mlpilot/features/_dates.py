"""Features of a date/time column.

Calendar parts (year, month, day, day of week, day of year, hour), cyclical
encodings (sine and cosine of the month, the day of week and the hour, so
December sits beside January), flags (weekend, first and last day of the
month) and the elapsed days since a reference fixed at fit (the earliest
training date), so a model sees the trend in one number. Parts that never vary
in the training rows (the hour of dates without times, the calendar of clock
times such as ``14:35``, read on one day) are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlpilot.data._times import elapsed_days, parse_times

_TAU = 2.0 * np.pi
PARTS = ("days", "year", "month", "day", "dow", "dayofyear", "weekend", "month_start", "month_end",
         "month_sin", "month_cos", "dow_sin", "dow_cos", "hour", "hour_sin", "hour_cos")


def as_datetime(series: pd.Series) -> pd.Series:
    """``series`` as naive datetimes (UTC for aware ones); unparseable values become NaT (`parse_times`)."""
    return parse_times(series)


def fit_date_parts(series: pd.Series) -> tuple[float, list[str]]:
    """The reference (days since 1970 of the earliest date; 0 if none) and the parts worth making: the
    elapsed days, and each other part that takes two values or more in ``series``."""
    dt = as_datetime(series)  # read once: date_parts takes datetimes as they are
    days = elapsed_days(dt)
    finite = days[np.isfinite(days)]
    reference = float(finite.min()) if finite.size else 0.0
    others = [p for p in PARTS if p != "days"]
    values = date_parts(dt, reference, others)
    varying = [p for j, p in enumerate(others) if len(np.unique(values[:, j][np.isfinite(values[:, j])])) > 1]
    return reference, ["days", *varying]


def date_parts(series: pd.Series, reference: float, parts: list[str]) -> np.ndarray:
    """The ``parts`` of ``series`` as float columns, NaN where a value is missing."""
    dt = as_datetime(series)
    accessor = dt.dt
    missing = dt.isna().to_numpy()

    def values(part: str) -> np.ndarray:
        if part == "days":
            return elapsed_days(dt) - reference
        if part in ("year", "month", "day", "hour"):
            return getattr(accessor, part).to_numpy(dtype=float, na_value=np.nan)
        if part in ("dow", "dayofyear"):
            attr = "day_of_week" if part == "dow" else "day_of_year"
            return getattr(accessor, attr).to_numpy(dtype=float, na_value=np.nan)
        if part == "weekend":
            return (accessor.day_of_week >= 5).to_numpy(dtype=float)
        if part in ("month_start", "month_end"):
            return getattr(accessor, f"is_{part}").to_numpy(dtype=float)
        base, fn = part.rsplit("_", 1)
        period = {"month": 12.0, "dow": 7.0, "hour": 24.0}[base]
        raw = values(base) - (1.0 if base == "month" else 0.0)
        return np.sin(_TAU * raw / period) if fn == "sin" else np.cos(_TAU * raw / period)

    out = np.column_stack([values(p) for p in parts]) if parts else np.zeros((len(dt), 0))
    out[missing] = np.nan
    return out
