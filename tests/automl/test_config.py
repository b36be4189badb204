"""TrainConfig: ``random_state`` (scikit-learn's name), with ``seed`` still read and accepted."""

from __future__ import annotations

import pytest

from mlpilot.automl import TrainConfig
from mlpilot.automl._config import make_config
from mlpilot.exceptions import InvalidParameterError


def test_random_state_is_the_field_and_what_is_persisted() -> None:
    config = make_config(random_state=5)
    dumped = config.model_dump(mode="json")
    assert dumped["random_state"] == 5 and "seed" not in dumped
    assert TrainConfig.model_validate(dumped) == config


def test_a_config_persisted_with_seed_still_loads() -> None:
    # what registries written before random_state hold in runs.config and a version's metadata
    old = {"version": 1, "time_budget": 60.0, "metric": None, "task": None, "seed": 3, "holdout": 0.2,
           "n_folds": None, "deterministic": True, "n_trials": 10, "drop_leaks": False, "families": None,
           "refit_full": True, "n_jobs": 2, "memory_fraction": None, "max_predict_ms": None, "report": True}
    config = TrainConfig.model_validate(old)
    assert config.random_state == 3
    assert config.seed == 3  # the read-only former name, for code still reading it


def test_make_config_takes_seed_as_the_former_name_without_a_warning() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make_config(seed=4) == make_config(random_state=4)


def test_seed_is_read_only() -> None:
    with pytest.raises((AttributeError, ValueError)):  # pydantic refuses it on a frozen model
        make_config().seed = 1  # type: ignore[misc]


def test_both_names_at_once_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match=r"both seed=1 and random_state=2.*pass only random_state"):
        make_config(seed=1, random_state=2)


@pytest.mark.parametrize("name", ["seed", "random_state"])
def test_a_negative_seed_is_refused_under_the_name_given(name: str) -> None:
    with pytest.raises(InvalidParameterError, match=rf"{name}: Input should be greater than or equal to 0 \(got -1\)"):
        make_config(**{name: -1})
