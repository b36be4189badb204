"""k nearest neighbours by brute force in numpy, for small batches against a small training set.

scikit-learn finds the neighbours of a model searched by a KD or ball tree
with exact Euclidean distances (the squared differences summed feature by
feature); for a few query rows against a few thousand training rows, the
same sums over the whole training matrix cost less than the library's checks
around its tree search. The squared distances are summed in the same order,
so the neighbours are the library's; where the k-th and the next distance
tie (the library's pick among them depends on its tree), `KNNSearch` says
so and the caller asks the library.

A model searched by brute force (scikit-learn picks it above 15 features, as
for the one-hot tables the search's kNN sees) gets its squared distances as
``|x|^2 - 2 x.y + |y|^2`` from a matrix product, as the library computes
them, clipped at zero. A matrix product rounds in its own order, so the two
can differ by a few units in the last place of the norms: where the k-th and
the next neighbour are closer than `BRUTE_TOLERANCE` of that scale, or
(inverse-distance weights) a neighbour is so near that its weight would
depend on that rounding, the library decides. Weights and probabilities
follow `KNeighborsClassifier.predict_proba` and `KNeighborsRegressor.predict`
(uniform or inverse-distance weights).

Models with another metric, a callable weight or a large training set raise
`CompileError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpilot.runtime._compile_steps import CompileError, RejectedInput

#: Training rows times features above which the library's search is left in charge.
MAX_TRAINING_VALUES = 1_000_000
#: Brute force: two squared distances closer than this share of ``|x|^2 + max |y|^2`` may be
#: ordered otherwise by the library's matrix product (its rounding is ~1e-15 of that scale).
BRUTE_TOLERANCE = 1e-11
#: Brute force with inverse-distance weights: a neighbour whose squared distance is under this
#: share of the scale gets a weight that the rounding of the matrix product moves by more than
#: the runtime's verification allows (relative 1e-9), so the library scores that batch.
BRUTE_NEAR = 1e-5


class TiedNeighbours(Exception):
    """The k-th and the next neighbour are (nearly) equally far, or a neighbour's weight hangs on
    the rounding of the library's distances: only the library knows what it returns."""


class KNNSearch:
    """A fitted ``KNeighborsClassifier`` / ``KNeighborsRegressor``; `values` gives its ``predict_proba`` / ``predict``.

    Raises
    ------
    CompileError
        When the model is not one whose neighbours are found exactly as here.
    """

    def __init__(self, model: Any, *, classifier: bool) -> None:
        method = getattr(model, "_fit_method", None)
        if method not in ("kd_tree", "ball_tree", "brute"):
            raise CompileError(f"kNN searched by {method}")
        if getattr(model, "effective_metric_", None) != "euclidean":
            raise CompileError(f"kNN with the {getattr(model, 'effective_metric_', None)!r} metric")
        if model.weights not in ("uniform", "distance"):
            raise CompileError("kNN with callable weights")
        train = np.asarray(model._fit_X, dtype=float)
        if train.size > MAX_TRAINING_VALUES:
            raise CompileError(f"kNN over {train.shape[0]} training rows (the library's tree search is faster)")
        self.brute = method == "brute"
        self.train_T = np.ascontiguousarray(train.T)  # one contiguous row of training values per feature
        self.train_norms = np.einsum("ij,ij->i", train, train)  # brute force: |y|^2 of each training row
        self.k = int(model.n_neighbors)
        self.distance_weights = model.weights == "distance"
        self.classifier = classifier
        y = np.asarray(model._y)
        if classifier:
            if y.ndim != 1:
                raise CompileError("a multi-output kNN classifier")
            self.labels = y.astype(np.intp)
            self.n_classes = len(model.classes_)
        else:
            if y.ndim != 1:
                raise CompileError("a multi-output kNN regressor")
            self.targets = y.astype(float)
        self.n_features = train.shape[1]

    def _squared(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Squared distances ``(n, n_train)`` as the library computes them, and each row's scale of their rounding.

        The scale is 0 for the exact sums of the tree-searched models.
        """
        if self.brute:  # |x|^2 - 2 x.y + |y|^2, clipped at zero, as scikit-learn's ArgKmin
            x_norms = np.einsum("ij,ij->i", X, X)
            squared = np.maximum(x_norms[:, None] + (-2.0 * X) @ self.train_T + self.train_norms, 0.0)
            return squared, x_norms + self.train_norms.max(initial=0.0)
        squared = np.zeros((X.shape[0], self.train_T.shape[1]))
        for j in range(self.n_features):  # feature by feature, as the library's trees sum them
            diff = X[:, j, None] - self.train_T[j]
            squared += diff * diff
        return squared, np.zeros(X.shape[0])

    def _neighbours(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(n, k)`` of each row's neighbours, nearest first, and their distances."""
        squared, scale = self._squared(X)
        k, n_train = self.k, squared.shape[1]
        if k < n_train:
            part = np.argpartition(squared, k, axis=1)  # the k nearest first, then the next one
            top = part[:, :k]
            kth = np.take_along_axis(squared, top, axis=1).max(axis=1)
            following = np.take_along_axis(squared, part[:, k:k + 1], axis=1)[:, 0]
            if (kth + BRUTE_TOLERANCE * scale >= following).any():
                raise TiedNeighbours
        else:
            top = np.broadcast_to(np.arange(n_train), squared.shape).copy()
        near = np.take_along_axis(squared, top, axis=1)
        if self.brute and self.distance_weights and (near.min(axis=1) < BRUTE_NEAR * scale).any():
            raise TiedNeighbours  # a neighbour so near that the rounding decides its weight
        order = np.argsort(near, axis=1, kind="stable")
        index = np.take_along_axis(top, order, axis=1)
        return index, np.sqrt(np.take_along_axis(near, order, axis=1))

    def _weights(self, distances: np.ndarray) -> np.ndarray:
        if not self.distance_weights:
            return np.ones_like(distances)
        with np.errstate(divide="ignore"):  # scikit-learn's _get_weights: a zero distance takes all
            weights = 1.0 / distances
        exact = np.isinf(weights)
        rows = exact.any(axis=1)
        weights[rows] = exact[rows]
        return weights

    def values(self, X: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, n_classes)`` or values ``(n,)``; `TiedNeighbours` where the library must choose."""
        X = np.asarray(X, dtype=float)
        if not np.isfinite(X).all():
            raise RejectedInput("kNN does not accept missing values")
        index, distances = self._neighbours(X)
        weights = self._weights(distances)
        if not self.classifier:
            return np.sum(self.targets[index] * weights, axis=1) / np.sum(weights, axis=1)
        proba = np.zeros((X.shape[0], self.n_classes))
        rows = np.arange(X.shape[0])
        for i, labels in enumerate(self.labels[index].T):  # neighbour by neighbour, as scikit-learn adds
            proba[rows, labels] += weights[:, i]
        total = proba.sum(axis=1)[:, None]
        total[total == 0.0] = 1.0
        return proba / total
