"""An ONNX graph of a tabular model: the runtime's compiled preprocessing as ONNX nodes, then the estimator.

The runtime's fast path already describes mlpilot's preprocessing as plain per-column steps
(`mlpilot.runtime._compile_steps`: cast, impute, scale, code, one-hot); each step becomes a few
standard ONNX nodes. The final estimator becomes: for linear models, their coefficients as a
MatMul and a sigmoid/softmax (in double precision, exact); for LightGBM and XGBoost, onnxmltools'
tree ensembles (float32, as every ONNX tree ensemble); for CatBoost, its oblivious trees with their
categorical splits as probed tables (`mlpilot.export._onnx_catboost`); for mlpilot's ensembles,
the weighted sum of the members. The graph is checked with onnxruntime against the pipeline on rows synthesised from
the schema, the rows the fast path is verified on (`mlpilot.runtime._verify.sample_rows`).

Inputs: one ``[N, 1]`` tensor per feature column, ``double`` for numbers and booleans (NaN for
missing), ``string`` for categories (``""`` for missing). Outputs: ``label`` and
``probabilities`` for classifiers, ``prediction`` for regressors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

from mlpilot.data import Schema
from mlpilot.exceptions import ExportError
from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime import LoadedModel, load_version
from mlpilot.runtime._compile import CompiledModel, EnsembleModel, PipelineModel, compile_model
from mlpilot.runtime._compile_final import Final, LearnerFinal, LightGBMFinal, LinearFinal
from mlpilot.runtime._compile_steps import (
    Add,
    AsText,
    Chain,
    Clip,
    CompileError,
    Divide,
    Dropped,
    FeatureEncoder,
    FillMissing,
    FillNaN,
    InfToNaN,
    Lookup,
    MissingIndicator,
    Multiply,
    OneHot,
    Subtract,
    ToFloat,
    Writer,
)
from mlpilot.runtime._inputs import convert_columns
from mlpilot.runtime._score import _plain, predict_frame
from mlpilot.runtime._verify import SampleRow, sample_rows

#: Equal on strings needs opset 19; ai.onnx.ml 3 is what the tree converters emit.
OPSET = {"": 19, "ai.onnx.ml": 3}
NUMERIC = ("integer", "float", "boolean")
#: onnxmltools' LightGBM converter emits up to opset 15; its nodes mean the same at 19.
_CONVERTER_OPSET = 15
#: float32 trees against float64 ones: what an ONNX tree ensemble can promise.
ATOL = 1e-5


class _Graph:
    """Nodes, constants and unique names for one ONNX graph."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self.opsets = dict(OPSET)

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, hint: str = "c") -> str:
        array = np.asarray(value)
        if array.dtype.kind in "UO":
            encoded: list[Any] = [str(v).encode() for v in array.ravel()]
            tensor = helper.make_tensor(self.name(hint), TensorProto.STRING, array.shape, encoded)
        else:
            tensor = numpy_helper.from_array(array, self.name(hint))
        self.initializers.append(tensor)
        return tensor.name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, *, domain: str = "",
           **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], domain=domain, **attrs))
        return out


def _numeric_input(schema: Schema, name: str) -> bool:
    column = schema[name]
    if column.dtype in NUMERIC:
        return True
    if column.dtype == "datetime":
        raise ExportError(f"column {name!r} is a date/time; only numbers, booleans and text columns export")
    return False


def _string_keys(keys: Any, where: str) -> list[str]:
    keys = list(keys)
    if not all(isinstance(k, str) for k in keys):
        raise ExportError(f"{where}: categories that are not text")
    if "" in keys:
        raise ExportError(f"{where}: the empty string is a category (ONNX inputs use it for missing)")
    return keys


