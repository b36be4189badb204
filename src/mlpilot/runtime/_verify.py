"""Checking a compiled model against the general path before it serves anything.

Rows are synthesised from the stored schema and from the categories the
compiled encoders know: a typical row, then each column at its minimum,
maximum, a value beyond its range, missing, each category and an unseen one,
then random rows. Both paths score them, in one batch (the vectorised
encoders) and row by row (the scalar ones). They must agree on every label,
on every probability or value to 1e-9 relative, and on which rows they refuse.
Row by row, a member the library scores (not compiled) is not asked again for
a row it scored in the batch (`_Remembered`): the compiled parts are checked
on every row, the library once.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot.data import ColumnSchema, Schema
from mlpilot.runtime._compile import CompiledModel, EnsembleModel, PipelineModel, compile_model
from mlpilot.runtime._compile_final import Final
from mlpilot.runtime._compile_steps import CompileError
from mlpilot.runtime._dispatch import Timer, inline_rows, pipeline_rows
from mlpilot.runtime._inputs import convert_columns
from mlpilot.runtime._score import _plain, predict_frame
from mlpilot.runtime._verified import VerificationRecords, Verified

if TYPE_CHECKING:
    from mlpilot.runtime._loaded import LoadedModel

logger = logging.getLogger(__name__)

UNSEEN = "__mlpilot_unseen_category__"
_MAX_CATEGORIES = 256
_RTOL = 1e-9
_ATOL = 1e-12
_MAX_GENERAL_CALLS = 256

Outcome = tuple[Any, np.ndarray | None]


@dataclasses.dataclass(frozen=True)
class SampleRow:
    """A synthesised input row and what it exercises (named in mismatch messages)."""

    values: dict[str, Any]
    label: str


def _numbers(col: ColumnSchema) -> list[Any]:
    low = col.minimum if col.minimum is not None else 0.0
    high = col.maximum if col.maximum is not None else max(low, 1.0)
    span = high - low
    values = [low, high, (low + high) / 2, high + span + 1.0, low - span - 1.0, 0.0]
    if col.dtype == "integer":
        return [round(v) for v in values]
    return values


def _categories(col: ColumnSchema, probes: list[Any]) -> list[str]:
    known = list(col.categories or ())[:_MAX_CATEGORIES]
    known += [p for p in probes if isinstance(p, str)][:_MAX_CATEGORIES]
    return list(dict.fromkeys(known)) or ["a"]


def _specials(col: ColumnSchema, probes: list[Any]) -> list[tuple[Any, str]]:
    if col.dtype in ("integer", "float"):
        found = [(v, f"{v!r}") for v in _numbers(col)]
        for p in probes:  # numeric categories of an encoder
            if isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p):
                found.append((int(p) if col.dtype == "integer" and float(p).is_integer() else float(p), f"category {p!r}"))
        return found[: _MAX_CATEGORIES + 6]
    if col.dtype == "boolean":
        return [(True, "true"), (False, "false")]
    if col.dtype == "datetime":
        return [("2024-05-01T12:00:00", "a date")]
    return [(c, f"category {c!r}") for c in _categories(col, probes)] + [(UNSEEN, "an unseen category")]


def _typical(col: ColumnSchema, probes: list[Any]) -> Any:
    if col.dtype in ("integer", "float"):
        return _numbers(col)[2]
    if col.dtype == "boolean":
        return False
    if col.dtype == "datetime":
        return "2024-05-01T12:00:00"
    return _categories(col, probes)[0]


def _random(col: ColumnSchema, probes: list[Any], rng: np.random.Generator, *, complete: bool) -> Any:
    if not complete and rng.random() < 0.1:
        return None
    if col.dtype in ("integer", "float"):
        low, high = _numbers(col)[:2]
        value = rng.uniform(low, high)
        return round(value) if col.dtype == "integer" else float(value)
    if col.dtype == "boolean":
        return bool(rng.random() < 0.5)
    if col.dtype == "datetime":
        return "2024-05-01T12:00:00"
    if not complete and rng.random() < 0.05:
        return UNSEEN
    categories = _categories(col, probes)
    return categories[int(rng.integers(len(categories)))]


def sample_rows(schema: Schema, probes: Mapping[str, list[Any]], *, n_random: int = 48, random_state: int = 0) -> list[SampleRow]:
    """Rows that exercise every column of ``schema`` one at a time, then all at once."""
    rng = np.random.default_rng(random_state)
    features = schema.features
    base = {c.name: _typical(c, probes.get(c.name, [])) for c in features}
    rows = [SampleRow(base, "a typical row")]
    # Rows a pipeline may refuse (missing values, unseen categories) come last and
    # together, so that verification bisects few batches to find them.
    doubtful: list[SampleRow] = []
    for col in features:
        for value, what in _specials(col, probes.get(col.name, [])):
            (doubtful if value == UNSEEN else rows).append(SampleRow({**base, col.name: value}, f"{col.name!r} = {what}"))
        doubtful.append(SampleRow({**base, col.name: None}, f"{col.name!r} missing"))
    for i in range(n_random):
        complete = i < n_random // 2
        values = {c.name: _random(c, probes.get(c.name, []), rng, complete=complete) for c in features}
        (rows if complete else doubtful).append(SampleRow(values, f"random row {i}"))
    return rows + doubtful


def _attempt(predict: Callable[[list[int]], Outcome], idx: list[int]) -> Outcome | None:
    try:
        return predict(idx)
    except Exception:
        return None


def _difference(compiled: Outcome, general: Outcome, rows: list[SampleRow]) -> str | None:
    c_labels, c_proba = compiled
    g_labels, g_proba = general
    if (c_proba is None) != (g_proba is None):
        return "one path gives probabilities and the other does not"
    if c_proba is not None and g_proba is not None:
        if c_proba.shape != g_proba.shape:
            return f"probabilities of shape {c_proba.shape} against {g_proba.shape}"
        close = np.isclose(c_proba, g_proba, rtol=_RTOL, atol=_ATOL).all(axis=1)
        if not close.all():
            i = int(np.flatnonzero(~close)[0])
            gap = float(np.max(np.abs(c_proba[i] - g_proba[i])))
            return f"probabilities differ by {gap:.3g} on the row with {rows[i].label}"
    c_plain, g_plain = _plain(c_labels), _plain(g_labels)
    if len(c_plain) != len(g_plain):
        return f"{len(c_plain)} predictions against {len(g_plain)}"
    for i, (c, g) in enumerate(zip(c_plain, g_plain, strict=True)):
        same = c == g or (isinstance(c, float) and isinstance(g, float)
                          and math.isclose(c, g, rel_tol=_RTOL, abs_tol=_ATOL))
        if not same:
            return f"predictions {c!r} and {g!r} on the row with {rows[i].label}"
    return None


class _Remembered(Final):
    """A library-backed final step that answers a matrix row it has scored before from memory.

    The library's value for a row does not depend on the other rows of its batch, so the
    row-by-row checks need not call it again on a row the batch check gave it: only the
    compiled parts (encoders, compiled finals) are what those checks are about. A row it has
    not seen (the one-row encoders gave other numbers than the batch ones) goes to the library.
    """

    def __init__(self, final: Final) -> None:
        self.final = final
        self.n_features = final.n_features
        self.fast = final.fast
        self.seen: dict[bytes, np.ndarray] = {}

    def values(self, X: np.ndarray) -> np.ndarray:
        keys = [row.tobytes() for row in np.ascontiguousarray(X, dtype=np.float64)]
        if keys and all(k in self.seen for k in keys):
            return np.stack([self.seen[k] for k in keys])
        out = self.final.values(X)
        if out.shape[0] == len(keys):
            self.seen.update(zip(keys, np.asarray(out), strict=True))
        return out

    def one(self, row: list[float]) -> list[float] | None:
        return self.final.one(row)


def _remembering(compiled: CompiledModel) -> CompiledModel:
    """A shallow copy of ``compiled`` whose library-backed final steps are `_Remembered` (for verification only)."""
    if isinstance(compiled, PipelineModel) and not compiled.final.fast:
        copy = _copy.copy(compiled)
        copy.final = _Remembered(compiled.final)
        return copy
    if isinstance(compiled, EnsembleModel) and not compiled.inline:
        ensemble = _copy.copy(compiled)
        ensemble.members = [(i, final if final.fast else _Remembered(final), w) for i, final, w in compiled.members]
        return ensemble
    return compiled


class _Check:
    def __init__(self, compiled: CompiledModel, loaded: LoadedModel, rows: list[SampleRow]) -> None:
        assert loaded.schema is not None
        self.compiled = _remembering(compiled)
        self.loaded = loaded
        self.schema = loaded.schema
        self.rows = rows
        self.names = list(self.schema.feature_names)
        self.general_calls = 0

    def columns(self, idx: list[int]) -> dict[str, list[Any]]:
        return {name: [self.rows[i].values[name] for i in idx] for name in self.names}

    def general(self, idx: list[int]) -> Outcome:
        self.general_calls += 1
        data, _warnings = convert_columns(self.columns(idx), self.schema)
        return predict_frame(self.loaded, pd.DataFrame(data, index=pd.RangeIndex(len(idx)), copy=False))

    def fast(self, idx: list[int]) -> Outcome:
        if len(idx) == 1:  # one row as the fast path gets it: a row dict
            return self.compiled.predict([{name: self.rows[idx[0]].values[name] for name in self.names}], 1)
        return self.compiled.predict(self.columns(idx), len(idx))

    def run(self, idx: list[int]) -> str | None:
        if self.general_calls >= _MAX_GENERAL_CALLS:
            return "too many sample rows are refused to verify the rest"
        general = _attempt(self.general, idx)
        compiled = _attempt(self.fast, idx)
        rows = [self.rows[i] for i in idx]
        if general is not None and compiled is not None:
            problem = _difference(compiled, general, rows)
            if problem is not None:
                return problem
            return self.one_by_one(idx, general)
        if general is None and compiled is None:
            if len(idx) == 1:
                return None
            half = len(idx) // 2
            return self.run(idx[:half]) or self.run(idx[half:])
        if general is None:
            return f"the pipeline refuses rows the compiled path scores (first: {rows[0].label})"
        return f"the compiled path refuses rows the pipeline scores (first: {rows[0].label})"

    def one_by_one(self, idx: list[int], general: Outcome) -> str | None:
        labels, proba = general
        for k, i in enumerate(idx):
            single = _attempt(self.fast, [i])
            if single is None:
                return f"the compiled path refuses the row with {self.rows[i].label} alone"
            expected = (np.asarray(labels)[k : k + 1], proba[k : k + 1] if proba is not None else None)
            problem = _difference(single, expected, [self.rows[i]])
            if problem is None:
                problem = self.without_arrays(i, single)
            if problem is not None:
                return problem + " (scored alone)"
        return None

    def without_arrays(self, i: int, expected: Outcome) -> str | None:
        """`CompiledModel.predict_one` must give exactly what `predict` gives."""
        try:
            one = self.compiled.predict_one({name: self.rows[i].values[name] for name in self.names})
        except Exception as exc:
            return f"the one-row path fails on the row with {self.rows[i].label} ({type(exc).__name__})"
        if one is None:
            return None
        label, values = one
        labels, proba = expected
        same_label = _plain([label]) == _plain(labels)
        same_values = (values is None and proba is None) or (
            values is not None and proba is not None and list(values) == proba[0].tolist())
        if not (same_label and same_values):
            return f"the one-row path differs from the batch path on the row with {self.rows[i].label}"
        return None


def verify(compiled: CompiledModel, loaded: LoadedModel, *, n_random: int = 48, random_state: int = 0) -> str | None:
    """``None`` when ``compiled`` agrees with ``loaded``'s general path on synthesised rows, else why not."""
    if loaded.schema is None:
        return "the model has no input schema to synthesise rows from"
    rows = sample_rows(loaded.schema, compiled.probe_values(), n_random=n_random, random_state=random_state)
    check = _Check(compiled, loaded, rows)
    try:
        return check.run(list(range(len(rows))))
    except Exception as exc:  # the sample rows themselves failed validation: do not guess
        return f"verification failed: {type(exc).__name__}: {str(exc)[:200]}"


