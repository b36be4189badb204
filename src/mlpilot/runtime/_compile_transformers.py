"""Fitted preprocessing turned into per-column chains (see `_compile_steps`).

Supported: scikit-learn's ``ColumnTransformer`` (and ``Pipeline`` inside it)
over ``SimpleImputer``, ``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``,
``RobustScaler``, ``OneHotEncoder``, ``OrdinalEncoder`` and passthrough, and
mlpilot's ``TabularPreprocessor`` for numeric and categorical columns (with their
target encoding), through the parts it declares (``compiled_parts``). Anything
else raises `CompileError` and the model is served by its general path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlpilot.data import Schema
from mlpilot.features._parts import MissingPart, NumberPart, OneHotPart, Part
from mlpilot.runtime._compile_steps import (
    Add,
    AsText,
    Chain,
    Clip,
    CompileError,
    Divide,
    Dropped,
    FillMissing,
    FillNaN,
    InfToNaN,
    Lookup,
    MissingIndicator,
    Multiply,
    OneHot,
    Step,
    Subtract,
    ToFloat,
    Writer,
    is_missing,
)

_NUMERIC_DTYPES = frozenset({"integer", "float", "boolean"})


def source_chain(schema: Schema, name: str) -> Chain:
    """An input column as the model's first transformer sees it: floats, or text for strings."""
    if name not in schema.feature_names:
        raise CompileError(f"the model reads column {name!r}, which is not an input of its schema")
    dtype = schema[name].dtype
    if dtype in _NUMERIC_DTYPES:
        return Chain(name, (ToFloat(),), Writer())
    if dtype == "string":
        return Chain(name, (), Writer())
    raise CompileError(f"column {name!r} is a {dtype} column")


def is_numeric(chain: Chain) -> bool:
    return type(chain.writer) is not Writer or any(isinstance(s, ToFloat | Lookup) for s in chain.steps)


def _plain_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _scalar_steps(chains: Sequence[Chain], what: str, make: Any) -> list[Chain]:
    out = []
    for j, chain in enumerate(chains):
        if not is_numeric(chain):
            raise CompileError(f"{what} on text column {chain.source!r}")
        out.append(chain.then(make(j)))
    return out


def _imputer(imputer: Any, chains: Sequence[Chain]) -> list[Chain]:
    if getattr(imputer, "add_indicator", False):
        raise CompileError("SimpleImputer with add_indicator")
    if not is_missing(imputer.missing_values):
        raise CompileError(f"SimpleImputer with missing_values={imputer.missing_values!r}")
    out = []
    for chain, statistic in zip(chains, imputer.statistics_, strict=True):
        statistic = _plain_value(statistic)
        if is_missing(statistic):
            if getattr(imputer, "keep_empty_features", False):
                raise CompileError("SimpleImputer with keep_empty_features")
            out.append(chain.then((), Dropped()))
        elif is_numeric(chain):
            if not isinstance(statistic, int | float):
                raise CompileError(f"SimpleImputer fills numeric column {chain.source!r} with text")
            out.append(chain.then((FillNaN(float(statistic)),)))
        else:
            out.append(chain.then((FillMissing(statistic),)))
    return out


def _categories(categories: Any, chain: Chain) -> tuple[list[Any], bool]:
    """The categories as plain dict keys, and whether the last one is the missing value."""
    values = [_plain_value(c) for c in categories]
    has_missing = bool(values) and is_missing(values[-1])
    if has_missing:
        values = values[:-1]
    if any(is_missing(v) for v in values):
        raise CompileError("categories with more than one missing value")
    numeric = is_numeric(chain)
    if any(isinstance(v, str) == numeric for v in values):
        raise CompileError(f"categories of column {chain.source!r} do not match its type")
    return values, has_missing


def _one_hot(encoder: Any, chains: Sequence[Chain]) -> list[Chain]:
    if getattr(encoder, "_infrequent_enabled", False):
        raise CompileError("OneHotEncoder with infrequent categories")
    if encoder.handle_unknown not in ("ignore", "error", "warn"):
        raise CompileError(f"OneHotEncoder with handle_unknown={encoder.handle_unknown!r}")
    drop_idx = encoder.drop_idx_
    out = []
    for j, (chain, categories) in enumerate(zip(chains, encoder.categories_, strict=True)):
        values, has_missing = _categories(categories, chain)
        dropped = None if drop_idx is None or drop_idx[j] is None else int(drop_idx[j])
        columns = [*values, *(["missing"] if has_missing else [])]
        positions: list[int] = []
        next_position = 0
        for k in range(len(columns)):
            if k == dropped:
                positions.append(-1)
            else:
                positions.append(next_position)
                next_position += 1
        lookup = dict(zip(values, positions[: len(values)], strict=True))
        writer = OneHot(lookup, next_position, missing=positions[-1] if has_missing else None,
                        reject_unknown=encoder.handle_unknown == "error")
        out.append(chain.then((), writer))
    return out