def _step(g: _Graph, step: Any, value: str, numeric: bool, source: str) -> str:
    where = f"column {source!r}, step {type(step).__name__}"
    if isinstance(step, ToFloat | AsText):
        if isinstance(step, ToFloat) != numeric:
            raise ExportError(f"{where}: a {'text' if numeric else 'numeric'} step on a "
                              f"{'numeric' if numeric else 'text'} input")
        return value
    if isinstance(step, InfToNaN):
        return g.op("Where", [g.op("IsInf", [value]), g.const(np.array(np.nan)), value])
    if isinstance(step, FillNaN):
        return g.op("Where", [g.op("IsNaN", [value]), g.const(np.array(float(step.fill))), value])
    if isinstance(step, FillMissing):
        if not isinstance(step.fill, str):
            raise ExportError(f"{where}: a fill value that is not text")
        return g.op("Where", [g.op("Equal", [value, g.const(np.array(""))]), g.const(np.array(step.fill)), value])
    arithmetic = {Subtract: ("Sub", "amount"), Add: ("Add", "amount"), Multiply: ("Mul", "by"), Divide: ("Div", "by")}
    if type(step) in arithmetic:
        op, field = arithmetic[type(step)]
        return g.op(op, [value, g.const(np.array(float(getattr(step, field))))])
    if isinstance(step, Clip):
        clipped = g.op("Clip", [value, g.const(np.array(float(step.low))), g.const(np.array(float(step.high)))])
        return g.op("Where", [g.op("IsNaN", [value]), value, clipped])
    if isinstance(step, Lookup):
        keys = _string_keys(step.codes, where)
        values = [float(step.codes[k]) for k in keys]
        if step.missing is not None:
            keys, values = [*keys, ""], [*values, float(step.missing)]
        default = float(step.unknown) if step.unknown is not None else math.nan
        codes = g.op("LabelEncoder", [value], domain="ai.onnx.ml", keys_strings=keys, values_floats=values,
                     default_float=default)
        return g.op("Cast", [codes], to=TensorProto.DOUBLE)
    raise ExportError(f"{where} has no ONNX form")


def _write(g: _Graph, writer: Writer, value: str, numeric: bool, source: str) -> str | None:
    if isinstance(writer, Dropped):
        return None
    if isinstance(writer, MissingIndicator):
        return g.op("Cast", [g.op("IsNaN", [value])], to=TensorProto.DOUBLE)
    if isinstance(writer, OneHot):
        keys = list(writer.positions)
        assign = np.zeros((len(keys) + (writer.missing is not None), writer.width))
        for k, key in enumerate(keys):
            if writer.positions[key] >= 0:
                assign[k, writer.positions[key]] = 1.0
        if numeric:
            if not all(isinstance(k, int | float) and not isinstance(k, bool) for k in keys):
                raise ExportError(f"column {source!r}: a one-hot block of mixed categories")
            hits = [g.op("Equal", [value, g.const(np.array([keys], dtype=float))])]
            if writer.missing is not None:
                hits.append(g.op("IsNaN", [value]))
        else:
            keys = _string_keys(keys, f"column {source!r}, one-hot")
            hits = [g.op("Equal", [value, g.const(np.array([[*keys, ""] if writer.missing is not None else keys],
                                                            dtype=object))])]
        if writer.missing is not None:
            assign[-1, writer.missing] = 1.0
        matrix = hits[0] if len(hits) == 1 else g.op("Concat", hits, axis=1)
        return g.op("MatMul", [g.op("Cast", [matrix], to=TensorProto.DOUBLE), g.const(assign)])
    if type(writer) is Writer:
        if not numeric:
            raise ExportError(f"column {source!r}: text reaches the estimator unencoded")
        return value
    raise ExportError(f"column {source!r}: writer {type(writer).__name__} has no ONNX form")


def _chain(g: _Graph, chain: Chain, schema: Schema) -> str | None:
    numeric = _numeric_input(schema, chain.source)
    value = f"in_{chain.source}"
    for step in chain.steps:
        value = _step(g, step, value, numeric, chain.source)
        numeric = numeric or isinstance(step, Lookup)  # categories become codes
    return _write(g, chain.writer, value, numeric, chain.source)


def _features(g: _Graph, encoder: FeatureEncoder, schema: Schema) -> str:
    parts = [out for chain in encoder.chains if (out := _chain(g, chain, schema)) is not None]
    if not parts:
        raise ExportError("the preprocessing produces no features")
    return g.op("Concat", parts, "features", axis=1)


