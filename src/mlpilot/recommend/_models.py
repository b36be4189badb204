"""Recommender models on a users x items sparse matrix.

Every model follows one contract: ``fit(X)`` on a CSR matrix of interaction
weights, then ``score(H)`` returns dense scores (one row per history row of
``H``, one column per item). Scoring from a history rather than from a user
index makes fold-in (recommending from a few items given in a request)
the same code path as recommending for a known user. Models store plain numpy
and scipy arrays only, so they serialise with skops and score fast.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from mlpilot.exceptions import InvalidParameterError, NotFittedError, ResourceLimitError

logger = logging.getLogger(__name__)

# Dense EASE needs a few n_items^2 float64 matrices.
EASE_MAX_ITEMS = 20_000


class BaseRecommender(BaseEstimator):  # type: ignore[misc]
    """Shared behaviour: fitted check, item similarity fallback."""

    name = "base"

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call 'fit' with an interaction "
                "matrix first."
            )

    def fit(self, X: sp.csr_matrix) -> BaseRecommender:
        raise NotImplementedError

    def score(self, H: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        """Scores for each history row of ``H``; ``users`` are their training rows, if any."""
        raise NotImplementedError

    def similar_scores(self, items: np.ndarray) -> np.ndarray:
        """Similarity of each item in ``items`` to every item (dense rows)."""
        self._check_fitted()
        norms = np.sqrt(np.asarray(self.X_.multiply(self.X_).sum(axis=0))).ravel()
        norms[norms == 0] = 1.0
        cols = self.X_[:, items].T.tocsr()
        sims = np.asarray((cols @ self.X_).todense(), dtype=np.float32)
        return sims / norms[items, None] / norms[None, :]


def _top_k_per_row(S: sp.csr_matrix | np.ndarray, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row; the diagonal is removed first."""
    dense = np.asarray(S.todense() if isinstance(S, sp.spmatrix) else S, dtype=np.float32)
    np.fill_diagonal(dense, 0.0)
    n = dense.shape[0]
    k = min(k, n - 1) if n > 1 else 1
    idx = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    vals = dense[rows, idx.ravel()]
    out = sp.csr_matrix((vals, (rows, idx.ravel())), shape=dense.shape, dtype=np.float32)
    out.eliminate_zeros()
    return out