def _ordinal(encoder: Any, chains: Sequence[Chain]) -> list[Chain]:
    if getattr(encoder, "_infrequent_enabled", False):
        raise CompileError("OrdinalEncoder with infrequent categories")
    if encoder.handle_unknown == "use_encoded_value":
        unknown: float | None = float(encoder.unknown_value)
    elif encoder.handle_unknown == "error":
        unknown = None
    else:
        raise CompileError(f"OrdinalEncoder with handle_unknown={encoder.handle_unknown!r}")
    out = []
    for chain, categories in zip(chains, encoder.categories_, strict=True):
        values, has_missing = _categories(categories, chain)
        codes = {v: float(k) for k, v in enumerate(values)}
        missing = float(encoder.encoded_missing_value) if has_missing else unknown
        out.append(chain.then((Lookup(codes, missing, unknown),)))
    return out


def _scaler(scaler: Any, chains: Sequence[Chain], kind: str) -> list[Chain]:
    """``kind``: ``"standard"``, ``"robust"``, ``"max_abs"`` or ``"min_max"`` (the class registered it)."""

    def steps(j: int) -> tuple[Step, ...]:
        if kind in ("standard", "robust"):
            standard = kind == "standard"
            centre, scale = (scaler.with_mean, scaler.with_std) if standard else (scaler.with_centering, scaler.with_scaling)
            out: list[Step] = []
            if centre:
                out.append(Subtract(float((scaler.mean_ if standard else scaler.center_)[j])))
            if scale:
                out.append(Divide(float(scaler.scale_[j])))
            return tuple(out)
        if kind == "max_abs":
            return (Divide(float(scaler.scale_[j])),)
        low, high = scaler.feature_range
        clip: tuple[Step, ...] = (Clip(float(low), float(high)),) if scaler.clip else ()
        return (Multiply(float(scaler.scale_[j])), Add(float(scaler.min_[j])), *clip)

    return _scalar_steps(chains, type(scaler).__name__, steps)


TransformerCompiler = Callable[[Any, Sequence[Chain]], list[Chain]]
#: Column-wise transformers the compiler knows, by exact class (a subclass may behave otherwise:
#: register it itself).
_TRANSFORMERS: dict[type, TransformerCompiler] = {}


def register_transformer(cls: type, compiler: TransformerCompiler) -> None:
    """Compile fitted instances of ``cls`` (exactly that class) with ``compiler(transformer, chains)``.

    ``compiler`` returns the chains after the transformer, or raises `CompileError`.
    """
    _TRANSFORMERS[cls] = compiler


@functools.cache
def _builtin_transformers() -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import (
        MaxAbsScaler,
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
    )

    for cls, compiler in (
        (SimpleImputer, _imputer),
        (OneHotEncoder, _one_hot),
        (OrdinalEncoder, _ordinal),
        (StandardScaler, functools.partial(_scaler, kind="standard")),
        (RobustScaler, functools.partial(_scaler, kind="robust")),
        (MaxAbsScaler, functools.partial(_scaler, kind="max_abs")),
        (MinMaxScaler, functools.partial(_scaler, kind="min_max")),
    ):
        _TRANSFORMERS.setdefault(cls, compiler)


def is_passthrough(transformer: Any) -> bool:
    from sklearn.preprocessing import FunctionTransformer

    if transformer is None or (isinstance(transformer, str) and transformer == "passthrough"):
        return True
    # ColumnTransformer's fitted remainder="passthrough" is an identity FunctionTransformer.
    return type(transformer) is FunctionTransformer and transformer.func is None


