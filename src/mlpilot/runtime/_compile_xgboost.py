"""XGBoost's trees as vectorised numpy (`FlatTrees`), computed in float32 as XGBoost computes them.

The booster's own JSON model gives every tree as arrays (children, split
feature and condition, default direction, categorical partitions, leaf
values) and the base score. A row goes left when its float32 value is below
the split condition, to the default side when it is missing, and, at a
categorical split, right when its category is in the node's set. The leaves
of each output add up in float32 in tree order after the base margin, and the
objective's transform (sigmoid, softmax) runs in float32 with the C
library's ``expf`` too, so the values are XGBoost's own bit for bit
(verification at load checks it). The JSON prints the base score to 7
digits; the float32 XGBoost holds is found by scoring probe rows.

Only the trees the estimator predicts with count (up to its best iteration
after early stopping). Objectives other than squared/absolute/pseudo-Huber
error, ``binary:logistic`` and ``multi:softprob``, multi-target models and
pandas-category recoding raise `CompileError`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
from typing import Any

import numpy as np

from mlpilot.runtime._compile_forest import FlatTrees
from mlpilot.runtime._compile_steps import CompileError

_IDENTITY = ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror")
_SIGMOID = ("binary:logistic",)
_SOFTMAX = ("multi:softprob",)
_F = np.float32
#: float32 steps either side of the printed base score tried by `XGBoostTrees._calibrate`.
_BASE_STEPS = 16
#: Rows scored by the booster to find its base margin.
_PROBES = 256


@functools.cache
def _expf() -> Any:
    """The C library's float32 ``expf`` as a ufunc (numpy's own float32 ``exp`` rounds differently)."""
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    libm = ctypes.CDLL(name)
    libm.expf.restype, libm.expf.argtypes = ctypes.c_float, [ctypes.c_float]
    return np.frompyfunc(libm.expf, 1, 1)


def _exp32(x: np.ndarray) -> np.ndarray:
    expf = _expf()
    if expf is None:  # verification at load decides whether numpy's is close enough
        return np.exp(x)
    return np.asarray(expf(x), dtype=_F).reshape(x.shape)


def _booster(model: Any) -> Any:
    """The booster limited to the rounds ``predict`` uses (XGBoost's sklearn wrapper's own rule)."""
    booster = model.get_booster()
    try:
        rounds = int(model.best_iteration) + 1
    except AttributeError:  # no early stopping: every round
        return booster
    return booster if rounds >= booster.num_boosted_rounds() else booster[:rounds]


def _floats(text: str) -> np.ndarray:
    return np.asarray([float(v) for v in str(text).strip("[]").split(",") if v.strip()], dtype=_F)


class XGBoostTrees:
    """A fitted ``XGBClassifier`` / ``XGBRegressor``; `values` gives its ``predict_proba`` / ``predict``.

    Parameters
    ----------
    model : XGBClassifier or XGBRegressor
    classifier : bool
        Class probabilities rather than values.

    Raises
    ------
    CompileError
        For an objective, tree kind or input encoding not compiled here.
    """

    def __init__(self, model: Any, *, classifier: bool) -> None:
        booster_ = _booster(model)
        data = json.loads(bytes(booster_.save_raw("json")))
        learner = data["learner"]
        objective = str(learner["objective"]["name"])
        if objective not in (_SIGMOID + _SOFTMAX if classifier else _IDENTITY):
            raise CompileError(f"XGBoost objective {objective!r}")
        booster = learner["gradient_booster"]
        if booster.get("name") not in (None, "gbtree"):
            raise CompileError(f"XGBoost booster {booster.get('name')!r}")
        params = learner["learner_model_param"]
        if int(params.get("num_target", 1)) > 1:
            raise CompileError("a multi-target XGBoost model")
        trees_model = booster["model"]
        if any(trees_model.get("cats", {}).get(key) for key in ("enc", "feature_segments", "sorted_idx")):
            raise CompileError("an XGBoost model that recodes pandas categories")
        self.objective = objective
        from scipy.special import expit

        self._expit = expit
        self.n_outputs = max(1, int(params.get("num_class", 0)))
        base = _floats(params["base_score"])
        if objective in _SIGMOID:  # the logistic objective's ProbToMargin, in float32
            base = -np.log(_F(1.0) / base - _F(1.0))
        self.base = np.broadcast_to(base, (self.n_outputs,)).astype(_F)
        trees = trees_model["trees"]
        self.output = np.asarray(trees_model["tree_info"], dtype=np.intp)[: len(trees)]
        self.trees, self.leaf_values = self._flatten(trees)
        self.n_features = int(params["num_feature"])
        # per output, its trees' columns in tree order
        self.columns = [np.flatnonzero(self.output == k) for k in range(self.n_outputs)]
        self._calibrate(booster_)

    def _calibrate(self, booster: Any) -> None:
        """Set the base margin to the float32 XGBoost holds (the JSON prints it to 7 digits).

        Probe rows are drawn from the trees' own split conditions (and missing
        values), so that they reach many leaves; the booster scores them, and of
        the float32 values within a few steps of the printed base, the one whose
        sums reproduce every probe's margin is kept.
        """
        rng = np.random.default_rng(0)
        probes = np.full((_PROBES, self.n_features), np.nan, dtype=_F)
        inner = ~self.trees.leaf
        for j in range(self.n_features):
            splits = np.unique(self.trees.threshold[inner & (self.trees.feature == j)])
            if splits.size:
                near = np.concatenate([splits, np.nextafter(splits, _F(-np.inf)), [np.nan]]).astype(_F)
                probes[:, j] = rng.choice(near, size=_PROBES)
        target = np.asarray(booster.inplace_predict(probes, predict_type="margin"), dtype=_F)
        target = target.reshape(_PROBES, self.n_outputs)
        for k in range(self.n_outputs):
            printed = self.base[k]
            steps = [printed]
            up = down = printed
            for _ in range(_BASE_STEPS):
                up, down = np.nextafter(up, _F(np.inf)), np.nextafter(down, _F(-np.inf))
                steps += [up, down]
            for candidate in steps:
                self.base[k] = candidate
                if np.array_equal(self.margin(probes)[:, k], target[:, k]):
                    break
            else:
                raise CompileError("XGBoost's base margin could not be reproduced in float32")

    @staticmethod
    def _flatten(trees: list[dict[str, Any]]) -> tuple[FlatTrees, np.ndarray]:
        lefts, rights, features, conditions, defaults, roots = [], [], [], [], [], []
        categorical, sets = [], []
        offset = 0
        for tree in trees:
            if int(tree["tree_param"].get("size_leaf_vector", 1)) > 1:
                raise CompileError("an XGBoost model with vector leaves")
            left = np.asarray(tree["left_children"], dtype=np.intp)
            right = np.asarray(tree["right_children"], dtype=np.intp)
            lefts.append(np.where(left < 0, -1, left + offset))
            rights.append(np.where(right < 0, -1, right + offset))
            features.append(np.asarray(tree["split_indices"], dtype=np.intp))
            conditions.append(np.asarray(tree["split_conditions"], dtype=_F))  # leaf values at leaves
            defaults.append(np.asarray(tree["default_left"], dtype=bool))
            kinds = np.asarray(tree.get("split_type") or np.zeros(len(left)), dtype=bool)
            categorical.append(kinds)
            node_sets: dict[int, list[int]] = {}
            chosen = tree.get("categories", [])
            for node, start, size in zip(tree.get("categories_nodes", []), tree.get("categories_segments", []),
                                         tree.get("categories_sizes", []), strict=True):
                node_sets[int(node) + offset] = [int(c) for c in chosen[start:start + size]]
            sets.append(node_sets)
            roots.append(offset)
            offset += len(left)
        cats = np.concatenate(categorical) if categorical else np.zeros(0, dtype=bool)
        table: np.ndarray | None = None
        if cats.any():
            merged = {node: values for node_sets in sets for node, values in node_sets.items()}
            width = max((max(v, default=-1) for v in merged.values()), default=-1) + 1
            table = np.zeros((offset, max(width, 1)), dtype=bool)
            for node, values in merged.items():
                table[node, values] = True
        conditions_all = np.concatenate(conditions)
        flat = FlatTrees(np.concatenate(lefts), np.concatenate(rights), np.concatenate(features), conditions_all,
                         np.concatenate(defaults), np.asarray(roots), strict=True, categories=table,
                         categorical=cats)
        return flat, conditions_all

    def margin(self, X: np.ndarray) -> np.ndarray:
        """The raw scores ``(n, n_outputs)`` in float32: base margin, then each tree's leaf, in order."""
        matrix = np.asarray(X, dtype=_F)
        leaves = self.leaf_values[self.trees.leaves(matrix)]  # (n, T) float32
        out = np.empty((matrix.shape[0], self.n_outputs), dtype=_F)
        for k, columns in enumerate(self.columns):
            terms = np.empty((matrix.shape[0], len(columns) + 1), dtype=_F)
            terms[:, 0] = self.base[k]
            terms[:, 1:] = leaves[:, columns]
            out[:, k] = np.cumsum(terms, axis=1, dtype=_F)[:, -1]  # sequential, as XGBoost adds
        return out

    def values(self, X: np.ndarray) -> np.ndarray:
        margin = self.margin(X)
        if self.objective in _IDENTITY:
            return margin[:, 0].astype(float)
        if self.objective in _SIGMOID:
            p = self._expit(margin[:, 0])  # float32 1 / (1 + expf(-x)), XGBoost's sigmoid
            return np.column_stack([_F(1.0) - p, p]).astype(float)
        top = margin.max(axis=1, keepdims=True)
        e = _exp32(margin - top)
        total = np.cumsum(e.astype(float), axis=1)[:, -1:].astype(_F)  # XGBoost sums in double
        return (e / total).astype(float)
