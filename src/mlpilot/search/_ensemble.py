"""Greedy ensemble selection (Caruana et al., 2004) and the fitted ensemble model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from mlpilot.exceptions import NotFittedError
from mlpilot.tasks import Metric, labels_at


def _label_array(classes: Any) -> np.ndarray:
    """Class labels as an array of their own kind: bools stay bools, integers are int64, anything else objects.

    ``bool`` is a subclass of ``int``, so bools are told first: a True/False
    target predicts True/False, not 1/0.
    """
    labels = np.asarray(classes, dtype=object)
    if len(labels) and all(isinstance(c, bool | np.bool_) for c in labels):
        return labels.astype(bool)
    if all(isinstance(c, int | np.integer) and not isinstance(c, bool | np.bool_) for c in labels):
        return labels.astype(np.int64)
    return labels


def caruana_weights(
    predictions: list[np.ndarray], y: np.ndarray, metric: Metric, *, n_rounds: int = 40
) -> np.ndarray:
    """Greedy forward selection with replacement over out-of-fold ``predictions``.

    Starts from the best single model and, each round, adds the model whose
    inclusion gives the best metric of the running average. Returns weights
    summing to one (zero for models never picked).

    Examples
    --------
    >>> from mlpilot.tasks import get_metric
    >>> y = np.array([0.0, 1.0, 2.0])
    >>> caruana_weights([y + 1, y - 1, y + 5], y, get_metric("rmse")).round(2).tolist()
    [0.5, 0.5, 0.0]
    """
    n_models = len(predictions)
    if n_models == 1:  # nothing to blend: 40 rounds of metric calls on one model's predictions cost time for nothing
        return np.ones(1)
    counts = np.zeros(n_models)
    scores = [metric.score(y, p) for p in predictions]
    best = int(np.nanargmax(scores))
    counts[best] = 1
    current = predictions[best].astype(float).copy()
    best_score = scores[best]
    for _ in range(n_rounds):
        total = counts.sum()
        trial_scores = [metric.score(y, (current * total + p) / (total + 1)) for p in predictions]
        pick = int(np.nanargmax(trial_scores))
        if trial_scores[pick] < best_score - 1e-12:
            break
        counts[pick] += 1
        current = (current * total + predictions[pick]) / (total + 1)
        best_score = max(best_score, trial_scores[pick])
    return counts / counts.sum()


def selection_calls(n_models: int, *, n_members: int = 3, n_rounds: int = 40) -> int:
    """Metric calls that ensemble selection and its two prunings make, at most, for ``n_models``.

    `caruana_weights` scores every model each round; each pruning step re-runs
    it over every leave-one-out set of the (up to ``n_members``) members left.

    Examples
    --------
    >>> selection_calls(10)
    1040
    """
    members = min(n_members, n_models)
    prune = sum(m * n_rounds * (m - 1) for m in range(2, members + 1))
    return n_rounds * n_models + 2 * prune


def blend_score(predictions: list[np.ndarray], y: np.ndarray, metric: Metric, weights: np.ndarray) -> float:
    """``metric`` of the ``weights``-weighted blend of ``predictions`` (members with weight 0 skipped)."""
    return metric.score(y, np.asarray(sum(weights[i] * predictions[i] for i in np.flatnonzero(weights))))


def prune_weights(
    predictions: list[np.ndarray], y: np.ndarray, metric: Metric, weights: np.ndarray, *, tolerance: float
) -> np.ndarray:
    """Drop ensemble members while the blend scores within ``tolerance`` of the full one.

    Backward elimination over the members with a positive weight: each step
    removes the member whose absence costs least, re-running `caruana_weights`
    over those left, and stops before the pooled score of ``predictions`` on
    ``y`` would fall more than ``tolerance`` below that of ``weights``. Every
    member dropped is one model fewer to refit, store and run at predict time.

    Examples
    --------
    >>> from mlpilot.tasks import get_metric
    >>> y = np.array([0.0, 1.0, 2.0, 3.0])
    >>> preds = [y + [0.3, -0.2, 0.0, -0.2], y + [-0.3, 0.2, -0.3, -0.2], y + [0.0, 0.0, -0.3, 0.3]]
    >>> weights = caruana_weights(preds, y, get_metric("rmse"))
    >>> weights.round(2).tolist()
    [0.5, 0.25, 0.25]
    >>> prune_weights(preds, y, get_metric("rmse"), weights, tolerance=0.05).round(2).tolist()
    [0.5, 0.0, 0.5]
    """
    def score(w: np.ndarray) -> float:
        return blend_score(predictions, y, metric, w)

    weights = np.asarray(weights, dtype=float)
    floor = score(weights) - tolerance
    while np.count_nonzero(weights) > 1:
        best = max(_leave_one_out(predictions, y, metric, weights), key=score)
        if score(best) < floor:
            break
        weights = best
    return weights


def _leave_one_out(predictions: list[np.ndarray], y: np.ndarray, metric: Metric, weights: np.ndarray) -> list[np.ndarray]:
    """For each member with a positive weight, the `caruana_weights` of the others."""
    active = np.flatnonzero(weights)
    trials = []
    for drop in active:
        rest = [i for i in active if i != drop]
        trial = np.zeros(len(predictions))
        trial[rest] = caruana_weights([predictions[i] for i in rest], y, metric)
        trials.append(trial)
    return trials


def prune_for_speed(
    predictions: list[np.ndarray],
    y: np.ndarray,
    metric: Metric,
    weights: np.ndarray,
    costs: np.ndarray,
    *,
    allowance: float,
    floor: float = 0.0,
    limit: float | None = None,
) -> np.ndarray:
    """Drop members whose predict cost is out of proportion to what they add.

    Backward elimination like `prune_weights`, but each member may cost score in
    proportion to the predict time it saves: after dropping a set of members
    whose ``costs`` add up to a share ``s`` of the ensemble's, the blend may
    score at most ``allowance * s`` below the full one. Each step drops the
    member with the most room left under that bound. ``floor`` (in the unit of
    ``costs``) is the least ensemble cost shares are taken of, so an ensemble
    already cheaper than it gives up almost nothing to get cheaper still.
    Then members costing more than ``limit`` on their own are dropped and,
    while the members' summed cost still exceeds it, the member whose absence
    costs least score.

    Examples
    --------
    >>> from mlpilot.tasks import get_metric
    >>> y = np.array([0.0, 1.0, 2.0, 3.0])
    >>> preds = [y + [0.3, -0.2, 0.1, -0.2], y + [-0.3, 0.2, -0.1, 0.2]]
    >>> weights = caruana_weights(preds, y, get_metric("rmse"))
    >>> weights.tolist()
    [0.5, 0.5]
    >>> prune_for_speed(preds, y, get_metric("rmse"), weights, np.array([1.0, 9.0]), allowance=0.5).tolist()
    [1.0, 0.0]
    >>> prune_for_speed(preds, y, get_metric("rmse"), weights, np.array([1.0, 9.0]), allowance=0.01).tolist()
    [0.5, 0.5]
    """
    def score(w: np.ndarray) -> float:
        return blend_score(predictions, y, metric, w)

    weights = np.asarray(weights, dtype=float)
    costs = np.asarray(costs, dtype=float)
    full_score = score(weights)
    start_cost = float(costs[weights > 0].sum())
    full_cost = max(start_cost, floor)
    if full_cost <= 0:
        return weights

    def room(trial: np.ndarray) -> float:
        saved = (start_cost - float(costs[trial > 0].sum())) / full_cost
        return allowance * saved - (full_score - score(trial))

    while np.count_nonzero(weights) > 1:
        best = max(_leave_one_out(predictions, y, metric, weights), key=room)
        if room(best) < 0:
            break
        weights = best
    if limit is not None:
        keep = np.flatnonzero((weights > 0) & (costs <= limit))
        if 0 < len(keep) < np.count_nonzero(weights):  # members over the limit on their own go first
            weights = np.zeros(len(predictions))
            weights[keep] = caruana_weights([predictions[i] for i in keep], y, metric)
    while limit is not None and costs[weights > 0].sum() > limit and np.count_nonzero(weights) > 1:
        weights = max(_leave_one_out(predictions, y, metric, weights), key=score)
    return weights


class TabularEnsemble(BaseEstimator):
    """The served model: preprocessing and learners with ensemble weights.

    Takes a DataFrame of raw feature columns; extra columns are ignored and
    absent ones are treated as missing.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    members : list of (TabularPreprocessor, Learner)
        Fitted members; members of one encoding share one preprocessor object.
    weights : list of float
        Ensemble weight of each member, summing to one.
    names : list of str, optional
    classes : list, optional
        Original class labels, in class-code order (classifiers).
    feature_names : list of str, optional
    n_jobs : int, optional
        Threads for predicting large batches (None: the threads each member
        was fitted with). Predictions do not depend on it.
    threshold : float, optional
        Binary tasks: `predict` gives the second class where its probability
        is at least this (None: the class of highest probability, as models
        saved before thresholds do).
    stacker : LinearStacker or FeatureStacker, optional
        A level-2 layer over the members' values (`mlpilot.search._stack`)
        that replaces the weighted sum: linear, or a feature stack that also
        reads one member's encoded features; ``weights`` are then each
        member's share of its linear coefficients (shown, not used to predict).

    Attributes
    ----------
    classes_ : ndarray
        Original class labels in the column order of `predict_proba` (classifiers).
    feature_names_in_ : ndarray
        The raw feature columns the model reads.
    threshold_ : float or None
        The decision threshold `predict` applies (binary tasks).
    """

    def __init__(
        self,
        *,
        task: str = "binary",
        members: list[tuple[Any, Any]] | None = None,
        weights: list[float] | None = None,
        names: list[str] | None = None,
        classes: list[Any] | None = None,
        feature_names: list[str] | None = None,
        n_jobs: int | None = None,
        threshold: float | None = None,
        stacker: Any = None,
    ) -> None:
        self.task = task
        self.members = members
        self.weights = weights
        self.names = names
        self.classes = classes
        self.feature_names = feature_names
        self.n_jobs = n_jobs
        self.threshold = threshold
        self.stacker = stacker

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("n_jobs", None)  # models saved before the parameter existed
        state.setdefault("threshold", None)  # ... and before thresholds: the class of highest probability
        state.setdefault("stacker", None)  # ... and before stacking: the weighted sum
        if "members_" in state:
            state.setdefault("threshold_", None)
            state.setdefault("stacker_", None)
        super().__setstate__(state)

    def fit(self, X: Any = None, y: Any = None) -> TabularEnsemble:
        """Record fitted state; members arrive fitted from the search."""
        if not self.members:
            raise NotFittedError("TabularEnsemble needs fitted members; train with mlpilot.train().")
        self.members_ = list(self.members)
        self.weights_ = np.asarray(self.weights, dtype=float)
        self.names_ = list(self.names or [f"m{i}" for i in range(len(self.members_))])
        self.feature_names_in_ = np.asarray(self.feature_names or [], dtype=object)
        if self.task != "regression":
            self.classes_ = _label_array(self.classes)
        self.threshold_ = float(self.threshold) if self.threshold is not None and self.task == "binary" else None
        self.stacker_ = self.stacker
        if self.stacker_ is not None:
            missing = [n for n in self.stacker_.names if n not in self.names_]
            if missing or len(self.stacker_.names) != len(self.names_):
                raise NotFittedError(f"the stacker reads members {self.stacker_.names}, the ensemble has {self.names_}")
            self.stack_order_ = [self.names_.index(n) for n in self.stacker_.names]
        return self

    def _frame(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            array = np.asarray(X)
            X = pd.DataFrame(array, columns=list(self.feature_names_in_)[: array.shape[1]])
        return X

    def _values(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "members_")
        frame = self._frame(X)
        values = []
        inputs = []
        transformed: dict[int, Any] = {}  # members share fitted preprocessors
        for pre, learner in self.members_:
            if id(pre) not in transformed:
                transformed[id(pre)] = pre.transform(frame)
            inputs.append(transformed[id(pre)])
            values.append(learner.predict_values(transformed[id(pre)], n_jobs=self.n_jobs))
        return self.combine(values, inputs)

    def combine(self, values: list[np.ndarray], inputs: list[Any] | None = None, *, layer: Any = None) -> np.ndarray:
        """The ensemble's total from each member's values (in `members_` order): what `outputs` takes.

        The weighted sum, or the stacker's layer; the model runtime's compiler
        calls it on the values it computes for each member, so the rule lives here only.
        ``inputs``: each member's encoded input matrix (in `members_` order),
        which a feature stack reads (its ``feature_member``'s); a linear layer
        and the weighted sum do not. ``layer``: what computes the stacker's
        ``combine`` instead of it (the runtime's compiled feature stack).
        """
        if self.stacker_ is not None:
            ordered = [values[i] for i in self.stack_order_]
            member = getattr(self.stacker_, "feature_member", None)
            layer = layer if layer is not None else self.stacker_
            if member is None:
                return np.asarray(layer.combine(ordered))
            if inputs is None:
                raise ValueError(f"this stack reads the encoded features of member {member}: pass each member's inputs")
            return np.asarray(layer.combine(ordered, inputs[self.names_.index(member)]))
        total: np.ndarray | None = None
        for value, weight in zip(values, self.weights_, strict=True):
            term = value * weight
            total = term if total is None else total + term
        assert total is not None  # members_ is never empty after fit
        return total

    def outputs(self, total: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """What `predict` and `predict_proba` return, from the weighted sum of the members' values.

        The model runtime's compiler calls it on the `combine` of the values it
        computes for each member (through its own hook), so the rule lives
        here only. Regression: ``(values, None)``.
        """
        if self.task == "regression":
            return total.astype(float), None
        proba = total / total.sum(axis=1, keepdims=True)
        return labels_at(self.classes_, proba, self.threshold_), proba

    @available_if(lambda self: self.task != "regression")
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``, columns in `classes_` order."""
        proba = self._values(X)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Original class labels (at `threshold_` for binary tasks), or floats for regression."""
        return self.outputs(self._values(X))[0]

    def explain(self, X: Any) -> Any:
        """Per-row contributions of each input column, adding up with a base value to the raw output.

        Returns an `Explanation` (``.rows()`` for JSON, ``.frame()`` for a
        DataFrame); see `mlpilot.search._explain.explain_ensemble` for the output
        space of each kind of ensemble. Raises `InvalidParameterError` naming a
        member family that has no explanation method.
        """
        from mlpilot.exceptions import InvalidParameterError
        from mlpilot.search._explain import explain_ensemble

        check_is_fitted(self, "members_")
        if self.stacker_ is not None:
            raise InvalidParameterError(
                "This model is a stacked ensemble: its level-2 layer over the members' log-odds has no additive "
                "explanation per column. Retrain with stacking='off' (CLI: --stacking off) to explain predictions."
            )
        return explain_ensemble(self, self._frame(X))