def compile_transformer(transformer: Any, chains: Sequence[Chain]) -> list[Chain]:
    """The chains after ``transformer``, a column-wise scikit-learn transformer (or a Pipeline of them)."""
    from sklearn.pipeline import Pipeline

    if is_passthrough(transformer):
        return list(chains)
    _builtin_transformers()
    name = type(transformer).__name__
    if type(transformer) is Pipeline:
        for _step_name, step in transformer.steps:
            chains = compile_transformer(step, chains)
        return list(chains)
    compiler = _TRANSFORMERS.get(type(transformer))
    module = type(transformer).__module__
    if compiler is None and not module.startswith("sklearn."):
        raise CompileError(f"no compiled form for {module}.{name}")
    n_in = getattr(transformer, "n_features_in_", len(chains))
    if n_in != len(chains):
        raise CompileError(f"{name} expects {n_in} columns, gets {len(chains)}")
    if compiler is None:
        raise CompileError(f"no compiled form for {name}")
    return compiler(transformer, chains)


def _column_names(spec: Any, names_in: list[str]) -> list[str]:
    if isinstance(spec, str):
        raise CompileError("a ColumnTransformer column given as one name (a 1-D input)")
    if isinstance(spec, slice) or callable(spec):
        raise CompileError("a ColumnTransformer column selector that is not a list")
    items = [_plain_value(c) for c in (spec if isinstance(spec, list) else np.asarray(spec).tolist())]
    if items and all(isinstance(c, bool) for c in items):
        return [n for n, keep in zip(names_in, items, strict=True) if keep]
    if all(isinstance(c, int) and not isinstance(c, bool) for c in items):
        return [names_in[c] for c in items]
    if all(isinstance(c, str) for c in items):
        return list(items)
    raise CompileError("ColumnTransformer columns of mixed types")


def compile_column_transformer(transformer: Any, schema: Schema) -> list[Chain]:
    """Chains in the ColumnTransformer's output order."""
    names_in = [str(n) for n in getattr(transformer, "feature_names_in_", [])]
    if not names_in:
        raise CompileError("a ColumnTransformer fitted without column names")
    if transformer.transformer_weights:
        raise CompileError("a ColumnTransformer with transformer_weights")
    out: list[Chain] = []
    for name, trans, spec in transformer.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        span = transformer.output_indices_[name]
        columns = _column_names(spec, names_in)
        if not columns:
            continue
        chains = compile_transformer(trans, [source_chain(schema, c) for c in columns])
        width = sum(c.writer.width for c in chains)
        if span.start != sum(c.writer.width for c in out) or span.stop - span.start != width:
            raise CompileError(f"ColumnTransformer part {name!r} has {span.stop - span.start} outputs, compiled {width}")
        out.extend(chains)
    return out


def _part_chain(part: Part, schema: Schema) -> Chain:
    """The chain of one of a preprocessor's declared parts (`mlpilot.features._parts`)."""
    chain = source_chain(schema, part.column)  # the column must be an input of the schema
    if isinstance(part, NumberPart | MissingPart):
        if not is_numeric(chain):
            raise CompileError(f"numeric column {part.column!r} holds text in the schema")
        if isinstance(part, MissingPart):
            return chain.then((), MissingIndicator())
        steps: list[Step] = [InfToNaN()] if part.inf_missing else []
        if part.fill is not None:
            steps.append(FillNaN(part.fill))
        if part.centre != 0.0 or part.fill is not None:
            steps.append(Subtract(part.centre))
        if part.scale != 1.0 or part.fill is not None:
            steps.append(Divide(part.scale))
        return chain.then(tuple(steps))
    if schema[part.column].dtype not in ("string", "boolean"):
        # an integer column read as text gives '3' or '3.0' depending on the other rows
        raise CompileError(f"categorical column {part.column!r} is a {schema[part.column].dtype} column")
    raw = Chain(part.column, (AsText(),), Writer())
    if isinstance(part, OneHotPart):
        return raw.then((), OneHot(dict(part.positions), part.width, missing=None, reject_unknown=False))
    return raw.then((Lookup(dict(part.table), part.missing, part.unseen),))


def compile_tabular_preprocessor(pre: Any, schema: Schema) -> list[Chain]:
    """Chains in the output order of mlpilot's `TabularPreprocessor`, from its `compiled_parts` hook only."""
    declared = pre.compiled_parts()
    if declared.unsupported is not None:
        raise CompileError(f"TabularPreprocessor {declared.unsupported}")
    out = [_part_chain(part, schema) for part in declared.parts]
    width = sum(c.writer.width for c in out)
    if width != declared.n_outputs:
        raise CompileError(f"TabularPreprocessor has {declared.n_outputs} outputs, compiled {width}")
    return out
