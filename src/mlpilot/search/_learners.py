"""One scikit-learn estimator over every tabular model family.

`Learner` wraps LightGBM, CatBoost and scikit-learn models so that the search
treats them alike: ``fit`` with an optional validation set (early stopping)
and a wall-clock limit, then ``predict_values`` returning class probabilities
(every class, in code order) or regression values. What each family fits and
how it predicts is its class in `_families` (`FAMILIES`); a fitted learner
keeps only its family's name, so saved models load whatever the classes become.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mlpilot.exceptions import InvalidParameterError
from mlpilot.search._families import FAMILIES, Deadline, Family, PredictionParts
from mlpilot.tune import Clock
from mlpilot.tune._executor import quiet

__all__ = ["FAMILIES", "Family", "Learner", "PredictionParts"]


def _expiry(stop_at: float | None, clock: Clock) -> Deadline | None:
    """Whether ``clock`` has reached ``stop_at`` (None: no deadline)."""
    if stop_at is None:
        return None
    deadline = stop_at

    def expired() -> bool:
        return clock() >= deadline

    return expired


class Learner(BaseEstimator):
    """One model of a family, trained on a preprocessed matrix.

    Parameters
    ----------
    family : str
        A key of `FAMILIES`.
    task : {"binary", "multiclass", "regression"}
    params : dict, optional
        Family hyperparameters; ``n_estimators`` fixes the boosting rounds.
    categorical_indices : tuple of int
        Columns holding category codes (from `TabularPreprocessor`).
    n_classes : int
        Number of classes (classification).
    random_state : int
    n_jobs : int
    deterministic : bool
        Ask libraries for bit-identical results (LightGBM ``deterministic``).
    """

    def __init__(
        self,
        *,
        family: str = "lightgbm",
        task: str = "binary",
        params: dict[str, Any] | None = None,
        categorical_indices: tuple[int, ...] = (),
        n_classes: int = 2,
        random_state: int = 0,
        n_jobs: int = 2,
        deterministic: bool = False,
    ) -> None:
        self.family = family
        self.task = task
        self.params = params
        self.categorical_indices = categorical_indices
        self.n_classes = n_classes
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.deterministic = deterministic

    # -- fitting ----------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: np.ndarray,
        *,
        X_val: Any = None,
        y_val: np.ndarray | None = None,
        stop_at: float | None = None,
        clock: Clock = time.perf_counter,
        sample_weight: np.ndarray | None = None,
        val_weight: np.ndarray | None = None,
    ) -> Learner:
        """Fit on ``X, y`` (rows weighted by ``sample_weight``); early-stop on ``X_val, y_val`` if given; stop at ``stop_at``.

        ``stop_at`` is a reading of ``clock`` (the run's budget clock): a boosted
        fit ends after the first round that finishes at or past it. Other
        families cannot be interrupted and ignore it. ``sample_weight``: one
        non-negative weight per row of ``X`` (refused for a family that does
        not declare ``weighted``; every family does); ``val_weight`` the weights of the
        ``X_val`` rows, which the boosted families' early stopping scores with.
        """
        if self.family not in FAMILIES:
            raise InvalidParameterError(
                f"Unknown model family {self.family!r}. Accepted: {', '.join(FAMILIES)}."
            )
        family = FAMILIES[self.family]
        if sample_weight is not None and not family.weighted:
            raise InvalidParameterError(
                f"The model family {self.family!r} cannot weight rows; leave it out of the families, "
                "or train without sample weights."
            )
        params = dict(self.params or {})
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        with quiet(self.n_jobs):
            family.fit(self, X, np.asarray(y), X_val, y_val, params, _expiry(stop_at, clock), sample_weight=weights,
                       val_weight=None if val_weight is None else np.asarray(val_weight, dtype=float))
        return self

    @property
    def classifier(self) -> bool:
        """Whether the learner predicts classes (its values are probabilities)."""
        return self.task != "regression"

    # -- prediction -------------------------------------------------------------

    def predict_values(self, X: Any, *, n_jobs: int | None = None) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` or regression values ``(n,)``.

        ``n_jobs`` threads predict with LightGBM and CatBoost when the batch is
        large enough to gain from them; the values do not depend on it. None
        keeps the threads the model was fitted with.
        """
        check_is_fitted(self, "estimator_")
        return FAMILIES[self.family].predict(self, X, n_jobs)

    def state_bytes(self) -> int:
        """Bytes of the fitted model's large arrays (`Family.state_bytes`; 0 where it stays small)."""
        check_is_fitted(self, "estimator_")
        return FAMILIES[self.family].state_bytes(self)

    def prediction_parts(self) -> PredictionParts:
        """How this fitted learner predicts, for the model runtime's compiler (`PredictionParts`)."""
        check_is_fitted(self, "estimator_")
        return FAMILIES[self.family].prediction_parts(self)
