"""The tabular model families: one class each, declaring its search space, relative cost and fit/predict.

Each family derives from `Family` (on the shared `mlpilot.tune` base) and says
how its library model is fitted on a preprocessed matrix (with an optional
validation set for early stopping and a deadline) and how it predicts; the
search reads only the declarations (``encoding``, ``cost``, ``tasks``,
``space``, ``boosted``, ``interruptible``) and `Learner` calls ``fit`` /
``predict``. ``prediction_parts`` is the hook the model runtime's compiler
calls (`PredictionParts`): it never looks inside a family itself.
`FAMILIES` is the one registry, by name, in the order the search lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mlpilot.tune._executor import quiet
from mlpilot.tune._family import Family as TuneFamily

if TYPE_CHECKING:
    from mlpilot.search._learners import Learner

# Whether a fit's deadline has passed, asked after each boosting round.
Deadline = Callable[[], bool]

# Boosting rounds when a validation set lets early stopping pick the number.
_MAX_ROUNDS = 3000
_EARLY_STOP = 50
# Row-by-tree evaluations (about ten milliseconds of work) below which one thread predicts
# faster, or nearly as fast, also on a busy machine where a second thread may wait its turn.
_PARALLEL_WORK = 200_000


@dataclass(frozen=True)
class PredictionParts:
    """What `Learner.predict_values` computes, told to a compiler so that it can do the same faster.

    Attributes
    ----------
    estimator : object or None
        The library model whose own ``predict_proba`` (classifiers) or
        ``predict`` (regressors), called on the learner's input matrix, gives
        the learner's values before they are spread over the class codes.
        None: only ``predict_values`` gives them.
    classes : ndarray of int or None
        The class code of each of the estimator's probability columns (None for regression).
    n_classes : int
        Columns of the spread probabilities.
    small_batch : callable, optional
        The learner's values for a few rows, cheaper than ``predict_values``
        (CatBoost fed plain lists); for when ``estimator`` does not compile.
    """

    estimator: Any | None
    classes: np.ndarray | None
    n_classes: int
    small_batch: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class Family(TuneFamily):
    """A tabular model family: its preprocessing, relative cost and hyperparameter space.

    ``space`` maps a parameter to ``(kind, low, high, log)`` with kind one of
    ``"int"``, ``"float"``, or to ``("cat", choices)``; ``cost`` is relative to
    LightGBM's default configuration. Subclasses implement `fit` and may
    change how the fitted model predicts (`library_input`, `predict_kwargs`,
    `predict`) and what a compiler may use (`prediction_parts`).
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
    weighted: bool = True  # whether its fit honours sample weights (the search refuses it with weights if not)

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        return self.space

    # -- fitting ----------------------------------------------------------------

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        """Fit the library model on ``X, y`` and set ``learner.estimator_`` and ``learner.n_iterations_``.

        ``params`` (a copy, the family may pop from it) are the learner's
        hyperparameters; ``X_val, y_val`` the early-stopping set (or None);
        ``expired`` the fit's deadline (None: none), asked after each boosting round;
        ``sample_weight`` each training row's weight (None: every row counts once),
        given only to a family that declares ``weighted``; ``val_weight`` the
        early-stopping rows' weights (the boosted families score their rounds with them).
        """
        raise NotImplementedError

    def state_bytes(self, learner: Learner) -> int:
        """Bytes of the fitted model's arrays where they can grow large (0: it stays small).

        What saving the model costs grows with them (`mlpilot.tune._budget.SAVE_SECONDS_PER_BYTE`):
        the search keeps that time back for the registered members.
        """
        return 0

    # -- prediction -------------------------------------------------------------

    def library_input(self, learner: Learner, X: Any) -> Any:
        """The input the fitted library model predicts on, from the learner's matrix."""
        return X

    def predict_kwargs(self, learner: Learner, X: Any, n_jobs: int | None) -> dict[str, Any]:
        """Keyword arguments of the library's predict call (threads)."""
        return {}

    def classes(self, learner: Learner) -> np.ndarray:
        """The class codes of the library model's probability columns."""
        return np.asarray(learner.estimator_.classes_)

    def predict(self, learner: Learner, X: Any, n_jobs: int | None) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` over every class code, or regression values ``(n,)``."""
        kwargs = self.predict_kwargs(learner, X, n_jobs)
        X = self.library_input(learner, X)
        model = learner.estimator_
        with quiet():
            if not learner.classifier:
                return np.asarray(model.predict(X, **kwargs), dtype=float).ravel()
            proba = np.asarray(model.predict_proba(X, **kwargs), dtype=float)
        return self.spread(learner, proba)

    def spread(self, learner: Learner, proba: np.ndarray) -> np.ndarray:
        """Probabilities over the model's classes, placed in the columns of every class code."""
        full = np.zeros((proba.shape[0], learner.n_classes))
        full[:, np.asarray(self.classes(learner), dtype=int)] = proba
        return full

    def prediction_parts(self, learner: Learner) -> PredictionParts:
        """The compiler's hook (see `PredictionParts`); by default only ``predict_values`` predicts."""
        return PredictionParts(None, self._codes(learner), int(learner.n_classes))

    def _codes(self, learner: Learner) -> np.ndarray | None:
        return np.asarray(self.classes(learner), dtype=int) if learner.classifier else None


def _rounds(params: dict[str, Any], X_val: Any) -> int:
    return int(params.pop("n_estimators", _MAX_ROUNDS if X_val is not None else 500))


def _dense(X: Any) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def _threads(n_jobs: int, work: int) -> int:
    from joblib import effective_n_jobs

    return effective_n_jobs(n_jobs) if work >= _PARALLEL_WORK else 1


@dataclass(frozen=True)
class Dummy(Family):
    """The prior (classes) or the mean (regression): the baseline every candidate must beat."""

    name: str = "dummy"
    encoding: str = "ordinal"
    cost: float = 0.01

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        from sklearn.dummy import DummyClassifier, DummyRegressor

        model = DummyClassifier(strategy="prior") if learner.classifier else DummyRegressor()
        learner.estimator_ = model.fit(np.zeros((X.shape[0], 1)), y, sample_weight=sample_weight)
        learner.n_iterations_ = 0

    def library_input(self, learner: Learner, X: Any) -> Any:
        return np.zeros((X.shape[0], 1))


def _lightgbm_deadline(expired: Deadline | None) -> Any:
    import lightgbm

    def callback(env: Any) -> None:
        if expired is not None and expired():
            raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list or [])

    callback.order = 40  # type: ignore[attr-defined]
    return callback


@dataclass(frozen=True)
class LightGBM(Family):
    """LightGBM's gradient-boosted trees, category codes split natively."""

    name: str = "lightgbm"
    encoding: str = "ordinal"
    cost: float = 1.0
    boosted: bool = True
    interruptible: bool = True
    space: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {
        "learning_rate": ("float", 0.01, 0.2, True),
        "num_leaves": ("int", 4, 256, True),
        "min_child_samples": ("int", 2, 100, True),
        "colsample_bytree": ("float", 0.3, 1.0, False),
        "subsample": ("float", 0.5, 1.0, False),
        "reg_lambda": ("float", 1e-3, 10.0, True),
        "reg_alpha": ("float", 1e-3, 10.0, True),
        "extra_trees": ("cat", (False, True)),
    })

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        import lightgbm

        rounds = _rounds(params, X_val)
        subsample = params.pop("subsample", 1.0)
        base: dict[str, Any] = {
            "n_estimators": rounds,
            "learning_rate": 0.05,
            "verbose": -1,
            "n_jobs": learner.n_jobs,
            "random_state": learner.random_state,
            "subsample": subsample,
            "subsample_freq": 1 if subsample < 1.0 else 0,
        }
        if learner.deterministic:
            base.update(deterministic=True, force_row_wise=True)
        base.update(params)
        if learner.classifier:
            model: Any = lightgbm.LGBMClassifier(**base)
        else:
            model = lightgbm.LGBMRegressor(**base)
        callbacks = [_lightgbm_deadline(expired)]
        fit_kw: dict[str, Any] = {"categorical_feature": list(learner.categorical_indices) or "auto"}
        if X_val is not None:
            callbacks.append(lightgbm.early_stopping(_EARLY_STOP, verbose=False))
            fit_kw["eval_set"] = [(X_val, y_val)]
            if val_weight is not None:
                fit_kw["eval_sample_weight"] = [val_weight]
        model.fit(X, y, sample_weight=sample_weight, callbacks=callbacks, **fit_kw)
        learner.estimator_ = model
        best = model.best_iteration_ or model.booster_.current_iteration()
        learner.n_iterations_ = int(best)

    def predict_kwargs(self, learner: Learner, X: Any, n_jobs: int | None) -> dict[str, Any]:
        if n_jobs is None:
            return {}
        return {"num_threads": _threads(n_jobs, X.shape[0] * learner.estimator_.booster_.num_trees())}

    def prediction_parts(self, learner: Learner) -> PredictionParts:
        return PredictionParts(learner.estimator_, self._codes(learner), int(learner.n_classes))


class _CatBoostDeadline:
    def __init__(self, expired: Deadline | None) -> None:
        self.expired = expired

    def after_iteration(self, info: Any) -> bool:
        return self.expired is None or not self.expired()


@dataclass(frozen=True)
class CatBoost(Family):
    """CatBoost's oblivious trees; category codes become CatBoost categories (-1 for missing)."""

    name: str = "catboost"
    encoding: str = "ordinal"
    cost: float = 4.0
    boosted: bool = True
    interruptible: bool = True
    space: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {
        "learning_rate": ("float", 0.02, 0.2, True),
        "depth": ("int", 4, 8, False),
        "l2_leaf_reg": ("float", 1.0, 10.0, True),
    })

    def library_input(self, learner: Learner, X: Any) -> pd.DataFrame:
        matrix = _dense(X)
        categorical = set(learner.categorical_indices)
        columns: dict[str, np.ndarray] = {}
        for i in range(matrix.shape[1]):
            column = matrix[:, i]
            if i in categorical:
                column = np.where(np.isnan(column), -1, column).astype(np.int64)
            columns[str(i)] = column
        return pd.DataFrame(columns, index=pd.RangeIndex(matrix.shape[0]))

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        import catboost

        rounds = _rounds(params, X_val)
        base: dict[str, Any] = {
            "iterations": rounds,
            "learning_rate": 0.08,
            "depth": 6,
            "random_seed": learner.random_state,
            "thread_count": learner.n_jobs,
            "verbose": 0,
            "allow_writing_files": False,
            "cat_features": [str(i) for i in learner.categorical_indices],
        }
        if learner.task == "multiclass":
            base["loss_function"] = "MultiClass"
        base.update(params)
        cls = catboost.CatBoostRegressor if learner.task == "regression" else catboost.CatBoostClassifier
        model = cls(**base)
        fit_kw: dict[str, Any] = {"callbacks": [_CatBoostDeadline(expired)]}
        if X_val is not None:
            eval_X = self.library_input(learner, X_val)
            fit_kw.update(
                eval_set=(eval_X, y_val) if val_weight is None else catboost.Pool(
                    eval_X, y_val, weight=val_weight, cat_features=base["cat_features"]),
                early_stopping_rounds=_EARLY_STOP,
                use_best_model=True,
            )
        model.fit(self.library_input(learner, X), y, sample_weight=sample_weight, **fit_kw)
        learner.estimator_ = model
        learner.n_iterations_ = int(model.tree_count_)

    def predict_kwargs(self, learner: Learner, X: Any, n_jobs: int | None) -> dict[str, Any]:
        if n_jobs is None:
            return {}
        return {"thread_count": _threads(n_jobs, X.shape[0] * learner.estimator_.tree_count_)}

    def prediction_parts(self, learner: Learner) -> PredictionParts:
        categorical = frozenset(int(i) for i in learner.categorical_indices)
        model = learner.estimator_

        def small_batch(X: np.ndarray) -> np.ndarray:
            # library_input's encoding as plain lists, which CatBoost scores without building a frame
            rows = [[(-1 if v != v else int(v)) if j in categorical else v for j, v in enumerate(row)]
                    for row in X.tolist()]
            if learner.classifier:
                return self.spread(learner, np.asarray(model.predict_proba(rows, thread_count=1), dtype=float))
            return np.asarray(model.predict(rows, thread_count=1), dtype=float).ravel()

        return PredictionParts(model, self._codes(learner), int(learner.n_classes), small_batch)


def _xgboost_deadline(expired: Deadline | None) -> Any:
    import xgboost

    class Stop(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return expired is not None and expired()

    return Stop()


@dataclass(frozen=True)
class XGBoost(Family):
    """XGBoost's histogram trees (the ``[boost]`` extra), category codes split natively."""

    name: str = "xgboost"
    encoding: str = "ordinal"
    cost: float = 1.5
    boosted: bool = True
    interruptible: bool = True
    requires: str | None = "xgboost"
    space: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {
        "learning_rate": ("float", 0.01, 0.2, True),
        "max_depth": ("int", 3, 10, False),
        "min_child_weight": ("float", 0.5, 20.0, True),
        "subsample": ("float", 0.5, 1.0, False),
        "colsample_bytree": ("float", 0.3, 1.0, False),
        "reg_lambda": ("float", 1e-3, 10.0, True),
        "reg_alpha": ("float", 1e-3, 10.0, True),
    })

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        import xgboost

        rounds = _rounds(params, X_val)
        categorical = set(learner.categorical_indices)
        base: dict[str, Any] = {
            "n_estimators": rounds,
            "learning_rate": 0.05,
            "max_depth": 6,
            "tree_method": "hist",
            "n_jobs": learner.n_jobs,
            "random_state": learner.random_state,
            "verbosity": 0,
            # category codes split natively, like LightGBM's and CatBoost's
            "feature_types": ["c" if i in categorical else "q" for i in range(X.shape[1])],
            "enable_categorical": bool(categorical),
            "max_cat_to_onehot": 1,
            "callbacks": [_xgboost_deadline(expired)],
        }
        base.update(params)
        fit_kw: dict[str, Any] = {"verbose": False}
        if learner.classifier:
            # XGBoost wants the classes of the fitted rows numbered 0..k-1 (a fold may lack one).
            learner.xgb_classes_, y = np.unique(y, return_inverse=True)
            model: Any = xgboost.XGBClassifier(**base)
            if X_val is not None:
                known = np.isin(y_val, learner.xgb_classes_)
                X_val, y_val = X_val[known], np.searchsorted(learner.xgb_classes_, y_val[known])
                val_weight = None if val_weight is None else val_weight[known]
        else:
            model = xgboost.XGBRegressor(**base)
        if X_val is not None and X_val.shape[0]:
            model.set_params(early_stopping_rounds=_EARLY_STOP)
            fit_kw["eval_set"] = [(X_val, y_val)]
            if val_weight is not None:
                fit_kw["sample_weight_eval_set"] = [val_weight]
        model.fit(X, y, sample_weight=sample_weight, **fit_kw)
        model.set_params(callbacks=None)  # the deadline is for fitting only; the artifact keeps no callback
        learner.estimator_ = model
        best = getattr(model, "best_iteration", None)
        learner.n_iterations_ = int(best + 1 if best is not None else model.get_booster().num_boosted_rounds())

    def classes(self, learner: Learner) -> np.ndarray:
        return np.asarray(learner.xgb_classes_)

    def prediction_parts(self, learner: Learner) -> PredictionParts:
        return PredictionParts(learner.estimator_, self._codes(learner), int(learner.n_classes))


@dataclass(frozen=True)
class HistGradientBoosting(Family):
    """scikit-learn's histogram gradient boosting (its own early stopping on a tenth of the rows)."""

    name: str = "hist_gradient_boosting"
    encoding: str = "ordinal"
    cost: float = 5.0
    boosted: bool = True

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        n_features = X.shape[1]
        mask = np.zeros(n_features, dtype=bool)
        mask[list(learner.categorical_indices)] = True
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
            "random_state": learner.random_state,
        }
        base.update(params)
        cls = HistGradientBoostingRegressor if learner.task == "regression" else HistGradientBoostingClassifier
        model = cls(**base).fit(_dense(X), y, sample_weight=sample_weight)
        learner.estimator_ = model
        learner.n_iterations_ = int(model.n_iter_)

    def library_input(self, learner: Learner, X: Any) -> Any:
        return _dense(X)


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


@dataclass(frozen=True)
class _Forest(Family):
    """A scikit-learn forest of 200 trees, predicted tree by tree (`_forest_values`)."""

    extra: bool = False

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        from sklearn import ensemble

        n = X.shape[0]
        base: dict[str, Any] = {
            "n_estimators": 200,
            "max_features": "sqrt" if learner.classifier else 0.6,
            "min_samples_leaf": 1 if n < 10000 else 2,
            "n_jobs": learner.n_jobs,
            "random_state": learner.random_state,
        }
        base.update(params)
        cls = {
            (True, True): ensemble.ExtraTreesRegressor, (True, False): ensemble.ExtraTreesClassifier,
            (False, True): ensemble.RandomForestRegressor, (False, False): ensemble.RandomForestClassifier,
        }[(self.extra, learner.task == "regression")]
        learner.estimator_ = cls(**base).fit(_dense(X), y, sample_weight=sample_weight)
        learner.n_iterations_ = int(base["n_estimators"])

    def state_bytes(self, learner: Learner) -> int:
        # each node: its 64-byte record and its value row (outputs x classes doubles); deep trees
        # on a few thousand rows make a forest of hundreds of MB
        return sum(t.tree_.node_count * (64 + 8 * t.tree_.n_outputs * int(t.tree_.max_n_classes))
                   for t in learner.estimator_.estimators_)

    def predict(self, learner: Learner, X: Any, n_jobs: int | None) -> np.ndarray:
        values = _forest_values(learner.estimator_, X, classifier=learner.classifier)
        return self.spread(learner, values) if learner.classifier else values

    def prediction_parts(self, learner: Learner) -> PredictionParts:
        return PredictionParts(learner.estimator_, self._codes(learner), int(learner.n_classes))


@dataclass(frozen=True)
class ExtraTrees(_Forest):
    """Extremely randomised trees."""

    name: str = "extra_trees"
    encoding: str = "ordinal"
    cost: float = 1.5
    extra: bool = True


@dataclass(frozen=True)
class RandomForest(_Forest):
    """A random forest."""

    name: str = "random_forest"
    encoding: str = "ordinal"
    cost: float = 2.0


@dataclass(frozen=True)
class Linear(Family):
    """Logistic regression (classes) or ridge regression on one-hot, scaled features."""

    name: str = "linear"
    encoding: str = "onehot"
    cost: float = 0.3

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        from sklearn.linear_model import LogisticRegression, Ridge

        if learner.classifier:
            model: Any = LogisticRegression(C=params.get("C", 1.0), max_iter=300)
        else:
            model = Ridge(alpha=params.get("alpha", 1.0))
        learner.estimator_ = model.fit(X, y, sample_weight=sample_weight)
        learner.n_iterations_ = 0

    def prediction_parts(self, learner: Learner) -> PredictionParts:
        return PredictionParts(learner.estimator_, self._codes(learner), int(learner.n_classes))


@dataclass(frozen=True)
class KNN(Family):
    """Distance-weighted k nearest neighbours on one-hot, scaled features."""

    name: str = "knn"
    encoding: str = "onehot"
    cost: float = 0.5

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        from mlpilot.search._knn import WeightedKNeighborsClassifier, WeightedKNeighborsRegressor

        k = min(int(params.get("n_neighbors", 15)), max(1, X.shape[0] - 1))
        regression = learner.task == "regression"
        # without weights scikit-learn's own classes (the runtime compiles them); with weights each
        # neighbour's vote times its row's weight (scikit-learn's neighbours take no sample weights)
        if sample_weight is None:
            cls: Any = KNeighborsRegressor if regression else KNeighborsClassifier
            fit_params = {}
        else:
            cls = WeightedKNeighborsRegressor if regression else WeightedKNeighborsClassifier
            fit_params = {"sample_weight": sample_weight}
        learner.estimator_ = cls(n_neighbors=k, weights="distance", n_jobs=learner.n_jobs).fit(X, y, **fit_params)
        learner.n_iterations_ = 0

    def state_bytes(self, learner: Learner) -> int:
        # the training matrix it keeps (scikit-learn's ``_fit_X``), and its copy in a k-d or ball tree
        est = learner.estimator_
        fit_x = est._fit_X
        data = sum(a.nbytes for a in (fit_x.data, fit_x.indices, fit_x.indptr)) if hasattr(fit_x, "indptr") else fit_x.nbytes
        return int(data * (2 if getattr(est, "_tree", None) is not None else 1))

    def prediction_parts(self, learner: Learner) -> PredictionParts:
        return PredictionParts(learner.estimator_, self._codes(learner), int(learner.n_classes))


@dataclass(frozen=True)
class NaiveBayes(Family):
    """Complement naive Bayes, for tables whose features are all text."""

    name: str = "naive_bayes"
    encoding: str = "onehot"
    cost: float = 0.05
    tasks: tuple[str, ...] = ("binary", "multiclass")
    text_only: bool = True

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        from sklearn.naive_bayes import ComplementNB

        learner.estimator_ = ComplementNB(alpha=params.get("alpha", 0.3)).fit(X, y, sample_weight=sample_weight)
        learner.n_iterations_ = 0


# The MLP's early stopping: the share of its training rows it validates on (at least
# `_MLP_MIN_VALIDATION` rows, else it runs its epochs out), and the epochs without a better
# validation loss after which it stops and keeps its best weights (the epochs at most).
_MLP_VALIDATION = 0.1
_MLP_MIN_VALIDATION = 20
_MLP_PATIENCE = 10
_MLP_TOLERANCE = 0.01  # the least relative fall of the validation loss that counts as better
_MLP_EPOCHS = 100


@dataclass(frozen=True)
class MLP(Family):
    """A multi-layer perceptron (scikit-learn's, Adam) on one-hot, scaled features: the neural family.

    Trained epoch by epoch (``partial_fit``): after each one the deadline is
    asked and the loss on a seeded `_MLP_VALIDATION` share of the training rows
    is measured; it stops `_MLP_PATIENCE` epochs after the best one and keeps
    that epoch's weights. A regression target is standardised for training and
    the output layer rescaled afterwards, so the library model predicts in the
    target's own units (the runtime compiles it like any scikit-learn model).
    """

    name: str = "mlp"
    encoding: str = "onehot"
    cost: float = 3.0
    interruptible: bool = True
    space: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {
        "hidden": ("cat", (64, 128, 256)),
        "layers": ("int", 1, 3, False),
        "alpha": ("float", 1e-6, 1e-2, True),
        "learning_rate_init": ("float", 3e-4, 1e-2, True),
    })

    def fit(self, learner: Learner, X: Any, y: np.ndarray, X_val: Any, y_val: Any, params: dict[str, Any],
            expired: Deadline | None, sample_weight: np.ndarray | None = None,
            val_weight: np.ndarray | None = None) -> None:
        import copy

        from sklearn.neural_network import MLPClassifier, MLPRegressor

        n = X.shape[0]
        rng = np.random.default_rng(learner.random_state)
        n_val = int(n * _MLP_VALIDATION)
        order = rng.permutation(n)
        val, train = (order[:n_val], order[n_val:]) if n_val >= _MLP_MIN_VALIDATION else (order[:0], order)
        hidden = int(params.get("hidden", 128))
        model: Any = (MLPClassifier if learner.classifier else MLPRegressor)(
            hidden_layer_sizes=(hidden,) * int(params.get("layers", 2)),
            alpha=float(params.get("alpha", 1e-4)),
            learning_rate_init=float(params.get("learning_rate_init", 1e-3)),
            batch_size=min(256, max(len(train), 1)),
            random_state=learner.random_state,
        )
        target = np.asarray(y, dtype=float if not learner.classifier else y.dtype)
        center, scale = 0.0, 1.0
        if not learner.classifier:
            center, scale = float(target[train].mean()), float(target[train].std()) or 1.0
            target = (target - center) / scale
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        classes = np.unique(y) if learner.classifier else None
        epochs = int(params.get("n_estimators", _MLP_EPOCHS))
        best: tuple[float, int, Any] = (np.inf, 0, None)
        X_train, y_train, w_train = X[train], target[train], None if weights is None else weights[train]
        X_check, y_check, w_check = X[val], target[val], None if weights is None else weights[val]
        kwargs: dict[str, Any] = {"classes": classes} if learner.classifier else {}
        epoch = 0
        with quiet():
            while epoch < epochs:
                epoch += 1
                model.partial_fit(X_train, y_train, sample_weight=w_train, **kwargs)
                if len(val):
                    loss = self._loss(model, X_check, y_check, w_check, classifier=learner.classifier)
                    if loss < best[0] * (1.0 - _MLP_TOLERANCE):
                        best = (loss, epoch, copy.deepcopy((model.coefs_, model.intercepts_)))
                    elif epoch - best[1] >= _MLP_PATIENCE:
                        break
                if expired is not None and expired():
                    break
        if best[2] is not None:
            model.coefs_, model.intercepts_ = best[2]
        if not learner.classifier:  # the output layer predicts the target's own units (identity output)
            model.coefs_[-1] = model.coefs_[-1] * scale
            model.intercepts_[-1] = model.intercepts_[-1] * scale + center
        learner.estimator_ = model
        learner.n_iterations_ = int(best[1] or epoch)

    @staticmethod
    def _loss(model: Any, X: Any, y: np.ndarray, weights: np.ndarray | None, *, classifier: bool) -> float:
        """The validation loss early stopping reads: log loss (classes) or squared error (scaled target)."""
        if classifier:
            proba = np.clip(model.predict_proba(X), 1e-15, 1.0)
            column = np.searchsorted(model.classes_, y)
            losses = -np.log(proba[np.arange(len(y)), column])
        else:
            losses = (model.predict(X) - y) ** 2
        return float(np.average(losses, weights=weights))

    def prediction_parts(self, learner: Learner) -> PredictionParts:
        return PredictionParts(learner.estimator_, self._codes(learner), int(learner.n_classes))


#: The tabular families by name, in the order the search lists them.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Dummy(), LightGBM(), CatBoost(), XGBoost(), HistGradientBoosting(), ExtraTrees(), RandomForest(),
        Linear(), KNN(), NaiveBayes(), MLP(),
    )
}