def _linear(g: _Graph, final: LinearFinal, features: str) -> str:
    scores = g.op("Add", [g.op("MatMul", [features, g.const(np.atleast_2d(final.coef_T.T).T)]),
                          g.const(np.atleast_1d(final.intercept))])
    if not final.classifier:
        return g.op("Reshape", [scores, g.const(np.array([-1], dtype=np.int64))])
    if final.coef_T.ndim == 1 or final.coef_T.shape[1] == 1:
        positive = g.op("Sigmoid", [scores])
        return g.op("Concat", [g.op("Sub", [g.const(np.array(1.0)), positive]), positive], axis=1)
    return g.op("Softmax", [scores], axis=1)


def _splice(g: _Graph, model: onnx.ModelProto, features: str, classifier: bool, hint: str) -> str:
    """Add a converter's tree graph (float32 ``input``) fed by ``features``; its probabilities or values in double."""
    g.opsets.update({o.domain: max(o.version, g.opsets.get(o.domain, 0)) for o in model.opset_import})
    prefix = g.name(hint) + "_"
    model = onnx.compose.add_prefix(model, prefix)
    graph = model.graph
    g.nodes.append(helper.make_node("Cast", [features], [graph.input[0].name], to=TensorProto.FLOAT))
    g.nodes.extend(graph.node)
    g.initializers.extend(graph.initializer)
    names = [o.name for o in graph.output]
    if classifier:
        probabilities = next(n for n in names if "prob" in n)
        return g.op("Cast", [probabilities], to=TensorProto.DOUBLE)
    values = g.op("Cast", [names[0]], to=TensorProto.DOUBLE)
    return g.op("Reshape", [values, g.const(np.array([-1], dtype=np.int64))])


def _lightgbm(g: _Graph, final: LightGBMFinal, features: str) -> str:
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = convert_lightgbm(final.booster, initial_types=[("input", FloatTensorType([None, final.n_features]))],
                             target_opset=_CONVERTER_OPSET, zipmap=False)
    return _splice(g, model, features, final.classifier, "lgbm")


def _xgboost(g: _Graph, estimator: Any, classifier: bool, width: int) -> Any:
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    try:
        return convert_xgboost(estimator, initial_types=[("input", FloatTensorType([None, width]))],
                               target_opset=_CONVERTER_OPSET)
    except Exception as exc:  # the converter's own refusals (objectives, boosters it does not know)
        raise ExportError(f"onnxmltools cannot convert this XGBoost model ({exc})") from None


def _final(g: _Graph, final: Final, features: str, encoder: FeatureEncoder) -> str:
    if isinstance(final, LearnerFinal):
        family = final.learner.family
        if final.codes is not None and list(final.codes) != list(range(final.n_classes)):
            raise ExportError(f"the {family} member saw only some of the classes")
        if family == "catboost":
            from mlpilot.export._onnx_catboost import catboost_graph

            return catboost_graph(g, final.learner, encoder, features, final.classifier)
        if family == "xgboost":
            model = _xgboost(g, final.learner.estimator_, final.classifier, encoder.width)
            return _splice(g, model, features, final.classifier, "xgb")
        if final.inner is None:
            raise ExportError(f"the {family} member has no ONNX converter here "
                              "(LightGBM, CatBoost, XGBoost and linear models export)")
        return _final(g, final.inner, features, encoder)
    if isinstance(final, LinearFinal):
        return _linear(g, final, features)
    if isinstance(final, LightGBMFinal):
        return _lightgbm(g, final, features)
    raise ExportError(f"the final estimator ({type(final).__name__}) has no ONNX converter here "
                      "(LightGBM, CatBoost, XGBoost and linear models export)")


