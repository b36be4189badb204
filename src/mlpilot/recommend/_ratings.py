"""Rating prediction for explicit feedback: a regularised bias baseline.

``r_hat(u, i) = mu + b_u + b_i``, with the biases fitted by alternating
ridge-regularised means (Koren, 2010, section 2.1). Unknown users or items
get a zero bias.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from mlpilot.exceptions import NotFittedError


class BiasBaseline(BaseEstimator):  # type: ignore[misc]
    """Global mean plus regularised user and item biases.

    Parameters
    ----------
    user_reg, item_reg : float
        Shrinkage of the user and item biases towards zero.
    n_iterations : int
        Alternating updates.

    Examples
    --------
    >>> m = BiasBaseline().fit(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([5.0, 3.0, 4.0]),
    ...                        n_users=2, n_items=2)
    >>> bool(m.predict(np.array([0]), np.array([0]))[0] > 4.0)
    True
    """

    def __init__(self, *, user_reg: float = 5.0, item_reg: float = 10.0, n_iterations: int = 10) -> None:
        self.user_reg = user_reg
        self.item_reg = item_reg
        self.n_iterations = n_iterations

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, *, n_users: int, n_items: int
    ) -> BiasBaseline:
        ratings = np.asarray(ratings, dtype=np.float64)
        self.mean_ = float(ratings.mean())
        self.user_bias_ = np.zeros(n_users)
        self.item_bias_ = np.zeros(n_items)
        user_counts = np.bincount(users, minlength=n_users)
        item_counts = np.bincount(items, minlength=n_items)
        for _ in range(int(self.n_iterations)):
            residual = ratings - self.mean_ - self.user_bias_[users]
            self.item_bias_ = np.bincount(items, weights=residual, minlength=n_items) / (item_counts + self.item_reg)
            residual = ratings - self.mean_ - self.item_bias_[items]
            self.user_bias_ = np.bincount(users, weights=residual, minlength=n_users) / (user_counts + self.user_reg)
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings; an index of -1 means unknown (zero bias)."""
        if not hasattr(self, "mean_"):
            raise NotFittedError("This BiasBaseline is not fitted yet. Call 'fit' first.")
        users, items = np.asarray(users), np.asarray(items)
        ub = np.where(users >= 0, self.user_bias_[np.maximum(users, 0)], 0.0)
        ib = np.where(items >= 0, self.item_bias_[np.maximum(items, 0)], 0.0)
        return self.mean_ + ub + ib


def rating_errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """RMSE and MAE."""
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return {"rmse": float(np.sqrt(np.mean(diff**2))), "mae": float(np.mean(np.abs(diff)))}
