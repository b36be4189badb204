"""Compiled final estimators: the encoded float matrix in, probabilities or values out.

Each one computes what the estimator's own ``predict_proba`` / ``predict``
computes on that matrix, without the input checks and conversions that
dominate a one-row call: LightGBM through its booster, linear models through
their coefficients, CatBoost through its oblivious trees (`_compile_catboost`),
XGBoost and scikit-learn's forests through their trees as flat arrays
(`_compile_xgboost`, `_compile_forest`), k nearest neighbours by brute force
over a small training set (`_compile_knn`),
mlpilot's learners through either of those, as their ``prediction_parts()`` hook
says (or their own ``predict_values`` for the other families).
"""

from __future__ import annotations

import array
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from mlpilot.runtime._compile_catboost import CatBoostTrees
from mlpilot.runtime._compile_forest import FLAT_ROWS, ForestTrees
from mlpilot.runtime._compile_knn import KNNSearch, TiedNeighbours
from mlpilot.runtime._compile_mlp import MLPForward
from mlpilot.runtime._compile_steps import CompileError, FeatureEncoder, RejectedInput
from mlpilot.runtime._compile_xgboost import XGBoostTrees

logger = logging.getLogger(__name__)

# Classifiers whose ``predict`` is exactly the class of highest probability, so one
# ``predict_proba`` call gives both answers. Anything else (tuned thresholds,
# custom wrappers, subclasses) is asked for ``predict`` separately.
@functools.cache
def _argmax_classes() -> frozenset[type]:
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.tree import DecisionTreeClassifier

    return frozenset({
        LGBMClassifier, LogisticRegression, RandomForestClassifier, ExtraTreesClassifier,
        HistGradientBoostingClassifier, GradientBoostingClassifier, DecisionTreeClassifier,
        KNeighborsClassifier, GaussianNB, MLPClassifier,
    })


def is_argmax_classifier(estimator: Any) -> bool:
    """Whether ``estimator.predict`` is the class of highest ``predict_proba`` (by its exact class)."""
    return type(estimator) in _argmax_classes()


# LightGBM predicts with every core by default; for the small batches a server
# sees, starting the OpenMP team costs more than the trees (16 ms against 0.5 ms
# for one row on a busy 2-core machine), and concurrent requests already use
# the cores. Large batches keep LightGBM's own threading.
SINGLE_THREAD_ROWS = 2_000


class Final:
    """Probabilities ``(n, n_classes)`` for classifiers, values ``(n,)`` for regressors."""

    #: Number of input features the estimator expects (None: not checked).
    n_features: int | None = None
    #: Scores a few rows in tens or hundreds of microseconds (fit for the event loop).
    fast = True

    def values(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def one(self, row: list[float]) -> list[float] | None:
        """`values` of one row as plain floats, exactly; ``None`` where only `values` can."""
        return None

    def bind(self, encoder: FeatureEncoder) -> None:
        """Finish compiling with the encoder in front of it (a CatBoost model tables its categorical splits).

        Raises `CompileError` where the compiled form cannot serve behind ``encoder``.
        """
        return None


class _LightGBMRow:
    """LightGBM's single-row C entry point, set up once per model.

    ``Booster.predict`` spends most of a one-row call building a predictor and
    converting the array; ``LGBM_BoosterPredictForMatSingleRowFast`` runs the
    same trees on a pointer to the row. It reaches into ``lightgbm.basic``,
    so any failure to set it up leaves ``Booster.predict`` in charge.
    """

    def __init__(self, booster: Any, *, num_iteration: int, n_features: int, n_outputs: int) -> None:
        import ctypes

        from lightgbm import basic

        self._ctypes = ctypes
        self._lib = getattr(basic, "_LIB")  # noqa: B009 - not in lightgbm's public API
        self._safe_call = basic._safe_call
        self._booster = booster  # the C config points into it: keep it alive as long as this
        self._config = ctypes.c_void_p()
        self._safe_call(self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(basic._C_API_PREDICT_NORMAL), ctypes.c_int(0),
            ctypes.c_int(num_iteration), ctypes.c_int(basic._C_API_DTYPE_FLOAT64), ctypes.c_int32(n_features),
            basic._c_str("num_threads=1"), ctypes.byref(self._config),
        ))
        self._predict = self._lib.LGBM_BoosterPredictForMatSingleRowFast
        self._out_type = ctypes.c_double * n_outputs

    def __call__(self, row: list[float]) -> list[float]:
        """The model's output(s) for one row of floats."""
        ctypes = self._ctypes
        out = self._out_type()
        data = array.array("d", row)  # a C double buffer, cheaper to fill than a ctypes array
        self._safe_call(self._predict(self._config, ctypes.c_void_p(data.buffer_info()[0]),
                                      ctypes.byref(ctypes.c_int64()), out))
        return list(out)

    def __del__(self) -> None:
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)