def build_graph(compiled: CompiledModel, schema: Schema, classes: tuple[Any, ...] | None,
                threshold: float | None = None) -> onnx.ModelProto:
    """The ONNX model of ``compiled`` (the runtime's description of the pipeline); `ExportError` if a part has none.

    ``threshold``: a binary model's decision threshold (`LoadedModel.threshold`); the graph's
    label is then the positive class where its probability reaches it, as the runtime's is.
    """
    g = _Graph()
    if isinstance(compiled, PipelineModel):
        if compiled.labels_from is not None:
            raise ExportError("a classifier whose labels are not the class of highest probability")
        values = _final(g, compiled.final, _features(g, compiled.encoder, schema), compiled.encoder)
    elif isinstance(compiled, EnsembleModel):
        if compiled.stacked:
            raise ExportError("a stacked ensemble (its level-2 layer over the members' log-odds has no ONNX graph "
                              "here); retrain with stacking='off' to export it")
        encoders = compiled.encoders()
        matrices = [_features(g, encoder, schema) for encoder in encoders]
        terms = [g.op("Mul", [_final(g, final, matrices[index], encoders[index]), g.const(np.array(float(weight)))])
                 for index, final, weight in compiled.members]
        values = terms[0] if len(terms) == 1 else g.op("Sum", terms)
        if classes is not None:
            values = g.op("Div", [values, g.op("ReduceSum", [values, g.const(np.array([1], dtype=np.int64))],
                                               keepdims=1)])
    else:
        raise ExportError(f"a compiled model of kind {type(compiled).__name__}")
    outputs: list[onnx.ValueInfoProto] = []
    if classes is None:
        g.nodes.append(helper.make_node("Identity", [values], ["prediction"]))
        outputs.append(helper.make_tensor_value_info("prediction", TensorProto.DOUBLE, [None]))
    else:
        g.nodes.append(helper.make_node("Identity", [values], ["probabilities"]))
        if threshold is not None and len(classes) == 2:
            positive = g.op("Gather", [values, g.const(np.array(1, dtype=np.int64))], axis=1)
            best = g.op("Cast", [g.op("GreaterOrEqual", [positive, g.const(np.array(float(threshold)))])],
                        to=TensorProto.INT64)
        else:
            best = g.op("ArgMax", [values], axis=1, keepdims=0)
        labels = np.array(classes, dtype=object if any(isinstance(c, str) for c in classes) else None)
        g.nodes.append(helper.make_node("Gather", [g.const(labels), best], ["label"], axis=0))
        label_type = TensorProto.STRING if labels.dtype == object else helper.np_dtype_to_tensor_dtype(labels.dtype)
        outputs += [helper.make_tensor_value_info("label", label_type, [None]),
                    helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, len(classes)])]
    inputs = [helper.make_tensor_value_info(f"in_{name}", TensorProto.DOUBLE if _numeric_input(schema, name)
                                            else TensorProto.STRING, [None, 1]) for name in schema.feature_names]
    used = {i for node in g.nodes for i in node.input}
    inputs = [i for i in inputs if i.name in used]
    graph = helper.make_graph(g.nodes, "mlpilot", inputs, outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in g.opsets.items()],
                              producer_name="mlpilot")
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model


def feeds(rows: list[dict[str, Any]], schema: Schema, names: list[str]) -> dict[str, np.ndarray]:
    """ONNX inputs for ``rows`` (dicts of input values): NaN and ``""`` for missing values."""
    out: dict[str, np.ndarray] = {}
    for name in names:
        column = name.removeprefix("in_")
        values = [row.get(column) for row in rows]
        if _numeric_input(schema, column):
            out[name] = np.array([[math.nan if v is None else float(v)] for v in values], dtype=float)
        else:
            out[name] = np.array([["" if v is None else str(v)] for v in values], dtype=object)
    return out


def _general(loaded: LoadedModel, schema: Schema, rows: list[SampleRow]) -> tuple[Any, np.ndarray | None]:
    columns = {name: [row.values[name] for row in rows] for name in schema.feature_names}
    data, _warnings = convert_columns(columns, schema)
    return predict_frame(loaded, pd.DataFrame(data, index=pd.RangeIndex(len(rows)), copy=False))


