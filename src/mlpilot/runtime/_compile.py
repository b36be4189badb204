"""Compiling a loaded model into a numpy predictor for small requests.

A one-row ``predict_proba`` of a scikit-learn pipeline spends milliseconds on
frames, column selection and input checks, and microseconds on the model. The
compiled form keeps only the arithmetic: validated JSON columns go through
per-column chains (`_compile_steps`) into the float matrix the model was
trained on, then through the final estimator's low-level predict
(`_compile_final`). `compile_model` raises `CompileError` for anything it does
not know; `_verify` checks the result against the general path before use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mlpilot.data import Schema
from mlpilot.runtime._blas import one_blas_thread
from mlpilot.runtime._compile_final import (
    SINGLE_THREAD_ROWS,
    Final,
    compile_final,
    is_argmax_classifier,
)
from mlpilot.runtime._compile_steps import Chain, CompileError, FeatureEncoder, Table, shared_table
from mlpilot.runtime._compile_transformers import (
    compile_column_transformer,
    compile_tabular_preprocessor,
    compile_transformer,
    is_numeric,
    source_chain,
)

Prediction = tuple[np.ndarray, np.ndarray | None]


class CompiledModel:
    """A model as arithmetic over input columns.

    ``predict(table, n_rows)`` takes validated JSON values (a list of row
    dicts or a mapping of column to values) and returns what the general
    path computes: labels and class probabilities for classifiers, predicted
    values (and ``None``) otherwise. It raises (`RejectedInput`, usually)
    where it cannot score the values, and the caller falls back to the
    general path.
    """

    description = ""
    #: Every part is fast (no library call): small requests may be scored on the event loop.
    inline = True
    #: Rows a request may have to be scored on the event loop, measured at load (`mlpilot.runtime._dispatch`).
    inline_rows = 0
    #: Batches of at least this many rows are scored by the pipeline, faster there as measured at load
    #: (`mlpilot.runtime._dispatch.pipeline_rows`; None: every batch the compiled path takes).
    pipeline_rows: int | None = None

    def predict(self, table: Table, n_rows: int) -> Prediction:
        raise NotImplementedError

    def predict_one(self, row: Mapping[str, Any]) -> tuple[Any, list[float] | None] | None:
        """One row dict to (label or value, probabilities as floats), without arrays.

        Gives exactly what `predict` gives for that row; ``None`` where only
        `predict` can answer.
        """
        return None

    def encoders(self) -> list[FeatureEncoder]:
        raise NotImplementedError

    def probe_values(self) -> dict[str, list[Any]]:
        """Per input column, the categories the model knows (verification tries each)."""
        found: dict[str, list[Any]] = {}
        for encoder in self.encoders():
            for chain in encoder.chains:
                found.setdefault(chain.source, []).extend(chain.probe_values())
        return found


class PipelineModel(CompiledModel):
    """One encoder and one final estimator (a Pipeline, or an estimator on the frame)."""

    def __init__(self, encoder: FeatureEncoder, final: Final, *, classes: np.ndarray | None,
                 labels_from: Any = None, description: str = "") -> None:
        self.encoder = encoder
        self.final = final
        self.classes = classes
        self.labels_from = labels_from
        self.description = description
        self.inline = final.fast

    def encoders(self) -> list[FeatureEncoder]:
        return [self.encoder]

    def predict_one(self, row: Mapping[str, Any]) -> tuple[Any, list[float] | None] | None:
        if self.labels_from is not None:
            return None
        values = self.final.one(self.encoder.row(row))
        if values is None:
            return None
        if self.classes is None:
            return values[0], None
        best = 0
        for k, value in enumerate(values):  # np.argmax: the first of the largest
            if value != value:
                return None
            if value > values[best]:
                best = k
        return self.classes[best], values

    def predict(self, table: Table, n_rows: int) -> Prediction:
        X = self.encoder.transform(table, n_rows)
        if n_rows <= SINGLE_THREAD_ROWS:
            one_blas_thread()
        values = self.final.values(X)
        if self.classes is None:
            return values, None
        if self.labels_from is not None:
            return np.asarray(self.labels_from.predict(X)), values
        return self.classes[np.argmax(values, axis=1)], values


class EnsembleModel(CompiledModel):
    """mlpilot's `TabularEnsemble`: weighted members over shared encoders, combined by its ``outputs``."""

    def __init__(self, encoders: list[FeatureEncoder], members: list[tuple[int, Final, float]],
                 *, outputs: Callable[[np.ndarray], Prediction], description: str = "",
                 combine: Callable[..., np.ndarray] | None = None, stacked: bool = False,
                 inline_combine: bool = True) -> None:
        self._encoders = encoders
        self.members = members
        self.outputs = outputs
        self.combine = combine  # (values, inputs): each member's values and encoded matrix, in member order
        self.stacked = stacked  # a level-2 layer, not the weighted sum, combines the members
        self.description = description
        # a feature stack's trees are LightGBM's own predict: not for the event loop
        self.inline = inline_combine and all(final.fast for _index, final, _weight in members)
        self.sources = tuple(dict.fromkeys(source for encoder in encoders for source in encoder.sources))

    def encoders(self) -> list[FeatureEncoder]:
        return list(self._encoders)

    def predict(self, table: Table, n_rows: int) -> Prediction:
        if len(self._encoders) > 1:
            table = shared_table(table, n_rows, self.sources)
        shared: dict[Any, Any] = {}  # the steps the encoders have in common, computed once
        matrices = [encoder.transform(table, n_rows, shared) for encoder in self._encoders]
        if n_rows <= SINGLE_THREAD_ROWS:
            one_blas_thread()
        return self._combined(matrices)

    def _combined(self, matrices: list[np.ndarray]) -> Prediction:
        if self.combine is not None:
            if not self.members:
                raise CompileError("an ensemble without members")
            return self.outputs(self.combine([final.values(matrices[index]) for index, final, _w in self.members],
                                             [matrices[index] for index, _final, _w in self.members]))
        total: np.ndarray | None = None
        for index, final, weight in self.members:
            values = final.values(matrices[index]) * weight
            total = values if total is None else total + values
        if total is None:
            raise CompileError("an ensemble without members")
        return self.outputs(total)


