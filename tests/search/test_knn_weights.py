"""kNN with sample weights: each neighbour's inverse-distance vote times its training row's weight."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_wine
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.preprocessing import StandardScaler

from mlpilot.automl import train
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version, predict_payload
from mlpilot.runtime._compile_final import EstimatorFinal, LearnerFinal, compile_final
from mlpilot.search import Learner
from mlpilot.search._knn import WeightedKNeighborsClassifier, WeightedKNeighborsRegressor


def _wine() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_equal_weights_give_scikit_learns_distance_weighted_answers() -> None:
    X, y = _wine()
    queries = np.vstack([X[:40], X[:40] + 0.05])  # the training rows themselves (distance 0) and rows near them
    for weight in (1.0, 3.5):
        ours = WeightedKNeighborsClassifier(n_neighbors=7, weights="distance").fit(X, y, np.full(len(y), weight))
        theirs = KNeighborsClassifier(n_neighbors=7, weights="distance").fit(X, y)
        np.testing.assert_allclose(ours.predict_proba(queries), theirs.predict_proba(queries), rtol=1e-12)
        np.testing.assert_array_equal(ours.predict(queries), theirs.predict(queries))
    Xr, yr = load_diabetes(return_X_y=True)
    ours_r = WeightedKNeighborsRegressor(n_neighbors=9, weights="distance").fit(Xr, yr, np.full(len(yr), 2.0))
    theirs_r = KNeighborsRegressor(n_neighbors=9, weights="distance").fit(Xr, yr)
    rows = np.vstack([Xr[:30], Xr[:30] * 1.01])
    np.testing.assert_allclose(ours_r.predict(rows), theirs_r.predict(rows), rtol=1e-12)


def test_a_heavy_row_outvotes_closer_light_ones() -> None:
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    y = np.array(["a", "a", "b", "b"])
    query = np.array([[1.5]])  # neighbours (k=3): 1 and 2 at 0.5, 0 at 1.5
    plain = WeightedKNeighborsClassifier(n_neighbors=3, weights="distance").fit(X, y)
    a, b = 2 + 1 / 1.5, 2.0
    np.testing.assert_allclose(plain.predict_proba(query), [[a / (a + b), b / (a + b)]])
    heavy = WeightedKNeighborsClassifier(n_neighbors=3, weights="distance").fit(X, y, [1.0, 1.0, 5.0, 1.0])
    np.testing.assert_allclose(heavy.predict_proba(query), [[a / (a + 10), 10 / (a + 10)]])
    assert heavy.predict(query).tolist() == ["b"] and plain.predict(query).tolist() == ["a"]
    # regression: the weighted average of the neighbours' values, each weight 1/distance times the row's weight
    values = np.array([0.0, 10.0, 20.0, 100.0])
    regressor = WeightedKNeighborsRegressor(n_neighbors=3, weights="distance").fit(X, values, [3.0, 1.0, 1.0, 1.0])
    votes = np.array([2.0, 2.0, 3 / 1.5])
    np.testing.assert_allclose(regressor.predict(query), [(votes @ [10.0, 20.0, 0.0]) / votes.sum()])


def test_zero_weights_and_exact_matches() -> None:
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    # every neighbour of weight 0: the plain inverse-distance vote
    model = WeightedKNeighborsClassifier(n_neighbors=2, weights="distance").fit(X, y, [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(model.predict_proba([[0.25]]), [[1.0, 0.0]])
    # a query on a training row: that row alone votes (as scikit-learn's distance weights), times its weight
    np.testing.assert_allclose(model.predict_proba([[2.0]]), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        WeightedKNeighborsClassifier(n_neighbors=2, weights="distance").fit(X, y, [1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(3,\), expected \(4,\)"):
        WeightedKNeighborsRegressor(n_neighbors=2, weights="distance").fit(X, y, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="weights='distance'"):
        WeightedKNeighborsClassifier(n_neighbors=2).fit(X, y, [1.0] * 4)


def test_the_knn_family_honours_weights_and_keeps_the_compiled_form_without() -> None:
    X, y = _wine()
    weights = np.where(y == 2, 6.0, 1.0)
    weighted = Learner(family="knn", task="multiclass", params={"n_neighbors": 15}, n_classes=3).fit(X, y, sample_weight=weights)
    plain = Learner(family="knn", task="multiclass", params={"n_neighbors": 15}, n_classes=3).fit(X, y)
    ones = Learner(family="knn", task="multiclass", params={"n_neighbors": 15}, n_classes=3).fit(X, y, sample_weight=np.ones(len(y)))
    queries = X + 0.3
    assert isinstance(weighted.estimator_, WeightedKNeighborsClassifier)
    assert type(plain.estimator_) is KNeighborsClassifier
    np.testing.assert_allclose(ones.predict_values(queries), plain.predict_values(queries), rtol=1e-12)
    shift = weighted.predict_values(queries)[:, 2] - plain.predict_values(queries)[:, 2]
    assert shift.min() >= -1e-12 and shift.max() > 0.05  # class 2 weighs six times as much: it only gains
    compiled = compile_final(weighted, classifier=True)  # its own predict methods behind the learner's hook
    assert isinstance(compiled, LearnerFinal) and isinstance(compiled.inner, EstimatorFinal)
    np.testing.assert_allclose(compiled.values(queries), weighted.predict_values(queries), rtol=1e-12)


def test_a_weighted_knn_trains_registers_and_serves(tmp_path: object) -> None:
    X, y = load_wine(return_X_y=True, as_frame=True)
    frame = X.assign(kind=y.map({0: "a", 1: "b", 2: "c"}))
    weights = np.where(frame["alcohol"] > frame["alcohol"].median(), 3.0, 1.0)
    workspace = Workspace.open(tmp_path)  # type: ignore[arg-type]
    run = train(frame, "kind", name="wine", workspace=workspace, families=("knn",), sample_weight=weights,
                deterministic=True, n_trials=0, report=False, holdout=0.0)
    assert "knn" in set(run.leaderboard()["name"])
    assert not any(n.startswith("left out knn") for n in run.outcome.notes)
    registry = Registry(Workspace.open(tmp_path))  # type: ignore[arg-type]
    try:
        loaded = load_version(registry, registry.get_version("wine"))
    finally:
        registry.close()
    rows = frame.drop(columns="kind").head(25)
    expected = loaded.model.predict_proba(rows)
    answer, _prepared, _predictions = predict_payload(loaded, {"rows": rows.to_dict("records")}, 1000)
    got = pd.DataFrame(answer["probabilities"])[[str(c) for c in loaded.model.classes_]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)  # the answer rounds to 6 decimals