def verify_graph(model: onnx.ModelProto, loaded: LoadedModel, compiled: CompiledModel) -> int:
    """Check ``model`` against ``loaded``'s pipeline on synthesised rows; return how many agreed.

    Rows the pipeline refuses are not compared (ONNX scores every row). Probabilities and
    values must agree to `ATOL`; labels must agree except where the pipeline's two most likely
    classes are within `ATOL` of each other.
    """
    import onnxruntime as ort

    assert loaded.schema is not None
    schema = loaded.schema
    rows = sample_rows(schema, compiled.probe_values())
    try:
        labels, proba = _general(loaded, schema, rows)
        kept = rows
    except Exception:  # some rows are refused: keep those the pipeline scores alone
        kept, outcomes = [], []
        for row in rows:
            try:
                outcomes.append(_general(loaded, schema, [row]))
                kept.append(row)
            except Exception:
                continue
        if not kept:
            raise ExportError("the pipeline refuses every synthesised row; nothing to verify against") from None
        labels = np.concatenate([np.asarray(o[0], dtype=object) for o in outcomes])
        proba = np.vstack([o[1] for o in outcomes if o[1] is not None]) if outcomes[0][1] is not None else None
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, feeds([r.values for r in kept], schema, names)), strict=True))
    if proba is None:
        values = np.asarray(labels, dtype=float)
        gap = np.abs(got["prediction"] - values)
        bad = np.flatnonzero(~(gap <= ATOL + ATOL * np.abs(values)))
        if bad.size:
            raise ExportError(f"the ONNX graph predicts {got['prediction'][bad[0]]!r} against the pipeline's "
                              f"{values[bad[0]]!r} on the row with {kept[bad[0]].label}")
        return len(kept)
    gap = np.abs(got["probabilities"] - proba).max(axis=1)
    if (bad := np.flatnonzero(~(gap <= ATOL))).size:
        raise ExportError(f"the ONNX graph's probabilities differ by {gap[bad[0]]:.3g} from the pipeline's "
                          f"on the row with {kept[bad[0]].label}")
    top2 = np.sort(proba, axis=1)[:, -2:] if proba.shape[1] > 1 else np.zeros((len(kept), 2))
    for i, (mine, theirs) in enumerate(zip(_plain(got["label"]), _plain(labels), strict=True)):
        if mine != theirs and top2[i, 1] - top2[i, 0] > ATOL:
            raise ExportError(f"the ONNX graph predicts {mine!r} against the pipeline's {theirs!r} "
                              f"on the row with {kept[i].label}")
    return len(kept)


def write_onnx(registry: Registry, mv: ModelVersion, directory: Path) -> dict[str, Any]:
    """Write ``model.onnx`` (verified) and ``inputs.json`` for ``mv`` into ``directory``."""
    loaded = load_version(registry, mv, fast_path=False)
    if loaded.schema is None:
        raise ExportError(f"{mv.ref} has no input schema: ONNX inputs are declared from it")
    try:
        compiled = compile_model(loaded.model, loaded.schema, with_proba=loaded.classes is not None)
    except CompileError as exc:
        raise ExportError(f"{mv.ref} cannot be exported to ONNX: {exc}. Export it with --format mlflow "
                          "or bundle instead. Nothing was written.") from None
    try:
        model = build_graph(compiled, loaded.schema, loaded.classes, loaded.threshold)
        n_rows = verify_graph(model, loaded, compiled)
    except ExportError as exc:
        raise ExportError(f"{mv.ref} cannot be exported to ONNX: {exc}. Export it with --format mlflow "
                          "or bundle instead. Nothing was written.") from None
    onnx.save(model, str(directory / "model.onnx"))
    inputs = [{"name": i.name, "column": i.name.removeprefix("in_"),
               "type": "double" if i.type.tensor_type.elem_type == TensorProto.DOUBLE else "string",
               "missing": "NaN" if i.type.tensor_type.elem_type == TensorProto.DOUBLE else '""'}
              for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    (directory / "inputs.json").write_text(json.dumps(
        {"ref": mv.ref, "sha256": mv.sha256, "inputs": inputs, "outputs": outputs,
         "classes": list(loaded.classes) if loaded.classes is not None else None,
         "verified_rows": n_rows, "tolerance": ATOL}, indent=2, default=str))
    (directory / "schema.json").write_text(json.dumps(mv.schema, indent=2))
    return {"inputs": len(inputs), "outputs": outputs, "verified_rows": n_rows, "preprocessing": compiled.description}
