"""A feature stack's level-2 LightGBM as vectorised numpy (`FlatTrees`), for the compiled fast path.

`mlpilot.search._stack.FeatureStacker` adds a small LightGBM's raw score to
its linear layer's. Its trees come from the booster's own dump
(``Booster.dump_model``): numerical splits only (the stacker is given no
categorical features), a row goes left when its float64 value is at most the
threshold; a missing value goes to the node's default side when LightGBM
saw missing values in training for that feature (``missing_type`` NaN) and is
taken as 0.0 otherwise (``None``), as LightGBM does. Leaves add up per output
(multiclass trees take turns, one per class). ``zero_as_missing`` splits,
categorical splits and linear trees raise `CompileError`; verification at load
compares the result with the library path before the fast path is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpilot.runtime._compile_forest import FlatTrees
from mlpilot.runtime._compile_steps import CompileError


def _flatten(booster: Any) -> tuple[FlatTrees, np.ndarray, np.ndarray, int]:
    """Every tree's nodes as flat arrays, each node's leaf value, each tree's output, and the outputs' count."""
    dump = booster.dump_model()
    n_outputs = int(dump.get("num_tree_per_iteration", 1))
    left: list[int] = []
    right: list[int] = []
    feature: list[int] = []
    threshold: list[float] = []
    missing_left: list[bool] = []
    value: list[float] = []
    roots: list[int] = []
    output: list[int] = []

    def add(node: dict[str, Any]) -> int:
        index = len(left)
        left.append(-1)
        right.append(-1)
        if "leaf_value" in node or "split_feature" not in node:
            feature.append(0)
            threshold.append(0.0)
            missing_left.append(True)
            value.append(float(node.get("leaf_value", 0.0)))
            return index
        if node.get("decision_type", "<=") != "<=":
            raise CompileError(f"a feature stack's tree with a {node.get('decision_type')!r} split")
        missing = node.get("missing_type", "None")
        if missing == "Zero":
            raise CompileError("a feature stack's tree that takes zero as missing")
        cut = float(node["threshold"])
        feature.append(int(node["split_feature"]))
        threshold.append(cut)
        # NaN: the default side; None: LightGBM compares 0.0 with the threshold
        missing_left.append(bool(node.get("default_left", True)) if missing == "NaN" else cut >= 0.0)
        value.append(0.0)
        left[index] = add(node["left_child"])
        right[index] = add(node["right_child"])
        return index

    for i, tree in enumerate(dump["tree_info"]):
        roots.append(add(tree["tree_structure"]))
        output.append(i % n_outputs)
    if not roots:
        raise CompileError("a feature stack without trees")
    flat = FlatTrees(np.asarray(left), np.asarray(right), np.asarray(feature), np.asarray(threshold, dtype=float),
                     np.asarray(missing_left), np.asarray(roots), strict=False)
    return flat, np.asarray(value), np.asarray(output, dtype=np.intp), n_outputs


class CompiledFeatureStacker:
    """`FeatureStacker.combine` with the trees as numpy: the linear layer's raw score plus the trees', linked.

    Parameters
    ----------
    stacker : FeatureStacker

    Raises
    ------
    CompileError
        For trees this does not know (see the module docstring), or a linear tree booster.
    """

    inline = True

    def __init__(self, stacker: Any) -> None:
        booster = stacker.booster
        if booster.params.get("linear_tree"):
            raise CompileError("a feature stack with linear trees")
        self.stacker = stacker
        self.feature_member = stacker.feature_member
        self.n_features = int(stacker.n_features)
        self.trees, self.leaf_value, self.output, self.n_outputs = _flatten(booster)
        if int(booster.num_feature()) != self.n_features + self._level1_width():
            raise CompileError("the feature stack's trees read another number of inputs than it gives them")

    def _level1_width(self) -> int:
        linear = self.stacker.linear
        per_member = 1 if linear.task in ("regression", "binary") else linear.n_classes
        return per_member * len(linear.names)

    def raw_trees(self, M: np.ndarray) -> np.ndarray:
        """The trees' raw score of the rows of ``M`` (level-1 features, then the encoded ones)."""
        leaves = self.trees.leaves(np.ascontiguousarray(M, dtype=float))  # (n, T)
        contributions = self.leaf_value[leaves]
        if self.n_outputs == 1:
            return np.asarray(contributions.sum(axis=1))
        out = np.zeros((M.shape[0], self.n_outputs))
        for k in range(self.n_outputs):
            out[:, k] = contributions[:, self.output == k].sum(axis=1)
        return out

    def combine(self, values: list[np.ndarray], features: Any = None) -> np.ndarray:
        """What `FeatureStacker.combine` gives, the trees computed here."""
        from mlpilot.search._stack import LinearStacker, link

        stacker = self.stacker
        if features is None:
            raise CompileError("the feature stack's features were not given")
        F = np.asarray(features, dtype=float)
        if F.ndim != 2 or F.shape[1] != self.n_features:
            raise CompileError(f"the feature stack reads {self.n_features} encoded features, got {F.shape}")
        M = np.hstack([LinearStacker.features(stacker.task, values), F])
        return link(stacker.task, stacker.linear.raw(values) + self.raw_trees(M), stacker.linear.n_classes)