def _check_width(final: Final, encoder: FeatureEncoder) -> None:
    if final.n_features is not None and final.n_features != encoder.width:
        raise CompileError(f"the estimator expects {final.n_features} features, the encoder gives {encoder.width}")


PreprocessorCompiler = Callable[[Any, Schema], list[Chain]]
ModelCompiler = Callable[[Any, Schema, bool], CompiledModel]
#: What the compiler knows, by exact class: a pipeline's first step (preprocessors that
#: read input columns by name) and whole models. Final steps: `register_final`;
#: column-wise transformers: `register_transformer`.
_PREPROCESSORS: dict[type, PreprocessorCompiler] = {}
_MODELS: dict[type, ModelCompiler] = {}


def register_preprocessor(cls: type, compiler: PreprocessorCompiler) -> None:
    """Compile fitted instances of ``cls`` as a pipeline's first step: ``compiler(step, schema)`` gives its chains."""
    _PREPROCESSORS[cls] = compiler


def register_compiler(cls: type, compiler: ModelCompiler) -> None:
    """Compile fitted models of ``cls`` (exactly that class) whole: ``compiler(model, schema, with_proba)``.

    ``compiler`` returns a `CompiledModel` or raises `CompileError`; `compile_model`
    asks it before looking inside pipelines.
    """
    _MODELS[cls] = compiler


@functools.cache
def _builtin_compilers() -> None:
    from sklearn.compose import ColumnTransformer

    from mlpilot.features import TabularPreprocessor
    from mlpilot.search import TabularEnsemble

    _PREPROCESSORS.setdefault(ColumnTransformer, compile_column_transformer)
    _PREPROCESSORS.setdefault(TabularPreprocessor, compile_tabular_preprocessor)
    _MODELS.setdefault(TabularEnsemble, _compile_ensemble)


def _head_encoder(steps: list[Any], schema: Schema) -> FeatureEncoder:
    first, rest = steps[0], steps[1:]
    compiler = _PREPROCESSORS.get(type(first))
    if compiler is None:
        raise CompileError(f"a pipeline starting with {type(first).__name__}")
    chains = compiler(first, schema)
    for step in rest:  # matrix-wide scalers and imputers are column-wise too
        chains = compile_transformer(step, chains)
    return _encoder(chains)


