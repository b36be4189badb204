"""The training run's configuration: one validated, frozen pydantic model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from mlpilot._config import build_settings
from mlpilot._config import parse_duration as _parse_duration
from mlpilot.exceptions import InvalidParameterError
from mlpilot.tasks import ThresholdRule


def parse_duration(value: float | int | str) -> float:
    """Seconds of a time budget from ``60``, ``"90s"``, ``"2m"`` or ``"1h"`` (`mlpilot._config.parse_duration`).

    Examples
    --------
    >>> parse_duration("2m"), parse_duration(30)
    (120.0, 30.0)
    """
    return _parse_duration(value, what="The time budget")


class TrainConfig(BaseModel):
    """How a training run is done; persisted with the run (``version`` 1).

    ``random_state`` seeds every random choice of the run (splits, tuner, learners). A
    config persisted before it was named so (``seed``) still loads; ``seed`` is also
    accepted as an input name and read back as a property.

    Examples
    --------
    >>> TrainConfig(seed=3).random_state, TrainConfig(random_state=3).model_dump()["random_state"]
    (3, 3)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 1
    time_budget: Annotated[float, Field(gt=0)] = 60.0
    metric: str | None = None
    task: str | None = None
    random_state: Annotated[int, Field(ge=0, validation_alias=AliasChoices("random_state", "seed"))] = 0
    holdout: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.2
    time_split: str | None = None  # a time column: the holdout is its latest rows
    weight_column: str | None = None  # a column of per-row weights (then not a feature)
    n_folds: Annotated[int, Field(ge=2, le=20)] | None = None
    deterministic: bool = False
    n_trials: Annotated[int, Field(ge=0)] = 10
    drop_leaks: bool = False
    families: tuple[str, ...] | None = None
    refit_full: bool = True
    n_jobs: Annotated[int, Field(ge=1)] = 2
    memory_fraction: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    max_predict_ms: Annotated[float, Field(gt=0.0)] | None = None
    report: bool = True
    threshold_metric: str | None = None  # binary tasks: what the decision threshold is chosen for (f1)
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None  # binary tasks: a fixed threshold
    # a stack beside the greedy ensemble: auto (timed runs), on, force (registered even if it loses), off
    stacking: Literal["auto", "on", "force", "off"] = "auto"
    # which level-2 layers a stack tries: both (chosen out of fold), the linear one, the feature stack
    stack_layer: Literal["auto", "linear", "features"] = "auto"

    @property
    def seed(self) -> int:
        """The former name of `random_state` (read-only)."""
        return self.random_state

    @property
    def budget_description(self) -> str:
        """What bounds the run, as the CLI, the model card and the report say it.

        A deterministic run is bounded by its work (the portfolio, then ``n_trials``
        tuner trials), never by the clock; any other run by its time budget.

        Examples
        --------
        >>> TrainConfig(deterministic=True, n_trials=6).budget_description
        '6 tuner trials after the portfolio, no time limit'
        >>> TrainConfig(time_budget="2m").budget_description
        'time budget 120s'
        """
        if self.deterministic:
            trials = "1 tuner trial" if self.n_trials == 1 else f"{self.n_trials} tuner trials"
            return f"{trials} after the portfolio, no time limit"
        return f"time budget {self.time_budget:g}s"

    @field_validator("time_budget", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> float:
        return parse_duration(value)

    @property
    def threshold_rule(self) -> ThresholdRule:
        """How a binary model's decision threshold is chosen: `threshold`, else `threshold_metric`, else F1."""
        if self.threshold is not None:
            return ThresholdRule.fixed(self.threshold)
        return ThresholdRule.parse(self.threshold_metric or "f1")

    @field_validator("threshold_metric")
    @classmethod
    def _threshold_metric(cls, value: str | None) -> str | None:
        return None if value is None else ThresholdRule.parse(value).describe()

    @model_validator(mode="after")
    def _one_threshold_option(self) -> TrainConfig:
        if self.threshold is not None and self.threshold_metric is not None:
            raise ValueError(
                f"got both threshold={self.threshold!r} and threshold_metric={self.threshold_metric!r}: "
                "pass the threshold to fix it, or the metric to choose it by, not both"
            )
        return self

    @field_validator("families")
    @classmethod
    def _families(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        from mlpilot.search import FAMILIES

        if value is None:
            return None
        unknown = [f for f in value if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown model families {unknown}; accepted: {', '.join(FAMILIES)}")
        missing = [f for f in value if not FAMILIES[f].installed]
        if missing:
            raise ValueError(
                f"model families {missing} need the {FAMILIES[missing[0]].requires!r} package: "
                "pip install 'mlpilot[boost]'"
            )
        return tuple(value)


def make_config(**kwargs: Any) -> TrainConfig:
    """Build a `TrainConfig`, turning validation errors into one clear message.

    ``seed=`` is taken as ``random_state=`` (the former name); passing both is refused.
    """
    if "seed" in kwargs and "random_state" in kwargs:
        raise InvalidParameterError(
            f"Invalid training configuration: got both seed={kwargs['seed']!r} and "
            f"random_state={kwargs['random_state']!r}; seed is the former name of random_state, pass only random_state."
        )
    return build_settings(TrainConfig, kwargs, "training configuration")
