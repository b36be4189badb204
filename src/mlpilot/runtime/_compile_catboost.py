"""CatBoost's oblivious trees as a few vectorised numpy operations.

An oblivious tree of depth ``d`` asks the same ``d`` questions ("is feature
``f`` above border ``b``?") at every node of a level, so a row's leaf is the
``d``-bit number of its answers. Trees of one depth stack into arrays: one
comparison of the rows' features against every border of every tree, one dot
product with the bit weights, one gather of the leaf values, one sum. The
trees, borders and leaf values come from the model's own JSON export.

Only float-feature splits compile: a model that splits on categorical
features (one-hot values or CTR statistics, which CatBoost computes from
hashed values) raises `CompileError`, and the learner keeps its library path.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from mlpilot.runtime._compile_steps import CompileError

#: CatBoost losses whose raw value becomes the prediction as compiled here.
_CLASSIFIER_LOSSES = ("Logloss", "CrossEntropy", "MultiClass")
_REGRESSION_LOSSES = ("RMSE", "MAE", "Quantile", "MAPE", "Huber", "Lq", "Expectile")


def _export(model: Any) -> dict[str, Any]:
    handle, path = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    try:
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
        return data
    finally:
        os.unlink(path)


class _Level:
    """The trees of one depth: features ``(T, d)``, borders ``(T, d)``, NaN answers, leaves ``(T, 2**d, D)``."""

    def __init__(self, features: list[list[int]], borders: list[list[float]], nan_true: list[list[bool]],
                 leaves: list[np.ndarray]) -> None:
        self.features = np.asarray(features, dtype=np.intp)
        self.borders = np.asarray(borders, dtype=float)
        self.nan_true = np.asarray(nan_true, dtype=bool)
        self.leaves = np.stack(leaves)
        depth = self.features.shape[1]
        self.weights = (1 << np.arange(depth)).astype(np.intp)
        self.trees = np.arange(self.features.shape[0])

    def sum(self, X: np.ndarray) -> np.ndarray:
        values = X[:, self.features]  # (n, T, d)
        bits = np.where(np.isnan(values), self.nan_true, values > self.borders)
        index = bits.astype(np.intp) @ self.weights  # (n, T)
        result: np.ndarray = self.leaves[self.trees, index].sum(axis=1)  # (n, D)
        return result


class CatBoostTrees:
    """A fitted CatBoost model as stacked oblivious trees; `values` gives what ``predict_proba``/``predict`` give.

    Parameters
    ----------
    model : CatBoostClassifier or CatBoostRegressor
    classifier : bool
        Probabilities (sigmoid or softmax of the raw value) rather than values.

    Raises
    ------
    CompileError
        When a tree splits on anything but a float feature, or the loss is not one compiled here.
    """

    def __init__(self, model: Any, *, classifier: bool) -> None:
        loss = str(model.get_all_params().get("loss_function", ""))
        if loss not in (_CLASSIFIER_LOSSES if classifier else _REGRESSION_LOSSES):
            raise CompileError(f"CatBoost loss {loss!r}")
        self.softmax = loss == "MultiClass"
        self.classifier = classifier
        data = _export(model)
        floats = {f["feature_index"]: f for f in data["features_info"].get("float_features", [])}
        scale, bias = data.get("scale_and_bias", [1.0, [0.0]])
        self.scale = float(scale)
        self.bias = np.asarray(bias, dtype=float)
        dimension = len(self.bias)
        groups: dict[int, tuple[list[list[int]], list[list[float]], list[list[bool]], list[np.ndarray]]] = {}
        for tree in data.get("oblivious_trees", []):
            features, borders, nan_true = [], [], []
            for split in tree.get("splits") or []:  # a stump's is null
                if split.get("split_type") != "FloatFeature":
                    raise CompileError(f"a CatBoost split on a {split.get('split_type')} (categorical statistics)")
                info = floats[split["float_feature_index"]]
                features.append(int(info["flat_feature_index"]))
                borders.append(float(split["border"]))
                nan_true.append(info.get("nan_value_treatment") == "AsTrue")
            depth = len(features)
            leaves = np.asarray(tree["leaf_values"], dtype=float).reshape(1 << depth, dimension)
            group = groups.setdefault(depth, ([], [], [], []))
            group[0].append(features)
            group[1].append(borders)
            group[2].append(nan_true)
            group[3].append(leaves)
        self.constant = np.zeros(dimension)
        self.levels: list[_Level] = []
        for depth, (level_features, level_borders, level_nan, level_leaves) in sorted(groups.items()):
            if depth == 0:  # stumps without a split add their one leaf to every row
                self.constant += np.sum([leaf[0] for leaf in level_leaves], axis=0)
            else:
                self.levels.append(_Level(level_features, level_borders, level_nan, level_leaves))
        self.n_features = max((int(f["flat_feature_index"]) for f in floats.values()), default=-1) + 1

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The raw formula value ``(n, D)``: scale times the sum of the leaves, plus the bias."""
        X = np.asarray(X, dtype=float)
        total = np.broadcast_to(self.constant, (X.shape[0], len(self.constant))).copy()
        for level in self.levels:
            total += level.sum(X)
        return self.scale * total + self.bias

    def values(self, X: np.ndarray) -> np.ndarray:
        raw = self.raw(X)
        if not self.classifier:
            return raw[:, 0]
        if not self.softmax:
            p = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            return np.column_stack([1.0 - p, p])
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
