"""Model families behind one scikit-learn estimator, with their search spaces.

`Learner` wraps LightGBM, CatBoost and scikit-learn models so that the search
treats them alike: ``fit`` with an optional validation set (early stopping)
and a wall-clock limit, then ``predict_values`` returning class probabilities
(every class, in code order) or regression values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mlpilot.exceptions import InvalidParameterError
from mlpilot.tune import Clock
from mlpilot.tune._executor import quiet
from mlpilot.tune._family import Family as TuneFamily

# Whether a fit's deadline has passed, asked after each boosting round.
Deadline = Callable[[], bool]

# Boosting rounds when a validation set lets early stopping pick the number.
_MAX_ROUNDS = 3000
_EARLY_STOP = 50
# Row-by-tree evaluations (about ten milliseconds of work) below which one thread predicts
# faster, or nearly as fast, also on a busy machine where a second thread may wait its turn.
_PARALLEL_WORK = 200_000

@dataclass(frozen=True)
class Family(TuneFamily):
    """A tabular model family: its preprocessing, relative cost and hyperparameter space.

    ``space`` maps a parameter to ``(kind, low, high, log)`` with kind one of
    ``"int"``, ``"float"``, or to ``("cat", choices)``; ``cost`` is relative to
    LightGBM's default configuration.
    """

    name: str
    encoding: str
    cost: float
    tasks: tuple[str, ...] = ("binary", "multiclass", "regression")
    space: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    text_only: bool = False
    boosted: bool = False
    interruptible: bool = False
    requires: str | None = None  # an optional package (and its extra) the family needs

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        return self.space


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("dummy", "ordinal", 0.01),
        Family(
            "lightgbm",
            "ordinal",
            1.0,
            boosted=True,
            interruptible=True,
            space={
                "learning_rate": ("float", 0.01, 0.2, True),
                "num_leaves": ("int", 4, 256, True),
                "min_child_samples": ("int", 2, 100, True),
                "colsample_bytree": ("float", 0.3, 1.0, False),
                "subsample": ("float", 0.5, 1.0, False),
                "reg_lambda": ("float", 1e-3, 10.0, True),
                "reg_alpha": ("float", 1e-3, 10.0, True),
                "extra_trees": ("cat", (False, True)),
            },
        ),
        Family(
            "catboost",
            "ordinal",
            4.0,
            boosted=True,
            interruptible=True,
            space={
                "learning_rate": ("float", 0.02, 0.2, True),
                "depth": ("int", 4, 8, False),
                "l2_leaf_reg": ("float", 1.0, 10.0, True),
            },
        ),
        Family(
            "xgboost",
            "ordinal",
            1.5,
            boosted=True,
            interruptible=True,
            requires="xgboost",
            space={
                "learning_rate": ("float", 0.01, 0.2, True),
                "max_depth": ("int", 3, 10, False),
                "min_child_weight": ("float", 0.5, 20.0, True),
                "subsample": ("float", 0.5, 1.0, False),
                "colsample_bytree": ("float", 0.3, 1.0, False),
                "reg_lambda": ("float", 1e-3, 10.0, True),
                "reg_alpha": ("float", 1e-3, 10.0, True),
            },
        ),
        Family("hist_gradient_boosting", "ordinal", 5.0, boosted=True),
        Family("extra_trees", "ordinal", 1.5),
        Family("random_forest", "ordinal", 2.0),
        Family("linear", "onehot", 0.3),
        Family("knn", "onehot", 0.5),
        Family("naive_bayes", "onehot", 0.05, tasks=("binary", "multiclass"), text_only=True),
    )
}


def _expiry(stop_at: float | None, clock: Clock) -> Deadline | None:
    """Whether ``clock`` has reached ``stop_at`` (None: no deadline)."""
    if stop_at is None:
        return None
    deadline = stop_at

    def expired() -> bool:
        return clock() >= deadline

    return expired


def _lightgbm_deadline(expired: Deadline | None) -> Any:
    import lightgbm

    def callback(env: Any) -> None:
        if expired is not None and expired():
            raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list or [])

    callback.order = 40  # type: ignore[attr-defined]
    return callback


def _xgboost_deadline(expired: Deadline | None) -> Any:
    import xgboost

    class Stop(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return expired is not None and expired()

    return Stop()


class _CatBoostDeadline:
    def __init__(self, expired: Deadline | None) -> None:
        self.expired = expired

    def after_iteration(self, info: Any) -> bool:
        return self.expired is None or not self.expired()


def _dense(X: Any) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


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
    ) -> Learner:
        """Fit on ``X, y``; early-stop on ``X_val, y_val`` if given; stop at ``stop_at``.

        ``stop_at`` is a reading of ``clock`` (the run's budget clock): a boosted
        fit ends after the first round that finishes at or past it. Other
        families cannot be interrupted and ignore it.
        """
        if self.family not in FAMILIES:
            raise InvalidParameterError(
                f"Unknown model family {self.family!r}. Accepted: {', '.join(FAMILIES)}."
            )
        params = dict(self.params or {})
        fit = getattr(self, f"_fit_{self.family}")
        with quiet(self.n_jobs):
            fit(X, np.asarray(y), X_val, y_val, params, _expiry(stop_at, clock))
        return self

    @property
    def _classifier(self) -> bool:
        return self.task != "regression"

    def _fit_dummy(self, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict, expired: Any) -> None:
        from sklearn.dummy import DummyClassifier, DummyRegressor

        model = DummyClassifier(strategy="prior") if self._classifier else DummyRegressor()
        self.estimator_ = model.fit(np.zeros((X.shape[0], 1)), y)
        self.n_iterations_ = 0

    def _fit_lightgbm(self, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict, expired: Any) -> None:
        import lightgbm

        rounds = int(params.pop("n_estimators", _MAX_ROUNDS if X_val is not None else 500))
        subsample = params.pop("subsample", 1.0)
        base: dict[str, Any] = {
            "n_estimators": rounds,
            "learning_rate": 0.05,
            "verbose": -1,
            "n_jobs": self.n_jobs,
            "random_state": self.random_state,
            "subsample": subsample,
            "subsample_freq": 1 if subsample < 1.0 else 0,
        }
        if self.deterministic:
            base.update(deterministic=True, force_row_wise=True)
        base.update(params)
        if self._classifier:
            model: Any = lightgbm.LGBMClassifier(**base)
        else:
            model = lightgbm.LGBMRegressor(**base)
        callbacks = [_lightgbm_deadline(expired)]
        fit_kw: dict[str, Any] = {"categorical_feature": list(self.categorical_indices) or "auto"}
        if X_val is not None:
            callbacks.append(lightgbm.early_stopping(_EARLY_STOP, verbose=False))
            fit_kw["eval_set"] = [(X_val, y_val)]
        model.fit(X, y, callbacks=callbacks, **fit_kw)
        self.estimator_ = model
        best = model.best_iteration_ or model.booster_.current_iteration()
        self.n_iterations_ = int(best)

    def _catboost_frame(self, X: Any) -> pd.DataFrame:
        matrix = _dense(X)
        categorical = set(self.categorical_indices)
        columns: dict[str, np.ndarray] = {}
        for i in range(matrix.shape[1]):
            column = matrix[:, i]
            if i in categorical:
                column = np.where(np.isnan(column), -1, column).astype(np.int64)
            columns[str(i)] = column
        return pd.DataFrame(columns, index=pd.RangeIndex(matrix.shape[0]))

    def _fit_catboost(self, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict, expired: Any) -> None:
        import catboost

        rounds = int(params.pop("n_estimators", _MAX_ROUNDS if X_val is not None else 500))
        base: dict[str, Any] = {
            "iterations": rounds,
            "learning_rate": 0.08,
            "depth": 6,
            "random_seed": self.random_state,
            "thread_count": self.n_jobs,
            "verbose": 0,
            "allow_writing_files": False,
            "cat_features": [str(i) for i in self.categorical_indices],
        }
        if self.task == "multiclass":
            base["loss_function"] = "MultiClass"
        base.update(params)
        cls = catboost.CatBoostRegressor if self.task == "regression" else catboost.CatBoostClassifier
        model = cls(**base)
        fit_kw: dict[str, Any] = {"callbacks": [_CatBoostDeadline(expired)]}
        if X_val is not None:
            fit_kw.update(
                eval_set=(self._catboost_frame(X_val), y_val),
                early_stopping_rounds=_EARLY_STOP,
                use_best_model=True,
            )
        model.fit(self._catboost_frame(X), y, **fit_kw)
        self.estimator_ = model
        self.n_iterations_ = int(model.tree_count_)

    def _fit_xgboost(self, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict, expired: Any) -> None:
        import xgboost

        rounds = int(params.pop("n_estimators", _MAX_ROUNDS if X_val is not None else 500))
        categorical = set(self.categorical_indices)
        base: dict[str, Any] = {
            "n_estimators": rounds,
            "learning_rate": 0.05,
            "max_depth": 6,
            "tree_method": "hist",
            "n_jobs": self.n_jobs,
            "random_state": self.random_state,
            "verbosity": 0,
            # category codes split natively, like LightGBM's and CatBoost's
            "feature_types": ["c" if i in categorical else "q" for i in range(X.shape[1])],
            "enable_categorical": bool(categorical),
            "max_cat_to_onehot": 1,
            "callbacks": [_xgboost_deadline(expired)],
        }
        base.update(params)
        fit_kw: dict[str, Any] = {"verbose": False}
        if self._classifier:
            # XGBoost wants the classes of the fitted rows numbered 0..k-1 (a fold may lack one).
            self.xgb_classes_, y = np.unique(y, return_inverse=True)
            model: Any = xgboost.XGBClassifier(**base)
            if X_val is not None:
                known = np.isin(y_val, self.xgb_classes_)
                X_val, y_val = X_val[known], np.searchsorted(self.xgb_classes_, y_val[known])
        else:
            model = xgboost.XGBRegressor(**base)
        if X_val is not None and X_val.shape[0]:
            model.set_params(early_stopping_rounds=_EARLY_STOP)
            fit_kw["eval_set"] = [(X_val, y_val)]
        model.fit(X, y, **fit_kw)
        model.set_params(callbacks=None)  # the deadline is for fitting only; the artifact keeps no callback
        self.estimator_ = model
        best = getattr(model, "best_iteration", None)
        self.n_iterations_ = int(best + 1 if best is not None else model.get_booster().num_boosted_rounds())

    def _fit_hist_gradient_boosting(
        self, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict, expired: Any
    ) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        n_features = X.shape[1]
        mask = np.zeros(n_features, dtype=bool)
        mask[list(self.categorical_indices)] = True
        iterations = params.pop("n_estimators", None)
        base: dict[str, Any] = {
            "learning_rate": 0.08,
            "max_iter": iterations or 1000,
            "max_leaf_nodes": 31,
            "min_samples_leaf": 10,
            "l2_regularization": 0.1,
            "categorical_features": mask if mask.any() else None,
            "early_stopping": iterations is None and X.shape[0] > 200,
            "n_iter_no_change": 20,
            "validation_fraction": 0.1,
            "random_state": self.random_state,
        }
        base.update(params)
        cls = HistGradientBoostingRegressor if self.task == "regression" else HistGradientBoostingClassifier
        model = cls(**base).fit(_dense(X), y)
        self.estimator_ = model
        self.n_iterations_ = int(model.n_iter_)

    def _fit_forest(self, X: Any, y: np.ndarray, params: dict, extra: bool) -> None:
        from sklearn import ensemble

        n = X.shape[0]
        base: dict[str, Any] = {
            "n_estimators": 200,
            "max_features": "sqrt" if self._classifier else 0.6,
            "min_samples_leaf": 1 if n < 10000 else 2,
            "n_jobs": self.n_jobs,
            "random_state": self.random_state,
        }
        base.update(params)
        name = ("ExtraTrees" if extra else "RandomForest") + (
            "Regressor" if self.task == "regression" else "Classifier"
        )
        self.estimator_ = getattr(ensemble, name)(**base).fit(_dense(X), y)
        self.n_iterations_ = int(base["n_estimators"])

    def _fit_extra_trees(self, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict, expired: Any) -> None:
        self._fit_forest(X, y, params, extra=True)

    def _fit_random_forest(self, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict, expired: Any) -> None:
        self._fit_forest(X, y, params, extra=False)

    def _fit_linear(self, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict, expired: Any) -> None:
        from sklearn.linear_model import LogisticRegression, Ridge

        if self._classifier:
            model: Any = LogisticRegression(C=params.get("C", 1.0), max_iter=300)
        else:
            model = Ridge(alpha=params.get("alpha", 1.0))
        self.estimator_ = model.fit(X, y)
        self.n_iterations_ = 0

    def _fit_knn(self, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict, expired: Any) -> None:
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        k = min(int(params.get("n_neighbors", 15)), max(1, X.shape[0] - 1))
        cls = KNeighborsRegressor if self.task == "regression" else KNeighborsClassifier
        self.estimator_ = cls(n_neighbors=k, weights="distance", n_jobs=self.n_jobs).fit(X, y)
        self.n_iterations_ = 0

    def _fit_naive_bayes(self, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict, expired: Any) -> None:
        from sklearn.naive_bayes import ComplementNB

        self.estimator_ = ComplementNB(alpha=params.get("alpha", 0.3)).fit(X, y)
        self.n_iterations_ = 0

    # -- prediction -------------------------------------------------------------

    def predict_values(self, X: Any, *, n_jobs: int | None = None) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` or regression values ``(n,)``.

        ``n_jobs`` threads predict with LightGBM and CatBoost when the batch is
        large enough to gain from them; the values do not depend on it. None
        keeps the threads the model was fitted with.
        """
        check_is_fitted(self, "estimator_")
        model = self.estimator_
        kwargs: dict[str, Any] = {}
        if self.family == "lightgbm":
            if n_jobs is not None:
                kwargs["num_threads"] = _threads(n_jobs, X.shape[0] * model.booster_.num_trees())
        elif self.family == "catboost":
            X = self._catboost_frame(X)
            if n_jobs is not None:
                kwargs["thread_count"] = _threads(n_jobs, X.shape[0] * model.tree_count_)
        elif self.family in ("extra_trees", "random_forest"):
            proba = _forest_values(model, X, classifier=self._classifier)
            if not self._classifier:
                return proba
            return self._spread(proba)
        elif self.family == "hist_gradient_boosting":
            X = _dense(X)
        elif self.family == "dummy":
            X = np.zeros((X.shape[0], 1))
        with quiet():
            if not self._classifier:
                return np.asarray(model.predict(X, **kwargs), dtype=float).ravel()
            proba = np.asarray(model.predict_proba(X, **kwargs), dtype=float)
        return self._spread(proba)

    def _spread(self, proba: np.ndarray) -> np.ndarray:
        """Probabilities over the model's classes, placed in the columns of every class code."""
        full = np.zeros((proba.shape[0], self.n_classes))
        classes = self.xgb_classes_ if self.family == "xgboost" else self.estimator_.classes_
        full[:, np.asarray(classes, dtype=int)] = proba
        return full


def _threads(n_jobs: int, work: int) -> int:
    from joblib import effective_n_jobs

    return effective_n_jobs(n_jobs) if work >= _PARALLEL_WORK else 1


def _forest_values(model: Any, X: Any, *, classifier: bool) -> np.ndarray:
    """A fitted forest's ``predict_proba`` or ``predict``, tree by tree in the same order.

    Skips scikit-learn's per-call input checks and thread pool, which cost more
    than the trees themselves on small batches; the result is the same.
    """
    matrix = np.ascontiguousarray(_dense(X), dtype=np.float32)  # the trees' own dtype
    total: np.ndarray
    if classifier:
        total = np.zeros((matrix.shape[0], int(model.n_classes_)))
        for tree in model.estimators_:
            total += tree.predict_proba(matrix, check_input=False)
    else:
        total = np.zeros(matrix.shape[0])
        for tree in model.estimators_:
            total += tree.predict(matrix, check_input=False)
    total /= len(model.estimators_)
    return total
