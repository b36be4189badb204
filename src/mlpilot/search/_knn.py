"""k nearest neighbours whose votes weigh each training row by its sample weight.

scikit-learn's neighbours take no sample weights. These subclasses keep its
neighbour search and its inverse-distance weights (``weights="distance"``: a
neighbour at distance ``d`` votes ``1 / d``; where a row has neighbours at
distance 0, those vote 1 and the others 0) and multiply each neighbour's vote
by its training row's weight: a row of weight 2 counts as two rows at the
same place would, without changing which rows are the neighbours. A row
whose ``k`` neighbours all have weight 0 falls back to the plain
inverse-distance vote (there is nothing else to go on).

The kNN family (`mlpilot.search._families.KNN`) uses them only when weights
are given; without weights it keeps scikit-learn's own classes, which the
runtime compiles (`mlpilot.runtime._compile_knn`). These go through the
runtime's general final step (their own ``predict_proba``/``predict``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.utils.validation import _check_sample_weight


def _votes(distances: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each neighbour's vote, ``(n, k)``: its inverse-distance weight times its row's weight.

    Rows whose neighbours' weights are all zero keep the inverse-distance weights alone.
    """
    with np.errstate(divide="ignore"):
        inverse = 1.0 / distances
    infinite = np.isinf(inverse)
    exact = infinite.any(axis=1)  # a neighbour at distance 0: it (and any other at 0) votes 1, the rest 0
    inverse[exact] = infinite[exact]
    votes = inverse * weights
    empty = ~(votes.sum(axis=1) > 0)
    votes[empty] = inverse[empty]
    return votes


class _WeightedFit:
    """The fit both classes share: scikit-learn's, then the rows' weights (all 1 when none are given)."""

    weights: Any
    _y: Any

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        name = type(self).__name__
        if self.weights != "distance":
            raise ValueError(f"{name} votes by inverse distance (weights='distance'), not {self.weights!r}")
        # one finite, non-negative weight per row (all 1 when none are given), as scikit-learn's estimators check
        self.sample_weight_ = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        super().fit(X, y)  # type: ignore[misc]
        if np.asarray(self._y).ndim != 1:
            raise ValueError(f"{name} takes one target column")
        return self


class WeightedKNeighborsClassifier(_WeightedFit, KNeighborsClassifier):
    """`KNeighborsClassifier` with ``weights="distance"`` whose votes are weighted by ``sample_weight``."""

    def predict_proba(self, X: Any) -> np.ndarray:
        distances, neighbours = self.kneighbors(X)
        votes = _votes(distances, self.sample_weight_[neighbours])
        codes = np.asarray(self._y)[neighbours]
        proba = np.zeros((neighbours.shape[0], len(self.classes_)))
        rows = np.repeat(np.arange(neighbours.shape[0]), neighbours.shape[1])
        np.add.at(proba, (rows, codes.ravel()), votes.ravel())
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]


class WeightedKNeighborsRegressor(_WeightedFit, KNeighborsRegressor):
    """`KNeighborsRegressor` with ``weights="distance"`` whose average is weighted by ``sample_weight``."""

    def predict(self, X: Any) -> np.ndarray:
        distances, neighbours = self.kneighbors(X)
        votes = _votes(distances, self.sample_weight_[neighbours])
        values = np.asarray(self._y, dtype=float)[neighbours]
        return np.asarray((votes * values).sum(axis=1) / votes.sum(axis=1))


__all__ = ["WeightedKNeighborsClassifier", "WeightedKNeighborsRegressor"]
