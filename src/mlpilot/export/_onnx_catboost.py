"""A CatBoost member as ONNX nodes, categorical splits included, in double precision.

CatBoost's own ONNX exporter refuses models with categorical features, and mlpilot hands
CatBoost its categories as codes (`mlpilot.search` ``CatBoost.library_input``), so nearly every
CatBoost member splits on them: one-hot splits and CTR statistics of categories combined with
other categories and binarised numbers, computed by CatBoost from hashed values.

Those splits are not recomputed here. A split's answer depends only on the few inputs its CTR
combines, and each of those inputs takes few states: a category column one state per code (plus
missing), a number one state per interval between the borders the CTR uses (plus NaN). So every
such split becomes a table over the product of its inputs' states, filled by asking CatBoost
itself (``calc_leaf_indexes``: bit ``k`` of a tree's leaf is the answer of its ``k``-th split) on
one probe row per state. Float splits are compared directly, as CatBoost does, in float32.
The graph then indexes the leaves of every tree of one depth at once, like
`mlpilot.runtime._compile_catboost`, and sums them in double precision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from onnx import TensorProto

from mlpilot.exceptions import ExportError
from mlpilot.runtime._compile_catboost import _export, _Input, _Plan, _probe
from mlpilot.runtime._compile_steps import CompileError, FeatureEncoder

if TYPE_CHECKING:
    from mlpilot.export._onnx import _Graph

#: The largest table of one split (product of its inputs' states) exported.
MAX_TABLE = 1_000_000
_CLASSIFIER_LOSSES = ("Logloss", "CrossEntropy", "MultiClass")
_REGRESSION_LOSSES = ("RMSE", "MAE", "Quantile", "MAPE", "Huber", "Lq", "Expectile")


class _Splits(_Plan):
    """Every split of the model, as a column of one ``[N, splits]`` 0/1 matrix (the runtime's plan of them).

    Float splits (``float``: ``(column, border, NaN answer) -> column``) come first; the other
    splits are grouped by the inputs they depend on (``tables``: ``inputs -> [(tree, position)]``),
    each group answered by one table.
    """

    max_table = MAX_TABLE

    def __init__(self, data: dict[str, Any], encoder: FeatureEncoder) -> None:
        try:
            super().__init__(data, encoder)
        except CompileError as exc:
            raise ExportError(f"{exc}: no ONNX form here") from exc

    def matrix(self, g: _Graph, x32: str, learner: Any, width: int) -> tuple[str, dict[tuple[int, int], int]]:
        """The ``[N, splits]`` answers (double 0/1) and the column of each ``(tree, position)``."""
        blocks: list[str] = []
        column_of = dict(self.float_of)
        if self.floats:
            keys = list(self.floats)
            values = g.op("Gather", [x32, g.const(np.array([c for c, _, _ in keys], dtype=np.int64))], axis=1)
            compared = g.op("Cast", [g.op("Greater", [values, g.const(np.array([[b for _, b, _ in keys]]))])],
                            to=TensorProto.DOUBLE)
            nan_true = g.const(np.array([[float(n) for _, _, n in keys]]))
            blocks.append(g.op("Where", [g.op("IsNaN", [values]), nan_true, compared]))
        offset = len(self.floats)
        categorical = sorted(self.cats.values())
        for inputs, splits in self.tables.items():
            try:
                leaves = _probe(learner.estimator_, inputs, width, categorical)
            except CompileError as exc:
                raise ExportError(f"{exc}: no ONNX form here") from exc
            table = np.column_stack([(leaves[:, t] >> k) & 1 for t, k in splits]).astype(float)
            blocks.append(g.op("Gather", [g.const(table), _table_index(g, x32, inputs)], axis=0))
            column_of.update({split: offset + j for j, split in enumerate(splits)})
            offset += len(splits)
        if not blocks:  # only stumps: no split is asked
            return g.const(np.zeros((1, 0))), column_of
        return (blocks[0] if len(blocks) == 1 else g.op("Concat", blocks, axis=1)), column_of


def _state(g: _Graph, x: str, inp: _Input) -> str:
    """The state index (double ``[N, 1]``) of ``x`` (the input column) in ``inp``'s numbering."""
    points = g.const(np.array([inp.points], dtype=float))
    if inp.categorical:  # NaN: 0; the k-th code: k
        return g.op("ReduceSum", [g.op("Cast", [g.op("GreaterOrEqual", [x, points])], to=TensorProto.DOUBLE),
                                  g.const(np.array([1], dtype=np.int64))], keepdims=1)
    above = g.op("ReduceSum", [g.op("Cast", [g.op("Greater", [x, points])], to=TensorProto.DOUBLE),
                               g.const(np.array([1], dtype=np.int64))], keepdims=1)
    return g.op("Where", [g.op("IsNaN", [x]), g.const(np.array(0.0)), g.op("Add", [above, g.const(np.array(1.0))])])


def _table_index(g: _Graph, x32: str, inputs: tuple[_Input, ...]) -> str:
    """The row of each input row in a table over ``inputs``' states (int64 ``[N]``, row-major)."""
    sizes = [len(i.representatives) for i in inputs]
    strides = np.cumprod([1, *sizes[::-1]])[:-1][::-1]
    index: str | None = None
    for inp, stride in zip(inputs, strides, strict=True):
        x = g.op("Gather", [x32, g.const(np.array([inp.column], dtype=np.int64))], axis=1)
        term = g.op("Mul", [_state(g, x, inp), g.const(np.array(float(stride)))])
        index = term if index is None else g.op("Add", [index, term])
    assert index is not None
    return g.op("Reshape", [g.op("Cast", [index], to=TensorProto.INT64), g.const(np.array([-1], dtype=np.int64))])


def _leaf_sum(g: _Graph, trees: list[dict[str, Any]], splits: str, column_of: dict[tuple[int, int], int],
              dimension: int) -> str:
    """The sum ``[N, D]`` of every tree's leaf, the trees of one depth indexed at once."""
    by_depth: dict[int, list[int]] = {}
    constant = np.zeros(dimension)
    for t, tree in enumerate(trees):
        depth = len(tree.get("splits") or [])
        if depth == 0:  # stumps without a split add their one leaf to every row
            constant += np.asarray(tree["leaf_values"], dtype=float).reshape(dimension)
        else:
            by_depth.setdefault(depth, []).append(t)
    total = g.const(constant.reshape(1, dimension))
    for depth, members in sorted(by_depth.items()):
        columns = np.array([[column_of[t, k] for k in range(depth)] for t in members], dtype=np.int64)
        bits = g.op("Gather", [splits, g.const(columns.reshape(-1))], axis=1)
        bits = g.op("Reshape", [bits, g.const(np.array([-1, len(members), depth], dtype=np.int64))])
        leaf = g.op("MatMul", [bits, g.const((2.0 ** np.arange(depth)).reshape(depth, 1))])
        leaf = g.op("Reshape", [leaf, g.const(np.array([-1, len(members)], dtype=np.int64))])
        leaf = g.op("Add", [g.op("Cast", [leaf], to=TensorProto.INT64),
                            g.const((np.arange(len(members), dtype=np.int64) << depth).reshape(1, -1))])
        leaf_values = np.concatenate([np.asarray(trees[t]["leaf_values"], dtype=float).reshape(1 << depth, dimension)
                                      for t in members])
        picked = g.op("Gather", [g.const(leaf_values), leaf], axis=0)  # [N, T, D]
        total = g.op("Add", [total, g.op("ReduceSum", [picked, g.const(np.array([1], dtype=np.int64))], keepdims=0)])
    return total


def catboost_graph(g: _Graph, learner: Any, encoder: FeatureEncoder, features: str, classifier: bool) -> str:
    """Nodes computing ``learner``'s CatBoost probabilities ``[N, C]`` (or values ``[N]``) from ``features``.

    Raises
    ------
    ExportError
        A loss or split kind without an ONNX form here, or a split whose table would be too large.
    """
    model = learner.estimator_
    loss = str(model.get_all_params().get("loss_function", ""))
    if loss not in (_CLASSIFIER_LOSSES if classifier else _REGRESSION_LOSSES):
        raise ExportError(f"CatBoost loss {loss!r} has no ONNX form here")
    data = _export(model)
    x32 = g.op("Cast", [g.op("Cast", [features], to=TensorProto.FLOAT)], to=TensorProto.DOUBLE)  # as CatBoost compares
    splits, column_of = _Splits(data, encoder).matrix(g, x32, learner, encoder.width)
    scale, bias = data.get("scale_and_bias", [1.0, [0.0]])
    bias = np.asarray(bias, dtype=float)
    total = _leaf_sum(g, data.get("oblivious_trees", []), splits, column_of, len(bias))
    raw = g.op("Add", [g.op("Mul", [total, g.const(np.array(float(scale)))]), g.const(bias.reshape(1, -1))])
    if not classifier:
        return g.op("Reshape", [raw, g.const(np.array([-1], dtype=np.int64))])
    if loss == "MultiClass":
        return g.op("Softmax", [raw], axis=1)
    positive = g.op("Sigmoid", [raw])
    return g.op("Concat", [g.op("Sub", [g.const(np.array(1.0)), positive]), positive], axis=1)