class LightGBMFinal(Final):
    """An ``LGBMClassifier`` / ``LGBMRegressor`` through its booster."""

    def __init__(self, estimator: Any, *, classifier: bool) -> None:
        if callable(getattr(estimator, "objective_", None)):
            raise CompileError("a LightGBM model with a custom objective returns raw scores")
        booster = estimator.booster_
        if getattr(booster, "pandas_categorical", None):
            raise CompileError("a LightGBM model trained on pandas categoricals maps categories itself")
        self.booster = booster
        self.classifier = classifier
        self.n_classes = int(estimator.n_classes_) if classifier else 1
        self.binary = classifier and self.n_classes == 2
        self.n_features = int(booster.num_feature())
        self.row: _LightGBMRow | None = None
        try:
            self.row = _LightGBMRow(
                booster, num_iteration=int(booster.best_iteration), n_features=self.n_features,
                n_outputs=self.n_classes if classifier and not self.binary else 1,
            )
        except Exception as exc:  # another lightgbm version: the general predict still works
            logger.info("LightGBM single-row prediction unavailable (%s); using Booster.predict", exc)

    def one(self, row: list[float]) -> list[float] | None:
        if self.row is None:
            return None
        out = self.row(row)
        return [1.0 - out[0], out[0]] if self.binary else out

    def values(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 1 and self.row is not None:
            out = self.one(X[0].tolist())
            return np.array([out]) if self.classifier else np.array(out)
        kwargs = {"num_threads": 1} if X.shape[0] <= SINGLE_THREAD_ROWS else {}
        result = self.booster.predict(X, **kwargs)
        if self.binary:
            # what LGBMClassifier.predict_proba returns, bit for bit
            return np.vstack((1.0 - result, result)).transpose()
        return np.asarray(result)


class LinearFinal(Final):
    """A linear model through ``coef_`` and ``intercept_``.

    Classifiers follow scikit-learn's `LogisticRegression.predict_proba`
    (sigmoid for two classes, softmax otherwise); regressors return
    ``X @ coef_ + intercept_``. Like scikit-learn, non-finite inputs are refused.
    """

    def __init__(self, estimator: Any, *, classifier: bool) -> None:
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        self._expit, self._softmax = expit, softmax  # the functions scikit-learn itself applies
        coef = np.asarray(estimator.coef_, dtype=float)
        if not classifier and coef.ndim == 2 and coef.shape[0] != 1:
            raise CompileError("a multi-output linear regressor")
        self.coef_T = coef.T
        intercept = estimator.intercept_
        self.intercept = np.asarray(intercept, dtype=float) if np.ndim(intercept) else float(intercept)
        self.classifier = classifier
        self.n_features = int(coef.shape[-1])
        if classifier and len(estimator.classes_) > 2 and coef.shape[0] != len(estimator.classes_):
            raise CompileError("a linear classifier whose coefficients do not match its classes")

    def values(self, X: np.ndarray) -> np.ndarray:
        if not np.isfinite(X).all():
            raise RejectedInput("linear models do not accept missing values")
        scores = X @ self.coef_T + self.intercept
        if scores.ndim > 1 and scores.shape[1] == 1:
            scores = scores.reshape(-1)
        if not self.classifier:
            return np.asarray(scores, dtype=float)
        if scores.ndim == 1:
            prob = self._expit(scores)
            return np.stack([1 - prob, prob], axis=1)
        return np.asarray(self._softmax(scores, copy=False))


class CatBoostFinal(Final):
    """CatBoost through its oblivious trees as numpy (`CatBoostTrees`).

    Categorical splits (one-hot, CTR) are tables built by `bind` from the encoder's category codes;
    until then (``tabled`` says why) the model has no compiled values.
    """

    def __init__(self, estimator: Any, *, classifier: bool) -> None:
        self.trees = CatBoostTrees(estimator, classifier=classifier)
        names = getattr(estimator, "feature_names_", None)
        self.n_features = len(names) if names else None
        self.tabled = self.trees.tabled

    def bind(self, encoder: FeatureEncoder) -> None:
        self.trees.bind(encoder)

    def values(self, X: np.ndarray) -> np.ndarray:
        return self.trees.values(X)


class XGBoostFinal(Final):
    """XGBoost through its trees as numpy (`XGBoostTrees`) for small batches, its own predict for large ones."""

    def __init__(self, estimator: Any, *, classifier: bool) -> None:
        self.trees = XGBoostTrees(estimator, classifier=classifier)
        self.estimator = estimator
        self.classifier = classifier
        self.n_features = self.trees.n_features

    def values(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] <= FLAT_ROWS:
            return self.trees.values(X)
        if self.classifier:
            return np.asarray(self.estimator.predict_proba(X), dtype=float)
        return np.asarray(self.estimator.predict(X), dtype=float)


class ForestFinal(Final):
    """A scikit-learn random forest or extra-trees model through its trees' arrays (`ForestTrees`)."""

    def __init__(self, estimator: Any, *, classifier: bool) -> None:
        if hasattr(estimator, "feature_names_in_"):
            raise CompileError(f"{type(estimator).__name__} was fitted on named columns")
        self.trees = ForestTrees(estimator, classifier=classifier)
        self.n_features = self.trees.n_features

    def values(self, X: np.ndarray) -> np.ndarray:
        return self.trees.values(X)


class KNNFinal(Final):
    """k nearest neighbours by brute force in numpy (`KNNSearch`) for small batches; the library otherwise.

    The library also scores a batch in which a row's k-th and next neighbour tie.
    """

    def __init__(self, estimator: Any, *, classifier: bool) -> None:
        if hasattr(estimator, "feature_names_in_"):
            raise CompileError(f"{type(estimator).__name__} was fitted on named columns")
        self.search = KNNSearch(estimator, classifier=classifier)
        self.estimator = estimator
        self.classifier = classifier
        self.n_features = self.search.n_features

    def values(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] <= FLAT_ROWS:
            try:
                return self.search.values(X)
            except TiedNeighbours:
                pass
        if self.classifier:
            return np.asarray(self.estimator.predict_proba(X), dtype=float)
        return np.asarray(self.estimator.predict(X), dtype=float).ravel()


class MLPFinal(Final):
    """scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` through its weight matrices as numpy (`MLPForward`)."""

    def __init__(self, estimator: Any, *, classifier: bool) -> None:
        self.forward = MLPForward(estimator, classifier=classifier)
        self.n_features = self.forward.n_features

    def values(self, X: np.ndarray) -> np.ndarray:
        return self.forward.values(X)


class EstimatorFinal(Final):
    """Any other estimator, called on the encoded matrix (skipping only the frame work)."""

    fast = False

    def __init__(self, estimator: Any, *, classifier: bool) -> None:
        if hasattr(estimator, "feature_names_in_"):
            raise CompileError(f"{type(estimator).__name__} was fitted on named columns")
        self.estimator = estimator
        self.classifier = classifier
        n_features = getattr(estimator, "n_features_in_", None)
        self.n_features = int(n_features) if n_features is not None else None

    def values(self, X: np.ndarray) -> np.ndarray:
        if self.classifier:
            return np.asarray(self.estimator.predict_proba(X), dtype=float)
        return np.asarray(self.estimator.predict(X))


class LearnerFinal(Final):
    """A model that tells how it predicts through a ``prediction_parts()`` hook (mlpilot's `Learner`).

    The hook (`mlpilot.search.PredictionParts`) names the library estimator
    whose own predictions, spread over the model's class codes, are the
    model's values: it is compiled as any final step (`compile_final`), and
    where it does not compile, the hook's ``small_batch`` scores a few rows
    cheaply (a CatBoost model with categorical splits, fed lists) and the
    model's own ``predict_values`` the rest, on the matrix the general path builds.
    """

    def __init__(self, learner: Any) -> None:
        parts = learner.prediction_parts()
        self.classifier = parts.classes is not None
        self.n_classes = int(parts.n_classes)
        self.codes = parts.classes
        self.inner: Final | None = None
        # compiled, but needing its encoder (`bind`) first: a CatBoost model's categorical splits
        self.pending: Final | None = None
        if parts.estimator is not None:
            try:
                self.inner = compile_final(parts.estimator, classifier=self.classifier)
            except CompileError as exc:
                if parts.small_batch is None:
                    raise
                logger.debug("%s served by the library: %s", type(parts.estimator).__name__, exc)
        if self.inner is not None and getattr(self.inner, "tabled", None) is not None:
            self.pending, self.inner = self.inner, None
        self.hook_small_batch = parts.small_batch
        self.small_batch = parts.small_batch if self.inner is None else None
        self.learner = learner
        self.n_features = self.inner.n_features if self.inner is not None else None
        self.fast = self.inner is not None or self.small_batch is not None
        self.identity = self.codes is not None and list(self.codes) == list(range(self.n_classes))

    def bind(self, encoder: FeatureEncoder) -> None:
        if self.inner is not None:
            self.inner.bind(encoder)
            return
        if self.pending is None:
            return
        try:
            self.pending.bind(encoder)
        except CompileError as exc:
            if self.hook_small_batch is None:
                raise
            logger.debug("%s served by the library: %s", type(self.learner).__name__, exc)
            return
        self.inner, self.pending, self.small_batch = self.pending, None, None
        self.n_features = self.inner.n_features
        self.fast = True

    def _spread(self, proba: np.ndarray) -> np.ndarray:
        if self.identity and proba.shape[1] == self.n_classes:
            return proba
        full = np.zeros((proba.shape[0], self.n_classes))
        full[:, self.codes] = proba
        return full

    def values(self, X: np.ndarray) -> np.ndarray:
        if self.inner is None:
            if self.small_batch is not None and X.shape[0] <= _SMALL_BATCH_ROWS:
                return self.small_batch(X)
            return np.asarray(self.learner.predict_values(X))
        if not self.classifier:
            return np.asarray(self.inner.values(X), dtype=float).ravel()
        return self._spread(self.inner.values(X))


# Up to this many rows a hook's ``small_batch`` scores them; larger batches go through ``predict_values``.
_SMALL_BATCH_ROWS = 64


FinalCompiler = Callable[[Any, bool], Final]
#: Final estimators the compiler knows, by exact class: ``compiler(estimator, classifier)``.
_FINALS: dict[type, FinalCompiler] = {}


def register_final(cls: type, compiler: FinalCompiler) -> None:
    """Compile fitted instances of ``cls`` (exactly that class) as a pipeline's last step.

    ``compiler(estimator, classifier)`` returns a `Final` or raises `CompileError`;
    ``classifier`` says whether the server answers with class probabilities.
    """
    _FINALS[cls] = compiler


def _lightgbm(estimator: Any, classifier: bool) -> Final:
    return LightGBMFinal(estimator, classifier=classifier)


def _for_task(compiled: Callable[..., Final], *, classifier: bool) -> FinalCompiler:
    """A compiler that uses ``compiled`` when the server's answer matches the estimator's kind (``classifier``).

    A classifier served as a regressor, or the reverse, is scored by the estimator itself.
    """
    def compiler(estimator: Any, as_classifier: bool) -> Final:
        if as_classifier == classifier:
            return compiled(estimator, classifier=classifier)
        return EstimatorFinal(estimator, classifier=as_classifier)

    return compiler


def _learner(learner: Any, classifier: bool) -> Final:
    return LearnerFinal(learner)


def _catboost(estimator: Any, classifier: bool) -> Final:
    return CatBoostFinal(estimator, classifier=classifier)


def _xgboost(estimator: Any, classifier: bool) -> Final:
    return XGBoostFinal(estimator, classifier=classifier)


def _mlp(estimator: Any, classifier: bool) -> Final:
    return MLPFinal(estimator, classifier=classifier)


def _loaded_optional_finals() -> None:
    """Compilers for optional libraries, registered once the library is imported (by loading a model)."""
    catboost = sys.modules.get("catboost")
    if catboost is not None:
        _FINALS.setdefault(catboost.CatBoostClassifier, _catboost)
        _FINALS.setdefault(catboost.CatBoostRegressor, _catboost)
    xgboost = sys.modules.get("xgboost")
    if xgboost is not None:
        _FINALS.setdefault(xgboost.XGBClassifier, _xgboost)
        _FINALS.setdefault(xgboost.XGBRegressor, _xgboost)


@functools.cache
def _builtin_finals() -> None:
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    from mlpilot.search import Learner
    from mlpilot.search._knn import WeightedKNeighborsClassifier, WeightedKNeighborsRegressor

    _FINALS.setdefault(LGBMClassifier, _lightgbm)
    _FINALS.setdefault(LGBMRegressor, _lightgbm)
    _FINALS.setdefault(LogisticRegression, _for_task(LinearFinal, classifier=True))
    for cls in (LinearRegression, Ridge, Lasso, ElasticNet):
        _FINALS.setdefault(cls, _for_task(LinearFinal, classifier=False))
    for cls in (RandomForestClassifier, ExtraTreesClassifier):
        _FINALS.setdefault(cls, _for_task(ForestFinal, classifier=True))
    for cls in (RandomForestRegressor, ExtraTreesRegressor):
        _FINALS.setdefault(cls, _for_task(ForestFinal, classifier=False))
    _FINALS.setdefault(KNeighborsClassifier, _for_task(KNNFinal, classifier=True))
    _FINALS.setdefault(KNeighborsRegressor, _for_task(KNNFinal, classifier=False))
    # kNN fitted with sample weights: its own predict methods on the encoded matrix
    _FINALS.setdefault(WeightedKNeighborsClassifier, _for_task(EstimatorFinal, classifier=True))
    _FINALS.setdefault(WeightedKNeighborsRegressor, _for_task(EstimatorFinal, classifier=False))
    _FINALS.setdefault(Learner, _learner)
    _FINALS.setdefault(MLPClassifier, _mlp)
    _FINALS.setdefault(MLPRegressor, _mlp)


def compile_final(estimator: Any, *, classifier: bool) -> Final:
    """The compiled form of a pipeline's last step: its registered compiler, else the estimator itself (scikit-learn only)."""
    _builtin_finals()
    if type(estimator) not in _FINALS:
        _loaded_optional_finals()
    compiler = _FINALS.get(type(estimator))
    if compiler is not None:
        return compiler(estimator, classifier)
    module = type(estimator).__module__
    if not module.startswith("sklearn."):
        raise CompileError(f"no compiled form for {module}.{type(estimator).__name__}")
    return EstimatorFinal(estimator, classifier=classifier)
