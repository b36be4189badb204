from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mlpilot.exceptions import InvalidParameterError, NotFittedError, ResourceLimitError
from mlpilot.recommend import (
    ALS,
    BPR,
    EASE,
    Blend,
    ItemKNN,
    MostPopular,
    RP3Beta,
    prepare_interactions,
)
from mlpilot.registry import Registry


@pytest.fixture(scope="module")
def X(ml_small: pd.DataFrame) -> sp.csr_matrix:
    data = prepare_interactions(ml_small, user="userId", item="movieId", rating="rating")
    return data.matrix(positives_only=True)


MODELS = [
    MostPopular(),
    ItemKNN(similarity="cosine", n_neighbors=50),
    ItemKNN(similarity="bm25", n_neighbors=50),
    RP3Beta(),
    EASE(l2=100.0),
    ALS(factors=16, iterations=5),
    BPR(factors=16, iterations=20),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: repr(m))
def test_models_score_and_are_deterministic(model: object, X: sp.csr_matrix) -> None:
    from sklearn.base import clone

    first = clone(model).fit(X)
    second = clone(model).fit(X)
    users = np.arange(5)
    scores = first.score(X[users], users)
    assert scores.shape == (5, X.shape[1]) and np.isfinite(scores).all()
    np.testing.assert_array_equal(scores, second.score(X[users], users))
    sims = first.similar_scores(np.array([0, 3]))
    assert sims.shape == (2, X.shape[1])


def test_models_beat_random_on_training_reconstruction(X: sp.csr_matrix) -> None:
    # sanity: a user's own items score above average for the learned models
    for model in (EASE(l2=50.0).fit(X), RP3Beta().fit(X), ALS(factors=16).fit(X)):
        scores = model.score(X[:20], np.arange(20))
        mine = np.asarray(scores[X[:20].toarray() > 0]).mean()
        assert mine > scores.mean()


def test_fold_in_matches_known_user_ranking(X: sp.csr_matrix) -> None:
    model = ALS(factors=16, iterations=10).fit(X)
    user = np.array([3])
    known = model.score(X[user], user)
    folded = model.score(X[user], np.array([-1]))
    top_known = set(np.argsort(-known[0])[:20])
    top_folded = set(np.argsort(-folded[0])[:20])
    assert len(top_known & top_folded) >= 10


def test_ease_refuses_too_many_items(X: sp.csr_matrix) -> None:
    with pytest.raises(ResourceLimitError, match=r"EASE holds dense.*item-kNN or RP3beta"):
        EASE(max_items=10).fit(X)


def test_unfitted_model_is_a_clear_error(X: sp.csr_matrix) -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        EASE().score(X[:1])


def test_blend_round_trips_through_the_registry(X: sp.csr_matrix, registry: Registry) -> None:
    blend = Blend(members=[EASE(l2=100.0), ALS(factors=8, iterations=3)], weights=[1.0, 0.5]).fit(X)
    mv = registry.register_model("blend", blend, kind="recommender")
    loaded = registry.load_model(mv)
    users = np.arange(3)
    np.testing.assert_allclose(loaded.score(X[users], users), blend.score(X[users], users))


@pytest.mark.parametrize("shape", [(40, 300), (300, 40)], ids=["fewer-users-woodbury", "fewer-items-cholesky"])
def test_ease_matches_the_textbook_inverse(shape: tuple[int, int], global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    dense = (rng.random(shape) < 0.08) * rng.integers(1, 6, size=shape) / 5.0
    dense[:3] = 0.0  # users without interactions
    X = sp.csr_matrix(dense, dtype=np.float32)
    model = EASE(l2=7.0).fit(X)
    active = np.flatnonzero(dense.sum(axis=0) > 0)
    G = dense[:, active].T @ dense[:, active] + 7.0 * np.eye(len(active))
    P = np.linalg.inv(G)
    expected = P / -np.diag(P)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weights_, expected, atol=1e-5)
    np.testing.assert_array_equal(model.active_items_, active)


@pytest.mark.parametrize("l2", [0.0, -1.0, float("nan")])
def test_ease_needs_a_positive_l2(X: sp.csr_matrix, l2: float) -> None:
    with pytest.raises(InvalidParameterError, match=r"'l2' parameter of EASE must be a float in \(0, inf\)"):
        EASE(l2=l2).fit(X)


@pytest.mark.parametrize("cls", [ALS, BPR])
def test_factor_models_leave_light_interactions_out(cls: type, X: sp.csr_matrix) -> None:
    light = sp.random(*X.shape, density=0.01, random_state=0, format="csr", dtype=np.float32)
    light.data[:] = 0.2
    light = sp.csr_matrix(light - light.multiply(X > 0))  # only where X has nothing
    noisy = sp.csr_matrix(X + light)
    assert noisy.nnz > X.nnz
    params = dict(factors=8, iterations=3)
    clean = cls(**params).fit(X)
    filtered = cls(**params, min_weight=0.5).fit(noisy)
    np.testing.assert_allclose(filtered.item_factors_, clean.item_factors_, rtol=1e-5, atol=1e-6)
    unfiltered = cls(**params).fit(noisy)
    assert not np.allclose(unfiltered.item_factors_, clean.item_factors_)
    # fold-in ignores them too
    rows = np.arange(3)
    np.testing.assert_allclose(
        filtered.score(noisy[rows], np.full(3, -1)), filtered.score(X[rows], np.full(3, -1)), rtol=1e-5, atol=1e-6
    )
