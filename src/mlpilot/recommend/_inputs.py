"""What models learn from and score from: input weighting and recency of the interactions."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mlpilot.exceptions import InvalidParameterError
from mlpilot.recommend._data import Interactions

WEIGHTINGS = ("binary", "soft", "rating", "rating_squared")


def input_matrix(data: Interactions, weighting: str = "binary") -> sp.csr_matrix:
    """The matrix models learn from.

    Explicit ratings: ``"binary"`` keeps positives at 1 and drops the rest;
    ``"soft"`` adds the other rated items at 0.3 (having watched something is
    a signal even when it was not liked); ``"rating"`` weighs every rated item
    by its rating, ``clip((r - m) / (max - m), 0.05, 1)`` with ``m`` a fifth of
    the way up the scale; ``"rating_squared"`` squares that, so the best ratings
    dominate. Implicit feedback weighs an interaction ``1 + log(count)``.
    """
    weights = input_weights(data, weighting)
    keep = weights != 0
    mat = sp.csr_matrix(
        (weights[keep].astype(np.float32), (data.user_idx[keep], data.item_idx[keep])),
        shape=(data.n_users, data.n_items),
    )
    mat.sum_duplicates()
    return mat


def input_weights(data: Interactions, weighting: str = "binary") -> np.ndarray:
    """The weight of each interaction in `input_matrix` (0: left out)."""
    if weighting not in WEIGHTINGS:
        raise InvalidParameterError(
            f"The input weighting must be one of {WEIGHTINGS}. Got {weighting!r} instead."
        )
    if not data.explicit:
        weights = 1.0 + np.log(np.maximum(data.rating, 1.0))
    elif weighting == "binary":
        weights = data.positive.astype(np.float64)
    elif weighting == "soft":
        weights = np.where(data.positive, 1.0, 0.3)
    else:
        lo, hi = float(data.rating.min()), float(data.rating.max())
        mid = lo + 0.2 * (hi - lo)
        weights = np.clip((data.rating - mid) / max(hi - mid, 1e-9), 0.05, 1.0)
        if weighting == "rating_squared":
            weights = weights**2
    return np.asarray(weights, dtype=np.float64)


RECENCY = (None, 0.5, 0.25)


def recency_weights(data: Interactions, half_life: float | None) -> np.ndarray:
    """Per-interaction weights ``0.5 ** (p / half_life)``, ``p`` the share of the user's
    history that came after the interaction (0 for the latest, near 1 for the oldest)."""
    if half_life is None or data.timestamp is None:
        return np.ones(len(data))
    order = np.lexsort((-data.timestamp, data.user_idx))
    counts = np.bincount(data.user_idx, minlength=data.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.empty(len(data))
    position[order] = np.arange(len(data)) - starts[data.user_idx[order]]
    return np.power(0.5, position / counts[data.user_idx] / half_life)


def scoring_matrix(data: Interactions, weighting: str, half_life: float | None) -> sp.csr_matrix:
    """The histories models score from: the input weights, recent interactions emphasised."""
    X = input_matrix(data, weighting)
    if half_life is None or data.timestamp is None:
        return X
    decay = sp.csr_matrix(
        (recency_weights(data, half_life).astype(np.float32), (data.user_idx, data.item_idx)), shape=X.shape
    )
    decay.sum_duplicates()
    out = sp.csr_matrix(X.multiply(decay))
    out.eliminate_zeros()
    return out


def seen_matrix(data: Interactions) -> sp.csr_matrix:
    """Every interaction, positive or not: what a user has already seen."""
    return data.matrix()


def positive_weight(data: Interactions, weighting: str) -> float:
    """The least weight a positive interaction gets in ``input_matrix(data, weighting)``.

    Every weighting is monotone in the rating, so the interactions weighing at
    least this much are exactly the positives.
    """
    weights = input_weights(data, weighting).astype(np.float32)[data.positive]
    return float(weights.min()) if len(weights) else 0.0
