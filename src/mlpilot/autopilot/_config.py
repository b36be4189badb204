"""The watcher's configuration: one validated, frozen pydantic model."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlpilot._config import build_settings
from mlpilot.automl import parse_duration

TRIGGERS = ("new-data", "schedule", "drift", "decay")
#: Below this wall-clock budget no retrain is tried (the search needs a few fits to mean anything).
MIN_TIME_BUDGET = 10.0


class WatchConfig(BaseModel):
    """How the watch loop decides, retrains and promotes.

    ``on`` lists the triggers (``new-data``, ``schedule``, ``drift``, ``decay``);
    ``every`` is the schedule's period and the loop's, in seconds (or ``"1h"``).
    A routine retrain must be significantly better than the champion
    (superiority at level ``alpha``); when the champion decays, no worse within
    ``margin`` is enough (non-inferiority). With ``shadow``, a challenger that
    is kept scores the champion's live traffic in the background and is
    promoted on live evidence once labels arrive. With ``time_column``, a
    retrain is trained on the rows up to a cut and judged on the newest fresh
    rows after it (neither model saw them), instead of a random holdout.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str | None = None
    on: tuple[str, ...] = ("new-data",)
    every: float = 3600.0
    time_budget: float = 300.0
    deterministic: bool = False
    n_trials: Annotated[int, Field(ge=0)] = 10
    families: tuple[str, ...] | None = None
    random_state: Annotated[int, Field(ge=0)] = 0
    margin: Annotated[float, Field(ge=0.0)] = 0.005
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.05
    min_new_rows: Annotated[int, Field(ge=1)] = 30
    calibration_tolerance: Annotated[float, Field(ge=0.0)] | None = 0.01
    max_predict_ms: Annotated[float, Field(gt=0.0)] | None = None
    max_artifact_mb: Annotated[float, Field(gt=0.0)] | None = None
    lease_ttl: Annotated[float, Field(gt=0.0)] = 120.0
    monitor_window: str | None = None
    shadow: bool = False
    time_column: str | None = None

    @field_validator("every", "time_budget", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("on", mode="before")
    @classmethod
    def _triggers(cls, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else list(value)
        names = [t.strip() for item in items for t in str(item).split(",") if t.strip()]
        unknown = [t for t in names if t not in TRIGGERS]
        if unknown or not names:
            raise ValueError(f"unknown trigger(s) {unknown or names}; accepted: {', '.join(TRIGGERS)}")
        return tuple(dict.fromkeys(names))


def make_watch_config(**kwargs: Any) -> WatchConfig:
    """Build a `WatchConfig`, turning validation errors into one clear message."""
    return build_settings(WatchConfig, kwargs, "watch configuration")
