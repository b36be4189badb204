"""One tuner for tabular and recommender families, and the family notion they share."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mlpilot.tune import Budget
from mlpilot.tune._family import Family
from mlpilot.tune._tuner import Tuner, has_parameters


def _space(trial: Any) -> dict[str, Any]:
    return {"k": trial.suggest_int("k", 1, 50, log=True), "a": trial.suggest_float("a", 0.0, 1.0)}


def _score(params: dict[str, Any]) -> float:
    return -abs(params["k"] - 7) - abs(params["a"] - 0.2)


def test_a_define_by_run_space_proposes_what_a_seeded_optuna_study_does() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=5, n_startup_trials=4))
    study.enqueue_trial({"k": 3, "a": 0.5})
    tuner = Tuner(_space, random_state=5, initial=[{"k": 3, "a": 0.5}], n_startup_trials=4)
    for _ in range(9):
        trial, ours = tuner.ask()
        theirs_trial = study.ask()
        theirs = _space(theirs_trial)
        assert ours == theirs
        tuner.tell(trial, _score(ours))
        study.tell(theirs_trial, _score(theirs))
    assert ours != {"k": 3, "a": 0.5}  # the initial point came first, then the sampler


def test_failed_trials_are_recorded_and_the_search_goes_on() -> None:
    tuner = Tuner({"x": ("float", 0.0, 1.0, False), "c": ("cat", ("a", "b"))}, random_state=0,
                  initial=[{"x": 0.25, "c": "b", "unknown": 1}])
    trial, params = tuner.ask()
    assert params == {"x": 0.25, "c": "b"}  # keys outside the space are dropped from initial points
    tuner.tell(trial, None)
    for _ in range(3):
        trial, params = tuner.ask()
        assert 0.0 <= params["x"] <= 1.0
        tuner.tell(trial, float(params["x"]))
    states = [t.state.name for t in tuner._study.trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]


def test_spaces_with_nothing_to_tune_are_recognised() -> None:
    from mlpilot.recommend._models import EASE, MostPopular

    assert not has_parameters(None) and not has_parameters({}) and not has_parameters(MostPopular.search_space)
    assert has_parameters(EASE.search_space) and has_parameters({"x": ("int", 1, 2, False)})


def test_tabular_and_recommender_families_share_one_notion() -> None:
    from mlpilot.recommend._tuning import FAMILIES as RECOMMENDERS
    from mlpilot.search import FAMILIES as TABULAR

    for family in [*TABULAR.values(), *RECOMMENDERS]:
        assert isinstance(family, Family) and family.cost >= 0 and isinstance(family.installed, bool)
        assert isinstance(family.search_space(), dict) or callable(family.search_space())
    assert TABULAR["lightgbm"].search_space() is TABULAR["lightgbm"].space
    ease = next(f for f in RECOMMENDERS if f.name == "ease")
    assert ease.budget_share == ease.cost == 0.2  # the former name still answers
    missing = dataclasses.replace(ease, requires="mlpilot_no_such_package")
    assert not missing.installed


def test_a_phase_share_ends_at_its_fraction_and_never_after_the_budget() -> None:
    now = [10.0]
    budget = Budget(100.0, 0.0, lambda: now[0])
    tuning = budget.share(0.55)
    assert tuning.deadline == pytest.approx(55.0) and tuning.left() == pytest.approx(45.0)
    assert budget.until(60.0).share(0.55).deadline == pytest.approx(40.0)  # the reserve still holds
    now[0] = 60.0
    assert tuning.cap(0.5) == 0.0 and budget.cap(0.5) == pytest.approx(20.0)
    assert Budget(None).share(0.5).left() == float("inf")
    with pytest.raises(AttributeError):
        tuning.seconds = 1.0  # type: ignore[misc]


def test_seed_is_a_deprecated_alias_of_random_state() -> None:
    space = {"x": ("float", 0.0, 1.0, False)}
    with pytest.warns(FutureWarning, match="random_state"):
        old = Tuner(space, seed=7, n_startup_trials=1)
    new = Tuner(space, random_state=7, n_startup_trials=1)
    other = Tuner(space, random_state=8, n_startup_trials=1)
    assert old.ask()[1] == new.ask()[1] != other.ask()[1]