class MostPopular(BaseRecommender):
    """Items ranked by the number of users who interacted with them."""

    name = "most_popular"

    def fit(self, X: sp.csr_matrix) -> MostPopular:
        self.X_ = sp.csr_matrix(X, dtype=np.float32)
        self.popularity_ = np.asarray((X > 0).sum(axis=0), dtype=np.float32).ravel()
        self.n_items_ = X.shape[1]
        return self

    def score(self, H: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        return np.broadcast_to(self.popularity_, (H.shape[0], self.n_items_)).copy()

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {}


def bm25_weight(X: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """BM25 weighting of a users x items matrix, users treated as documents' terms."""
    X = sp.coo_matrix(X, dtype=np.float32)
    n_items = X.shape[1]
    idf = np.log(n_items / (1.0 + np.bincount(X.row, minlength=X.shape[0]))).astype(np.float32)
    idf = np.maximum(idf, 0.0)
    item_len = np.bincount(X.col, minlength=n_items).astype(np.float32)
    avg = item_len.mean() if item_len.mean() > 0 else 1.0
    length_norm = (1.0 - b) + b * item_len / avg
    data = X.data * (k1 + 1.0) / (k1 * length_norm[X.col] + X.data) * idf[X.row]
    return sp.csr_matrix((data, (X.row, X.col)), shape=X.shape, dtype=np.float32)


class ItemKNN(BaseRecommender):
    """Item-based nearest neighbours with cosine or BM25-weighted similarity.

    Parameters
    ----------
    similarity : {"cosine", "bm25"}
    n_neighbors : int
        Neighbours kept per item.
    shrink : float
        Added to the cosine denominator to damp similarities of rare items.
    """

    name = "item_knn"

    def __init__(self, *, similarity: str = "cosine", n_neighbors: int = 100, shrink: float = 0.0) -> None:
        self.similarity = similarity
        self.n_neighbors = n_neighbors
        self.shrink = shrink

    def fit(self, X: sp.csr_matrix) -> ItemKNN:
        X = sp.csr_matrix(X, dtype=np.float32)
        W = bm25_weight(X) if self.similarity == "bm25" else X
        norms = np.sqrt(np.asarray(W.multiply(W).sum(axis=0))).ravel()
        gram = np.asarray((W.T @ W).todense(), dtype=np.float32)
        denom = np.outer(norms, norms) + self.shrink + 1e-9
        self.similarity_ = _top_k_per_row(gram / denom, int(self.n_neighbors))
        self.X_ = X
        self.n_items_ = X.shape[1]
        return self

    def score(self, H: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        return np.asarray((H @ self.similarity_).todense(), dtype=np.float32)

    def similar_scores(self, items: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.asarray(self.similarity_[items].todense(), dtype=np.float32)

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "similarity": trial.suggest_categorical("similarity", ["cosine", "bm25"]),
            "n_neighbors": trial.suggest_int("n_neighbors", 10, 500, log=True),
            "shrink": trial.suggest_float("shrink", 0.0, 100.0),
        }


class RP3Beta(BaseRecommender):
    """A random walk user -> item -> user -> item, with popular items penalised.

    ``W[i, j] = sum_u P(u|i)^alpha P(j|u)^alpha / pop(j)^beta`` with the
    ``n_neighbors`` largest entries kept per row (Paudel et al., 2017).
    """

    name = "rp3beta"

    def __init__(self, *, alpha: float = 1.0, beta: float = 0.5, n_neighbors: int = 200) -> None:
        self.alpha = alpha
        self.beta = beta
        self.n_neighbors = n_neighbors

    def fit(self, X: sp.csr_matrix) -> RP3Beta:
        X = sp.csr_matrix(X, dtype=np.float32)
        B = (X > 0).astype(np.float32)
        user_deg = np.asarray(B.sum(axis=1)).ravel()
        item_deg = np.asarray(B.sum(axis=0)).ravel()
        P_ui = sp.diags(1.0 / np.maximum(user_deg, 1)) @ B
        P_iu = sp.diags(1.0 / np.maximum(item_deg, 1)) @ B.T
        P_ui = P_ui.power(self.alpha)
        P_iu = P_iu.power(self.alpha)
        W = np.asarray((P_iu @ P_ui).todense(), dtype=np.float32)
        W /= np.power(np.maximum(item_deg, 1), self.beta)[None, :].astype(np.float32)
        self.similarity_ = _top_k_per_row(W, int(self.n_neighbors))
        self.X_ = X
        self.n_items_ = X.shape[1]
        return self

    def score(self, H: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        return np.asarray(((H > 0).astype(np.float32) @ self.similarity_).todense(), dtype=np.float32)

    def similar_scores(self, items: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.asarray(self.similarity_[items].todense(), dtype=np.float32)

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "alpha": trial.suggest_float("alpha", 0.2, 1.5),
            "beta": trial.suggest_float("beta", 0.0, 1.0),
            "n_neighbors": trial.suggest_int("n_neighbors", 20, 1000, log=True),
        }


class EASE(BaseRecommender):
    """Embarrassingly Shallow Autoencoder (Steck, 2019), closed form.

    ``B = I - P diag(1/diag(P))`` with ``P = (X^T X + l2 I)^-1``; dense, so
    limited to ``max_items`` items (memory grows with the square).
    """

    name = "ease"

    def __init__(
        self, *, l2: float = 500.0, min_item_count: int = 1, max_items: int = EASE_MAX_ITEMS
    ) -> None:
        self.l2 = l2
        self.min_item_count = min_item_count
        self.max_items = max_items

    def fit(self, X: sp.csr_matrix) -> EASE:
        n_items = X.shape[1]
        n_active = int((np.diff(sp.csc_matrix(X).indptr) >= max(int(self.min_item_count), 1)).sum())
        if n_active > self.max_items:
            gib = 3 * 8 * n_active**2 / 2**30
            raise ResourceLimitError(
                f"EASE holds dense n_items x n_items matrices: {n_active} items would need about "
                f"{gib:.1f} GiB, above its limit of {self.max_items} items. Use the sparse "
                "item-kNN or RP3beta models (train() skips EASE automatically), filter rare "
                "items, or raise max_items if the memory is there."
            )
        X = sp.csr_matrix(X, dtype=np.float32)
        # Items nobody interacted with have zero weights; leaving them out of the
        # inversion saves cubic time.
        active = np.flatnonzero(np.diff(X.tocsc().indptr) >= max(int(self.min_item_count), 1))
        B = _ease_weights(X[:, active], float(self.l2))
        self.active_items_ = active
        self.weights_ = B
        self.X_ = X
        self.n_items_ = n_items
        return self

    def score(self, H: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        active = self.active_items_
        out = np.zeros((H.shape[0], self.n_items_), dtype=np.float32)
        out[:, active] = np.asarray(sp.csr_matrix(H)[:, active] @ self.weights_, dtype=np.float32)
        return out

    def similar_scores(self, items: np.ndarray) -> np.ndarray:
        self._check_fitted()
        position = np.full(self.n_items_, -1)
        position[self.active_items_] = np.arange(len(self.active_items_))
        out = np.zeros((len(items), self.n_items_), dtype=np.float32)
        rows = position[np.asarray(items)]
        known = rows >= 0
        out[np.ix_(np.flatnonzero(known), self.active_items_)] = self.weights_[rows[known]]
        return out

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {"l2": trial.suggest_float("l2", 10.0, 5000.0, log=True)}


def _ease_weights(X: sp.csr_matrix, l2: float) -> np.ndarray:
    """EASE's ``B = I - P diag(1/diag(P))``, ``P = (X^T X + l2 I)^-1``, as float32.

    With fewer users than items the Gram matrix has low rank and the Woodbury
    identity ``P = (I - X^T (l2 I + X X^T)^-1 X) / l2`` needs only a users x users
    factorisation: ``n_users * n_items^2`` work instead of ``n_items^3``.
    """
    from scipy.linalg import cho_factor, cho_solve, lapack

    if not l2 > 0:
        raise InvalidParameterError(f"The 'l2' parameter of EASE must be a float in (0, inf). Got {l2!r} instead.")
    X = X[np.diff(X.indptr) > 0]  # users with no interaction add nothing to the Gram matrix
    n_users, n_items = X.shape
    if n_users**3 + n_users**2 * n_items + n_users * n_items**2 < n_items**3:
        Xd = X.toarray().astype(np.float64)
        gram_users = Xd @ Xd.T
        gram_users[np.diag_indices_from(gram_users)] += l2
        A = cho_solve(cho_factor(gram_users), Xd)  # (l2 I + X X^T)^-1 X
        # off-diagonal entries have no cancellation and are fine in float32; the
        # diagonal 1/l2 - x_j^T a_j does cancel, so it is computed in float64
        diag = (1.0 - np.einsum("ij,ij->j", Xd, A)) / l2
        P = Xd.T.astype(np.float32) @ A.astype(np.float32)
        P /= np.float32(l2)
        P /= diag.astype(np.float32)[None, :]  # B = -P_offdiag / diag(P); the sign flips twice
        P[np.diag_indices_from(P)] = 0.0
        return P
    G = np.asarray((X.T @ X).todense(), dtype=np.float64)
    G[np.diag_indices_from(G)] += l2
    chol, info = lapack.dpotrf(G, lower=False, overwrite_a=True)
    if info == 0:
        G, info = lapack.dpotri(chol, lower=False, overwrite_c=True)
    if info != 0:
        raise ResourceLimitError(
            f"EASE could not invert its Gram matrix (LAPACK info={info}); raise 'l2'. Got l2={l2!r}."
        )
    G = np.triu(G) + np.triu(G, 1).T
    G /= -np.diag(G)[None, :]
    G[np.diag_indices_from(G)] = 0.0
    return G.astype(np.float32)


def _quiet_implicit() -> Any:
    """Import ``implicit`` with BLAS limited to one thread (its own advice)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import implicit.cpu.als
        import implicit.cpu.bpr
    return implicit


def _run_implicit(factory: Any, X: sp.csr_matrix) -> Any:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        # implicit checks the BLAS thread count when a model is built; we limit it above
        warnings.filterwarnings("ignore", message=".*(OpenBLAS|MKL|threadpool).*")
        model = factory()
        model.fit(X, show_progress=False)
    return model


def _drop_light(X: sp.csr_matrix, min_weight: float) -> sp.csr_matrix:
    """``X`` without the entries weighing less than ``min_weight``."""
    X = sp.csr_matrix(X, dtype=np.float32)
    if min_weight <= 0:
        return X
    X = X.copy()
    X.data[X.data < np.float32(min_weight)] = 0.0
    X.eliminate_zeros()
    return X


class _FactorModel(BaseRecommender):
    def score(self, H: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        U = self._user_factors(H, users)
        return np.asarray(U @ self.item_factors_.T, dtype=np.float32)

    def _keep_factors(self, model: Any, X: sp.csr_matrix) -> Any:
        """Keep plain factor arrays (not the library object), so artifacts load anywhere."""
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        self.X_ = X
        self.n_items_ = X.shape[1]
        return self

    def _user_factors(self, H: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        if users is not None and (users >= 0).all():
            return self.user_factors_[users]
        U = self._fold_in(H)
        if users is not None:
            known = users >= 0
            U[known] = self.user_factors_[users[known]]
        return U

    def _fold_in(self, H: sp.csr_matrix) -> np.ndarray:
        """Least-squares user factors for unseen histories (one ALS half-step)."""
        V = self.item_factors_.astype(np.float64)
        reg = float(getattr(self, "regularization", 0.01))
        alpha = float(getattr(self, "alpha", 1.0))
        VtV = V.T @ V
        out = np.zeros((H.shape[0], V.shape[1]), dtype=np.float64)
        H = _drop_light(H, float(getattr(self, "min_weight", 0.0)))
        for row in range(H.shape[0]):
            idx = H.indices[H.indptr[row] : H.indptr[row + 1]]
            if len(idx) == 0:
                continue
            conf = 1.0 + alpha * H.data[H.indptr[row] : H.indptr[row + 1]]
            Vi = V[idx]
            A = VtV + (Vi.T * (conf - 1.0)) @ Vi + reg * np.eye(V.shape[1])
            out[row] = np.linalg.solve(A, Vi.T @ conf)
        return out.astype(np.float32)

    def similar_scores(self, items: np.ndarray) -> np.ndarray:
        self._check_fitted()
        V = self.item_factors_
        norms = np.linalg.norm(V, axis=1)
        norms[norms == 0] = 1.0
        return np.asarray((V[items] @ V.T) / norms[items, None] / norms[None, :], dtype=np.float32)


class ALS(_FactorModel):
    """Implicit-feedback matrix factorisation (Hu, Koren, Volinsky 2008) via ``implicit``.

    Confidence is ``1 + alpha * weight``; interactions weighing less than
    ``min_weight`` are left out (e.g. to learn from liked items only when the
    input also holds the disliked ones). Only the factor arrays are kept.
    """

    name = "als"

    def __init__(
        self,
        *,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        min_weight: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.min_weight = min_weight
        self.random_state = random_state

    def fit(self, X: sp.csr_matrix) -> ALS:
        _quiet_implicit()
        from implicit.cpu.als import AlternatingLeastSquares

        X = _drop_light(X, float(self.min_weight))
        model = _run_implicit(
            lambda: AlternatingLeastSquares(
                factors=int(self.factors),
                regularization=float(self.regularization),
                alpha=float(self.alpha),
                iterations=int(self.iterations),
                random_state=int(self.random_state),
                num_threads=1,
            ),
            X,
        )
        return self._keep_factors(model, X)

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "factors": trial.suggest_int("factors", 16, 256, log=True),
            "regularization": trial.suggest_float("regularization", 1e-3, 10.0, log=True),
            "alpha": trial.suggest_float("alpha", 0.5, 50.0, log=True),
            "iterations": trial.suggest_int("iterations", 5, 30),
        }


class BPR(_FactorModel):
    """Bayesian personalised ranking (Rendle et al. 2009) via ``implicit``.

    Every interaction weighing at least ``min_weight`` counts as a positive.
    """

    name = "bpr"

    def __init__(
        self,
        *,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        min_weight: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.min_weight = min_weight
        self.random_state = random_state

    def fit(self, X: sp.csr_matrix) -> BPR:
        _quiet_implicit()
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        X = _drop_light(X, float(self.min_weight))
        model = _run_implicit(
            lambda: BayesianPersonalizedRanking(
                factors=int(self.factors),
                learning_rate=float(self.learning_rate),
                regularization=float(self.regularization),
                iterations=int(self.iterations),
                random_state=int(self.random_state),
                num_threads=1,
            ),
            (X > 0).astype(np.float32),
        )
        return self._keep_factors(model, X)

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "factors": trial.suggest_int("factors", 16, 256, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.2, log=True),
            "regularization": trial.suggest_float("regularization", 1e-4, 0.1, log=True),
            "iterations": trial.suggest_int("iterations", 20, 300, log=True),
        }


def standardize_rows(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores, so models on different scales can be added."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    std[std == 0] = 1.0
    return (scores - mean) / std


class Blend(BaseRecommender):
    """A weighted sum of fitted members' per-user standardised scores."""

    name = "blend"

    def __init__(self, *, members: list[BaseRecommender] | None = None, weights: list[float] | None = None) -> None:
        self.members = members
        self.weights = weights

    def fit(self, X: sp.csr_matrix) -> Blend:
        for member in self.members or []:
            member.fit(X)
        self.X_ = sp.csr_matrix(X, dtype=np.float32)
        self.n_items_ = X.shape[1]
        return self

    def score(self, H: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        members = self.members or []
        weights = self.weights or [1.0] * len(members)
        total = np.zeros((H.shape[0], self.n_items_), dtype=np.float32)
        for member, weight in zip(members, weights, strict=True):
            if weight:
                total += np.float32(weight) * standardize_rows(member.score(H, users))
        return total

    def similar_scores(self, items: np.ndarray) -> np.ndarray:
        self._check_fitted()
        members = self.members or []
        weights = self.weights or [1.0] * len(members)
        total = np.zeros((len(items), self.n_items_), dtype=np.float32)
        for member, weight in zip(members, weights, strict=True):
            if weight and not isinstance(member, MostPopular):
                total += np.float32(weight) * standardize_rows(member.similar_scores(items))
        return total


MODELS: dict[str, type[BaseRecommender]] = {
    cls.name: cls for cls in (MostPopular, ItemKNN, RP3Beta, EASE, ALS, BPR)
}
