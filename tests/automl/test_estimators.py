from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from mlpilot.automl import AutoClassifier, AutoRegressor, _estimators

# A fast configuration: no clock (so checks are reproducible), one cheap family.
_FAST = {"deterministic": True, "n_trials": 0, "families": ("linear",), "holdout": 0.0}

# Checks whose premise mlpilot rejects on purpose.
_EXPECTED_FAILURES = {
    "check_estimators_nan_inf": "missing values are valid input by design (native handling)",
    "check_dtype_object": "object columns are categorical features by design",
    # weights are honoured by every fit and score, but the folds and holdout split rows: a row of weight 2
    # is not two rows in two folds, nor a row of weight 0 a row left out (tested per family instead)
    "check_sample_weight_equivalence_on_dense_data": "a weight of 2 is not a repeated row to the folds",
    "check_sample_weight_equivalence_on_sparse_data": "a weight of 2 is not a repeated row to the folds",
    "check_sample_weights_invariance": "a weight of 0 is not a removed row to the folds",
    # as scikit-learn's own TunedThresholdClassifierCV: predict is not argmax(predict_proba)
    "check_classifiers_train": "binary labels are at the decision threshold chosen on out-of-fold rows, not at 0.5",
}


def _expected(estimator: object) -> dict[str, str]:
    return _EXPECTED_FAILURES


@parametrize_with_checks(
    [AutoClassifier(**_FAST), AutoRegressor(**_FAST)],  # type: ignore[arg-type]
    expected_failed_checks=_expected,
)
def test_sklearn_compatible(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def test_get_set_params_and_clone() -> None:
    clf = AutoClassifier(time_budget=5, families=("lightgbm",))
    assert clf.get_params()["time_budget"] == 5
    cloned = clone(clf.set_params(time_budget=7))
    assert cloned.get_params()["time_budget"] == 7 and cloned.get_params()["families"] == ("lightgbm",)


def test_classifier_on_a_real_frame(churn: pd.DataFrame) -> None:
    data = churn.sample(600, random_state=0)
    X, y = data.drop(columns="churn"), data["churn"]
    clf = AutoClassifier(deterministic=True, n_trials=0, families=("lightgbm", "linear")).fit(X, y)
    assert list(clf.classes_) == ["no", "yes"]
    assert clf.predict_proba(X.head(5)).shape == (5, 2)
    assert 0.8 < clf.score(X, y) <= 1.0
    assert {"name", "cv_roc_auc"} <= set(clf.leaderboard_.columns)


def test_regressor_numpy_input() -> None:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    reg = AutoRegressor(**_FAST).fit(X, y)  # type: ignore[arg-type]
    assert reg.predict(X[:5]).shape == (5,)
    assert reg.score(X, y) > 0.4
    assert np.isfinite(reg.metrics_["cv_rmse"])


def _classes_table(n_classes: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n_classes), per_class)
    X = np.column_stack([y + rng.normal(0, 1.0, len(y)), rng.normal(size=len(y))])  # no leak
    return X, y


def test_equal_sample_weight_is_honoured_without_a_warning() -> None:
    X, y = _classes_table(2, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = AutoClassifier(**_FAST).fit(X, y, sample_weight=np.full(len(y), 2.0))
    np.testing.assert_array_equal(clf.predict(X), AutoClassifier(**_FAST).fit(X, y).predict(X))


def test_classifier_runs_the_search_once_for_integer_labels_with_many_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 25 integer classes: a quantity to the task rule, classes to a classifier
    X, y = _classes_table(25, 6)
    calls: list[str | None] = []
    engine = _estimators.fit_tabular

    def counting(data: pd.DataFrame, target: str, config: Any) -> Any:
        calls.append(config.task)
        return engine(data, target, config)

    monkeypatch.setattr(_estimators, "fit_tabular", counting)
    clf = AutoClassifier(**_FAST).fit(X, y)
    assert calls == ["multiclass"]
    assert clf.task_ == "multiclass" and list(clf.classes_) == list(range(25))


def test_classifier_of_two_classes_is_binary_in_one_search(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _classes_table(2, 30)
    calls: list[str | None] = []
    engine = _estimators.fit_tabular
    monkeypatch.setattr(_estimators, "fit_tabular",
                        lambda data, target, config: calls.append(config.task) or engine(data, target, config))
    assert AutoClassifier(**_FAST).fit(X, y).task_ == "binary"
    assert calls == ["binary"]


def test_random_state_seeds_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _classes_table(2, 30)
    seen: list[int] = []
    engine = _estimators.fit_tabular
    monkeypatch.setattr(_estimators, "fit_tabular",
                        lambda data, target, config: seen.append(config.random_state) or engine(data, target, config))
    AutoRegressor(**_FAST, random_state=7).fit(X, y)
    AutoRegressor(**_FAST, random_state=None).fit(X, y)  # not an int: the default seed
    assert seen == [7, 0]
