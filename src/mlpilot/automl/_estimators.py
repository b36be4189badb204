"""`AutoClassifier` and `AutoRegressor`: the engine as scikit-learn estimators."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    assert_all_finite,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from mlpilot.automl._config import make_config
from mlpilot.automl._engine import fit_tabular
from mlpilot.exceptions import TargetError

_TARGET = "__target__"
_WEIGHT = "__sample_weight__"


class _AutoBase(BaseEstimator):
    _task_kinds: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        time_budget: float = 60.0,
        metric: str | None = None,
        holdout: float = 0.2,
        n_folds: int | None = None,
        families: tuple[str, ...] | None = None,
        deterministic: bool = False,
        n_trials: int = 10,
        drop_leaks: bool = False,
        refit_full: bool = True,
        max_predict_ms: float | None = None,
        n_jobs: int = 2,
        random_state: int | None = 0,
    ) -> None:
        self.time_budget = time_budget
        self.metric = metric
        self.holdout = holdout
        self.n_folds = n_folds
        self.families = families
        self.deterministic = deterministic
        self.n_trials = n_trials
        self.drop_leaks = drop_leaks
        self.refit_full = refit_full
        self.max_predict_ms = max_predict_ms
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _frame(self, X: Any, *, reset: bool) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            if reset:
                self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
                self.n_features_in_ = X.shape[1]
            elif X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
            frame = X.copy()
            frame.columns = [str(c) for c in frame.columns]
            return frame
        array = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype=None,
                              ensure_min_samples=1)
        return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])]).infer_objects()

    def _fit(self, X: Any, y: Any, task: str | None, sample_weight: Any = None) -> Any:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        frame = self._frame(X, reset=True)
        target = column_or_1d(y, warn=True, dtype=None)
        if len(target) != len(frame):
            raise ValueError(f"X has {len(frame)} rows but y has {len(target)} values; pass one target per row.")
        if target.dtype.kind in "fc":
            assert_all_finite(target, input_name="y")
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, frame)
            if not np.any(weights):
                raise ValueError("Sample weights must contain at least one non-zero number.")
            if np.all(weights == weights[0]):
                weights = None  # equal weights are the same as none
        if task is None:
            check_classification_targets(target)
            n_classes = pd.Series(target).dropna().nunique()
            if n_classes < 2:
                raise TargetError(
                    f"{type(self).__name__} needs at least two classes; y has only one class "
                    f"({target[0]!r}). Add rows with other outcomes."
                )
            # a classifier's target is classes, whatever their values: decided here, so the
            # search runs once (integer labels with many values would make it a regression)
            task = "binary" if n_classes == 2 else "multiclass"
        if task == "regression":
            try:
                target = target.astype(float)
            except (TypeError, ValueError) as exc:
                raise TargetError("AutoRegressor needs a numeric y; got non-numeric values.") from exc
        data = frame.assign(**{_TARGET: target})
        if weights is not None:
            data[_WEIGHT] = weights
        seed = self.random_state if isinstance(self.random_state, numbers.Integral) else 0
        config = make_config(
            time_budget=self.time_budget, metric=self.metric, task=task, random_state=int(seed), holdout=self.holdout,
            n_folds=self.n_folds, families=self.families, deterministic=self.deterministic,
            n_trials=self.n_trials, drop_leaks=self.drop_leaks, refit_full=self.refit_full,
            max_predict_ms=self.max_predict_ms, n_jobs=self.n_jobs, report=False,
            weight_column=None if weights is None else _WEIGHT,
            **self._threshold_options(),
        )
        outcome = fit_tabular(data, _TARGET, config)
        self.model_ = outcome.model
        self.task_ = outcome.task
        self.leaderboard_ = outcome.evaluation.to_frame()
        self.metrics_ = dict(outcome.evaluation.metrics)
        self.threshold_ = getattr(self.model_, "threshold_", None)
        return outcome

    def _threshold_options(self) -> dict[str, Any]:
        return {}

    def _predict_frame(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self, "model_")
        return self._frame(X, reset=False)


class AutoClassifier(ClassifierMixin, _AutoBase):
    """Classification by mlpilot's search, ensembling and evaluation.

    Parameters
    ----------
    time_budget : float
        Seconds for `fit` (ignored with ``deterministic=True``).
    metric : str, optional
        ``roc_auc`` (binary) or ``log_loss`` (multiclass) by default.
    holdout : float
        Share of rows held out to score the result (``0`` to use all for CV).
    n_folds : int, optional
    families : tuple of str, optional
        Restrict the model families (e.g. ``("lightgbm", "linear")``).
    deterministic : bool
        A fixed amount of work instead of a wall-clock budget.
    n_trials : int
        Tuner trials in deterministic mode.
    drop_leaks : bool
    refit_full : bool
        Refit the ensemble on every row after evaluation.
    max_predict_ms : float, optional
        Most ms per 1,000 rows the ensemble's models may take to predict.
    n_jobs : int
    random_state : int
    threshold_metric : str, optional
        Binary tasks: what the decision threshold is chosen for on the
        out-of-fold predictions: ``"f1"`` (default), ``"balanced_accuracy"``,
        ``"cost:5"``, ``"precision>=0.9"`` or ``"recall>=0.8"``.
    threshold : float, optional
        Binary tasks: a fixed decision threshold instead.

    Attributes
    ----------
    classes_ : ndarray
    model_ : TabularEnsemble
    threshold_ : float or None
        The decision threshold `predict` applies (binary tasks).
    leaderboard_ : DataFrame
    metrics_ : dict

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = AutoClassifier(families=("linear",), deterministic=True, n_trials=0).fit(X, y)
    >>> clf.predict(X[:2]).tolist()
    [0, 0]
    """

    def __init__(
        self,
        *,
        time_budget: float = 60.0,
        metric: str | None = None,
        holdout: float = 0.2,
        n_folds: int | None = None,
        families: tuple[str, ...] | None = None,
        deterministic: bool = False,
        n_trials: int = 10,
        drop_leaks: bool = False,
        refit_full: bool = True,
        max_predict_ms: float | None = None,
        n_jobs: int = 2,
        random_state: int | None = 0,
        threshold_metric: str | None = None,
        threshold: float | None = None,
    ) -> None:
        super().__init__(
            time_budget=time_budget, metric=metric, holdout=holdout, n_folds=n_folds, families=families,
            deterministic=deterministic, n_trials=n_trials, drop_leaks=drop_leaks, refit_full=refit_full,
            max_predict_ms=max_predict_ms, n_jobs=n_jobs, random_state=random_state,
        )
        self.threshold_metric = threshold_metric
        self.threshold = threshold

    def _threshold_options(self) -> dict[str, Any]:
        return {"threshold_metric": self.threshold_metric, "threshold": self.threshold}

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> AutoClassifier:
        """Search, ensemble and evaluate on ``X, y``, rows weighted by ``sample_weight`` (see `mlpilot.train`)."""
        self._fit(X, y, None, sample_weight)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities in `classes_` order."""
        frame = self._predict_frame(X)
        return np.asarray(self.model_.predict_proba(frame))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (binary tasks: at `threshold_`)."""
        frame = self._predict_frame(X)
        return np.asarray(self.model_.predict(frame))


class AutoRegressor(RegressorMixin, _AutoBase):
    """Regression by mlpilot's search, ensembling and evaluation.

    Takes the same parameters as `AutoClassifier`; the default metric is RMSE.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = AutoRegressor(families=("linear",), deterministic=True, n_trials=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> AutoRegressor:
        """Search, ensemble and evaluate on ``X, y``, rows weighted by ``sample_weight`` (see `mlpilot.train`)."""
        self._fit(X, y, "regression", sample_weight)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values."""
        frame = self._predict_frame(X)
        return np.asarray(self.model_.predict(frame), dtype=float)
