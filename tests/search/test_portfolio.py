"""The portfolio: its zero-shot selection (on synthetic score matrices) and the committed file."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris

from mlpilot.exceptions import InvalidParameterError
from mlpilot.search import load_portfolio
from mlpilot.search._learners import FAMILIES, Learner
from mlpilot.search._portfolio import check_entry, normalised_errors, select_portfolio


def test_errors_are_rescaled_between_the_best_configuration_and_the_dummy() -> None:
    errors = np.array([[0.2, 0.3, np.nan, 0.9], [5.0, 4.0, 4.5, 3.0]])
    scaled = normalised_errors(errors, np.array([0.6, 3.5]))
    # table 1: best 0.2, dummy 0.6; a failure counts as the dummy, worse than the dummy is clipped to 1
    np.testing.assert_allclose(scaled[0], [0.0, 0.25, 1.0, 1.0])
    # table 2: its best (3.0) is the only one beating the dummy (3.5)
    np.testing.assert_allclose(scaled[1], [1.0, 1.0, 1.0, 0.0])
    with pytest.raises(InvalidParameterError, match="one value per table"):
        normalised_errors(errors, np.array([0.6]))


def test_greedy_selection_takes_the_generalist_first_then_what_covers_the_rest() -> None:
    # a: best on tables 0-1, c: good everywhere, b: best on tables 2-3, d: never useful, e: b's twin at more cost
    matrix = np.array([
        [0.0, 1.0, 0.3, 0.9, 1.0],
        [0.0, 1.0, 0.3, 0.9, 1.0],
        [1.0, 0.0, 0.3, 0.9, 0.0],
        [1.0, 0.0, 0.3, 0.9, 0.0],
    ])
    choice = select_portfolio(matrix, families=["lgb", "cat", "lin", "knn", "cat"], size=3,
                              costs=[1.0, 1.0, 0.1, 0.5, 4.0])
    # c first (mean 0.3), then a (tables 0-1 to 0: 0.15), then b over its costlier twin e (to 0)
    assert choice.order[:3] == [2, 0, 1]
    assert choice.scores[:3] == pytest.approx([0.3, 0.15, 0.0])
    assert choice.reasons == ["greedy", "greedy", "greedy", "family"]
    assert choice.order[3] == 3  # knn had no greedy place: its best configuration is added for diversity


def test_greedy_selection_stops_when_nothing_gains_and_fills_each_missing_family() -> None:
    matrix = np.array([[0.0, 0.5, 0.8, 0.6], [0.0, 0.5, 0.2, 0.3]])
    choice = select_portfolio(matrix, families=["a", "a", "b", "c"], size=4)
    # a's first configuration is best everywhere: nothing gains after it; b and c follow, best family first
    assert choice.order == [0, 3, 2]
    assert choice.reasons == ["greedy", "family", "family"]
    with pytest.raises(InvalidParameterError, match="one value per configuration"):
        select_portfolio(matrix, families=["a"], size=2)


def test_an_entry_outside_its_space_is_refused_with_the_range() -> None:
    space = FAMILIES["lightgbm"].search_space()
    check_entry({"name": "ok", "family": "lightgbm", "params": {"num_leaves": 31, "extra_trees": True}}, space)
    with pytest.raises(InvalidParameterError, match=r"num_leaves=1000 is outside .*int in \[4, 256\]"):
        check_entry({"name": "big", "family": "lightgbm", "params": {"num_leaves": 1000}}, space)
    with pytest.raises(InvalidParameterError, match="'depth' is not in the lightgbm search space"):
        check_entry({"name": "typo", "family": "lightgbm", "params": {"depth": 6}}, space)
    with pytest.raises(InvalidParameterError, match="has no 'params'"):
        check_entry({"name": "bare", "family": "lightgbm"}, space)


@pytest.mark.parametrize("task", ["multiclass", "regression"])  # binary reads the multiclass list
def test_the_committed_portfolio_loads_and_every_entry_fits_its_family(task: str) -> None:
    entries = load_portfolio(task)
    assert len({e["name"] for e in entries}) == len(entries) >= 5
    for name, data in (("linear", "text"), ("lightgbm", "boosted")):  # text-first and tuner need them
        assert any(e["family"] == name for e in entries), f"no {name} entry ({data})"
    X, y = load_diabetes(return_X_y=True) if task == "regression" else load_iris(return_X_y=True)
    rows = np.random.default_rng(0).permutation(len(y))[:60]  # a small real table: the fits check the parameters
    X, y = X[rows], y[rows]
    for entry in entries:
        family = FAMILIES[entry["family"]]
        check_entry(entry, family.search_space())
        if task not in family.tasks or not family.installed:
            continue
        learner = Learner(family=entry["family"], task=task, params={**entry["params"], "n_estimators": 3},
                          n_classes=len(np.unique(y)) if task != "regression" else 2, n_jobs=1)
        learner.fit(X, y)
        values = learner.predict_values(X[:5])
        assert np.isfinite(values).all()