_FINGERPRINT_ROWS = 8


def _first_rows(compiled: CompiledModel, schema: Schema) -> list[SampleRow]:
    """The first, fixed sample rows (no random ones): the fingerprint's rows and the dispatch timing's."""
    return sample_rows(schema, compiled.probe_values(), n_random=0)[:_FINGERPRINT_ROWS]


def fingerprint(compiled: CompiledModel, loaded: LoadedModel) -> str:
    """A hash of what ``compiled`` gives on the first sample rows (a verification record's check)."""
    import hashlib

    assert loaded.schema is not None
    rows = _first_rows(compiled, loaded.schema)
    names = list(loaded.schema.feature_names)
    labels, proba = compiled.predict({name: [r.values[name] for r in rows] for name in names}, len(rows))
    digest = hashlib.sha256(repr(_plain(labels)).encode())
    if proba is not None:
        digest.update(np.ascontiguousarray(proba, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _recorded(records: VerificationRecords | None, compiled: CompiledModel,
              loaded: LoadedModel) -> tuple[Verified | None, str | None]:
    """The usable record of this artifact's verification (or None), and the compiled path's fingerprint."""
    if records is None or not loaded.version.sha256:
        return None, None
    try:
        mark = fingerprint(compiled, loaded)
    except Exception:  # rows the compiled path refuses: no record, the verification says why
        return None, None
    found = records.get(loaded.version.sha256)
    return (found if found is not None and found.fingerprint == mark else None), mark


def _varied_rows(compiled: CompiledModel, schema: Schema, n: int = 64) -> list[SampleRow]:
    """``n`` random sample rows with every value present and known: a batch's variety, for timing it.

    (Eight rows repeated would flatter a tree walk that meets the same paths again and again.)
    """
    rows = sample_rows(schema, compiled.probe_values(), n_random=2 * n)
    varied = [r for r in rows if r.label.startswith("random row")
              and all(v is not None and v != UNSEEN for v in r.values.values())]
    return varied or _first_rows(compiled, schema)


def _batch_paths(compiled: CompiledModel, loaded: LoadedModel,
                 rows: list[SampleRow]) -> tuple[Callable[[int], Any], Callable[[int], Any]]:
    """Score ``n`` sample rows (repeated) as a batch request reaches each path: compiled, then the pipeline."""
    assert loaded.schema is not None
    schema = loaded.schema
    names = list(schema.feature_names)

    def columns(n: int) -> dict[str, list[Any]]:
        return {name: [rows[i % len(rows)].values[name] for i in range(n)] for name in names}

    def fast(n: int) -> Any:
        return compiled.predict(columns(n), n)

    def general(n: int) -> Any:
        data, _warnings = convert_columns(columns(n), schema)
        return predict_frame(loaded, pd.DataFrame(data, index=pd.RangeIndex(n), copy=False))

    return fast, general


def with_fast_path(loaded: LoadedModel, records: VerificationRecords | None = None, *,
                   timer: Timer | None = None) -> LoadedModel:
    """``loaded`` with its compiled model attached when one compiles and verifies; the reason otherwise.

    With ``records``, a verification recorded for this artifact under today's libraries and code,
    whose compiled path still gives the recorded fingerprint, is used instead of verifying again.
    Which requests go to the event loop, and which batches to the pipeline, is measured each
    time (`mlpilot.runtime._dispatch`; ``timer`` replaces the clock there).
    """
    ref = loaded.version.ref
    if loaded.schema is None:
        return dataclasses.replace(loaded, fast_path="not compiled: the model has no input schema")
    start = time.perf_counter()
    try:
        compiled = compile_model(loaded.model, loaded.schema, with_proba=loaded.classes is not None)
    except CompileError as exc:
        logger.info("%s is served by its general path: no compiled form (%s)", ref, exc)
        return dataclasses.replace(loaded, fast_path=f"not compiled: {exc}")
    except Exception as exc:
        logger.warning("%s is served by its general path: compiling it failed", ref, exc_info=True)
        return dataclasses.replace(loaded, fast_path=f"not compiled: {type(exc).__name__}")
    recorded, mark = _recorded(records, compiled, loaded)
    if recorded is not None:
        problem = recorded.problem
        seconds = time.perf_counter() - start
        logger.info("%s: verification recorded %s reused (%.2f s then)", ref,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(recorded.at)), recorded.seconds)
    else:
        problem = verify(compiled, loaded)
        seconds = time.perf_counter() - start
        if records is not None and mark is not None:
            records.put(loaded.version.sha256, problem, seconds, mark)
    if problem is not None:
        logger.warning("%s is served by its general path: its compiled form disagrees with it (%s)", ref, problem)
        return dataclasses.replace(loaded, fast_path=f"refused at load: {problem}")
    first = _first_rows(compiled, loaded.schema)
    compiled.inline_rows, dispatch = inline_rows(compiled, [row.values for row in first])
    compiled.pipeline_rows, batches = pipeline_rows(*_batch_paths(compiled, loaded, _varied_rows(compiled, loaded.schema)),
                                                    timer=timer)
    dispatch = f"{dispatch}; {batches}"
    logger.info("%s: compiled fast path verified in %.2f s (%s); %s", ref, seconds, compiled.description, dispatch)
    return dataclasses.replace(loaded, compiled=compiled, fast_path=f"compiled: {compiled.description}",
                               dispatch=dispatch)