def _encoder(chains: list[Chain]) -> FeatureEncoder:
    text = [c.source for c in chains if not is_numeric(c)]
    if text:
        raise CompileError(f"text column {text[0]!r} reaches the estimator unencoded")
    return FeatureEncoder(chains)


def _frame_encoder(estimator: Any, schema: Schema) -> FeatureEncoder:
    names = list(schema.feature_names)
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and [str(n) for n in fitted] != names:
        raise CompileError("the estimator's columns differ from the schema's features")
    return _encoder([source_chain(schema, name) for name in names])


def _classes(model: Any) -> np.ndarray:
    return np.asarray(model.classes_, dtype=object)


def compile_model(model: Any, schema: Schema, *, with_proba: bool) -> CompiledModel:
    """Compile ``model`` (served with ``schema``) or raise `CompileError` saying why not.

    ``with_proba`` says whether the server answers with class probabilities
    (the model is a classifier with ``predict_proba``).
    """
    from sklearn.pipeline import Pipeline

    _builtin_compilers()
    whole = _MODELS.get(type(model))
    if whole is not None:
        return whole(model, schema, with_proba)
    if isinstance(model, Pipeline):
        steps = [step for _name, step in model.steps if step is not None and step != "passthrough"]
        if not steps:
            raise CompileError("an empty pipeline")
        head, last = steps[:-1], steps[-1]
        encoder = _head_encoder(head, schema) if head else _frame_encoder(last, schema)
    else:
        encoder, last = _frame_encoder(model, schema), model
    final = compile_final(last, classifier=with_proba)
    final.bind(encoder)
    _check_width(final, encoder)
    classes = _classes(last) if with_proba else None
    argmax = is_argmax_classifier(last)
    labels_from = last if with_proba and not argmax else None
    description = f"{len(encoder.chains)} column chains -> {encoder.width} features -> {type(final).__name__}"
    return PipelineModel(encoder, final, classes=classes, labels_from=labels_from, description=description)


def _compile_ensemble(model: Any, schema: Schema, with_proba: bool) -> EnsembleModel:
    if with_proba != (model.task != "regression"):
        raise CompileError("an ensemble whose task does not match its probabilities")
    encoders: list[FeatureEncoder] = []
    index_of: dict[int, int] = {}
    members: list[tuple[int, Final, float]] = []
    for (pre, learner), weight in zip(model.members_, model.weights_, strict=True):
        if id(pre) not in index_of:
            index_of[id(pre)] = len(encoders)
            encoders.append(_head_encoder([pre], schema))
        final = compile_final(learner, classifier=with_proba)
        final.bind(encoders[index_of[id(pre)]])
        _check_width(final, encoders[index_of[id(pre)]])
        members.append((index_of[id(pre)], final, weight))
    families = ", ".join(f"{learner.family}" for _pre, learner in model.members_)
    stacker: Any = getattr(model, "stacker_", None)
    stacked = stacker is not None
    description = (f"{'stack' if stacked else 'ensemble'} of {len(members)} ({families}) over "
                   f"{len(encoders)} encoder(s)")
    combine = getattr(model, "combine", None)
    inline_combine = True
    member = getattr(stacker, "feature_member", None)
    if member is not None:  # a feature stack: its trees as numpy, where they compile
        from mlpilot.runtime._compile_stack import CompiledFeatureStacker

        try:
            layer = CompiledFeatureStacker(stacker)
        except CompileError as exc:  # the members stay compiled; the trees are LightGBM's own predict
            inline_combine = False
            description += (f"; level-2 LightGBM over {member}'s encoded features, evaluated by "
                            f"LightGBM (not compiled: {exc})")
        else:
            combine = functools.partial(model.combine, layer=layer)
            description += (f"; level-2 LightGBM ({len(layer.trees.roots)} trees) over {member}'s "
                            "encoded features, compiled")
    return EnsembleModel(encoders, members, outputs=model.outputs, description=description,
                         combine=combine, stacked=stacked, inline_combine=inline_combine)
