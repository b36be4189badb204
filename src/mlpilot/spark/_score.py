"""Batch scoring on Spark: `mlpilot.runtime.score_frame` in ``mapInPandas``, bad rows set aside.

The driver reads the version's artifact through the registry (which checks its
sha256) and broadcasts the bytes with that hash. Each Python worker checks the
hash, loads the model once (`mlpilot.runtime.load_version` on the broadcast bytes)
and keeps it for every later batch. Each batch goes through `score_frame`, the
function ``mlpilot predict`` and ``predict.csv`` call, so the output has their
columns (``prediction``, ``probability_<class>``, ``warnings``) and their rules.
A row that fails validation is not a failed job: it goes to the rejects output
with the error the single-machine path gives for it.

One job scores and writes: each task counts its scored and rejected rows into
an accumulator keyed by its partition (a retried task's counts replace its
first attempt's), so no cache and no counting job are needed; only when rows
were rejected does a second job score again to write them (measured in
bench/results/spark.md: the cache and its two counts had cost more JVM time
than reading, converting and writing the rows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot.exceptions import (
    ArtifactIntegrityError,
    DataError,
    InvalidParameterError,
    SchemaValidationError,
)
from mlpilot.runtime import load_version, score_frame
from mlpilot.runtime._frames import PREDICTION_COLUMN, PROBABILITY_PREFIX, WARNINGS_COLUMN
from mlpilot.spark._session import quiet, require_pyspark, spark_job

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from mlpilot.registry import ModelVersion, Registry
    from mlpilot.runtime import LoadedModel

ERROR_COLUMN = "error"
_INTERNAL_ERROR = "__mlpilot_error__"
#: Beyond this many bad rows in one batch, they share the batch's messages instead of one check each.
_MAX_ROW_CHECKS = 1_000
_ROW_ZERO = re.compile(r" ?(at|from) row\(s\) 0(?=[;:.,]|$)")

#: Loaded models of this Python worker, by artifact hash: one load per worker, reused across batches.
_LOADED: dict[str, LoadedModel] = {}


class _Artifact:
    """The verified artifact bytes, shaped as the one method of `Registry` that `load_version` calls."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def load_model(self, mv: ModelVersion) -> Any:
        from mlpilot.registry._artifacts import loads

        return loads(self._data, mv.artifact_format)


def _worker_model(mv: ModelVersion, artifact: Any) -> LoadedModel:
    """The model of ``mv`` in this worker: loaded from the broadcast bytes once, after the hash check."""
    loaded = _LOADED.get(mv.sha256)
    if loaded is None:
        from mlpilot.registry._artifacts import sha256_bytes

        data = artifact.value
        if sha256_bytes(data) != mv.sha256:
            raise ArtifactIntegrityError(
                f"The broadcast artifact of {mv.ref} does not match its recorded sha256; it was not loaded."
            )
        loaded = load_version(_Artifact(data), mv, fast_path=False)  # type: ignore[arg-type]
        _LOADED[mv.sha256] = loaded
    return loaded


@dataclass(frozen=True)
class OutputColumns:
    """The columns scoring appends, named as `score_frame` names them for these input columns."""

    prediction: str
    probabilities: tuple[str, ...]
    warnings: str

    @classmethod
    def for_input(cls, columns: list[str], classes: tuple[Any, ...] | None) -> OutputColumns:
        def free(name: str) -> str:
            return name if name not in columns else name + "_"

        probabilities = tuple(f"{PROBABILITY_PREFIX}{c}" for c in classes) if classes else ()
        return cls(free(PREDICTION_COLUMN), probabilities, free(WARNINGS_COLUMN))

    @classmethod
    def for_version(cls, mv: ModelVersion, columns: list[str]) -> OutputColumns | None:
        """Named from ``mv``'s recorded task and classes, without loading it; None when it records neither."""
        task, classes = mv.info.get("task"), tuple(mv.info.get("classes") or ())
        if task is None or (task != "regression" and not classes):
            return None
        return cls.for_input(columns, classes if task != "regression" else None)

    @property
    def names(self) -> list[str]:
        return [self.prediction, *self.probabilities, self.warnings]


def _conform(loaded: LoadedModel, own: OutputColumns, columns: OutputColumns, classes: tuple[Any, ...]) -> Any:
    """What turns the runtime's frame for ``loaded`` (its columns ``own``) into ``columns``, named from the record.

    A model saved before bool classes were kept (a bool target's ensemble predicting 1/0) names its
    probability columns and labels after its own classes; they are the recorded classes in the same
    order, so its columns are renamed and its labels mapped to the recorded ones by position.
    """
    if len(own.probabilities) != len(columns.probabilities) or len(classes) != len(columns.probabilities):
        raise DataError(f"The model of {loaded.version.ref} has the classes {list(loaded.classes or ())}, its version "
                        f"records {list(classes)}; it cannot be scored on Spark. Register it again.")
    from mlpilot.registry._labels import class_positions

    renames = dict(zip(own.names, columns.names, strict=True))
    recorded = np.asarray(classes, dtype=object)

    def conform(out: pd.DataFrame) -> pd.DataFrame:
        out = out.rename(columns=renames)
        labels = out[columns.prediction]
        positions = class_positions(labels, loaded.classes or ())
        known = labels.notna().to_numpy() & (positions >= 0)
        values = np.array(labels, dtype=object)  # a copy: the frame's own array may be read-only
        values[known] = recorded[positions[known]]
        out[columns.prediction] = values
        return out

    return conform


def _row_errors(loaded: LoadedModel, rows: pd.DataFrame) -> list[str]:
    """Each row's own validation errors, as the single-machine path words them for a one-row table."""
    out = []
    for i in range(len(rows)):
        try:
            score_frame(loaded, rows.iloc[[i]].reset_index(drop=True))
        except SchemaValidationError as exc:
            out.append("; ".join(_ROW_ZERO.sub("", str(p)) for p in exc.problems))
        except DataError as exc:
            out.append(str(exc))
        else:
            out.append("")  # fine alone; rejected with its batch by the model itself
    return out


def score_batch(loaded: LoadedModel, batch: pd.DataFrame, columns: OutputColumns) -> pd.DataFrame:
    """Score one batch: the input with ``columns`` appended, and the error column (null when scored).

    Rows named by a validation error are taken out and the rest scored again, until
    what is left scores; each bad row keeps its own error message.
    """
    batch = batch.reset_index(drop=True)
    keep = np.ones(len(batch), dtype=bool)
    errors: dict[int, str] = {}
    scored = None
    while keep.any():
        positions = np.flatnonzero(keep)
        part = batch.iloc[positions].reset_index(drop=True)
        try:
            scored = score_frame(loaded, part)
            break
        except SchemaValidationError as exc:
            named = sorted({r for p in exc.problems for r in getattr(p, "rows", ()) if 0 <= r < len(part)})
            bad = positions[named] if named else positions
            message = "; ".join(map(str, exc.problems))
        except DataError as exc:
            bad, message = positions, str(exc)
        own = _row_errors(loaded, batch.iloc[bad]) if len(bad) <= _MAX_ROW_CHECKS else [""] * len(bad)
        for position, text in zip(bad, own, strict=True):
            errors[int(position)] = text or message
        keep[bad] = False
    if scored is not None and not errors:  # the common case: every row scored, the runtime's frame as it is
        out = scored.frame
        out[_INTERNAL_ERROR] = None
        return out
    out = batch.copy()
    for name in columns.names:
        out[name] = None
    if scored is not None:
        good = np.flatnonzero(keep)
        for name in columns.names:
            values = scored.frame[name].to_numpy() if name in scored.frame.columns else None
            if values is not None:
                out.loc[good, name] = pd.Series(values, index=good, dtype=object)
    out[_INTERNAL_ERROR] = pd.Series([errors.get(i) for i in range(len(batch))], dtype=object)
    return out


def _spark_type(values: tuple[Any, ...] | None) -> Any:
    from pyspark.sql import types as T

    if not values:
        return T.DoubleType()
    first = values[0]
    if isinstance(first, bool | np.bool_):
        return T.BooleanType()
    if isinstance(first, int | np.integer):
        return T.LongType()
    if isinstance(first, float | np.floating):
        return T.DoubleType()
    return T.StringType()


@dataclass(frozen=True)
class BatchScoring:
    """What `predict_spark` did: rows scored and rejected, and where each output went."""

    n_scored: int
    n_rejected: int
    output: str
    rejects: str | None


def _writer(frame: DataFrame, path: str) -> Any:
    fmt = "csv" if path.lower().endswith(".csv") else "json" if path.lower().endswith((".json", ".jsonl")) else "parquet"
    writer = frame.write.mode("overwrite").format(fmt)
    return writer.option("header", "true") if fmt == "csv" else writer


class _PartitionCounts:
    """An accumulator's rule for ``{partition: (scored, rejected)}``: a partition's latest counts stand.

    Scoring is deterministic, so a task run again (a retry, a speculative copy,
    a second job over the same rows) reports the same counts for its partition,
    and replacing them keeps the total exact where adding would not.
    """

    def zero(self, value: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
        return {}

    def addInPlace(self, total: dict[int, tuple[int, int]],  # pyspark's AccumulatorParam names it so
                   more: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
        total.update(more)
        return total


def scored_frame(registry: Registry, mv: ModelVersion, frame: DataFrame, *, counts: Any = None) -> DataFrame:
    """``frame`` scored lazily on the cluster, with the error column ``__mlpilot_error__`` (null: scored).

    ``counts``, an accumulator with `_PartitionCounts`, receives each partition's
    ``(scored, rejected)`` rows once the task has scored them all.
    """
    require_pyspark()
    from pyspark.sql import types as T

    data = registry.read_file(mv, None)  # the registry checks the hash here; the workers load the model
    columns = OutputColumns.for_version(mv, list(frame.columns))
    if columns is None:  # a version registered without mlpilot's info: its model names the columns
        columns = OutputColumns.for_input(list(frame.columns), load_version(registry, mv, fast_path=False).classes)
    classes = tuple(mv.info.get("classes") or ()) or None
    label_type = _spark_type(classes) if mv.info.get("task") != "regression" else T.DoubleType()
    recorded = classes if mv.info.get("task") not in (None, "regression") else None
    inputs = list(frame.columns)
    fields = [f for f in frame.schema.fields if f.name not in columns.names]
    fields += [T.StructField(columns.prediction, label_type, True)]
    fields += [T.StructField(name, T.DoubleType(), True) for name in columns.probabilities]
    fields += [T.StructField(columns.warnings, T.StringType(), True),
               T.StructField(_INTERNAL_ERROR, T.StringType(), True)]
    schema = T.StructType(fields)
    artifact = frame.sparkSession.sparkContext.broadcast(data)
    names = [f.name for f in fields]

    def score_partition(batches: Any) -> Any:
        model = _worker_model(mv, artifact)
        own = OutputColumns.for_input(inputs, model.classes) if recorded is not None else columns
        conform = _conform(model, own, columns, recorded) if recorded is not None and own != columns else None
        good = bad = 0
        for batch in batches:
            out = score_batch(model, batch, own)
            out = conform(out) if conform is not None else out
            rejected = int(out[_INTERNAL_ERROR].notna().sum())
            good, bad = good + len(out) - rejected, bad + rejected
            yield out[names]
        if counts is not None:
            from pyspark import TaskContext

            context = TaskContext.get()
            counts.add({context.partitionId() if context is not None else 0: (good, bad)})

    with quiet():
        return frame.mapInPandas(score_partition, schema)


def predict_spark(registry: Registry, mv: ModelVersion, frame: DataFrame, output: str | None = None,
                  *, rejects: str | None = None, output_table: str | None = None,
                  overwrite: bool = False) -> BatchScoring:
    """Score ``frame`` with ``mv`` on the cluster; write the scored rows to ``output`` and bad rows to ``rejects``.

    Parameters
    ----------
    output : str, optional
        A path (folder) Spark writes: Parquet, or CSV/JSON when it ends in ``.csv``/``.json``.
        The input columns, then ``prediction``, ``probability_<class>`` and ``warnings``.
    rejects : str, optional
        Where rows that fail validation go (the input columns and ``error``); default
        ``output`` with ``.rejects`` appended, or the table ``<output_table>_rejects``.
        Written only when there are any.
    output_table : str, optional
        Instead of ``output``: a catalog table (``db.name`` or ``name``) written with
        ``saveAsTable`` (Parquet).
    overwrite : bool
        Replace ``output_table`` (and its rejects table) when it exists; without it an
        existing table is refused before any job.

    Raises
    ------
    SchemaValidationError
        When the table itself does not fit the model (a feature column is missing):
        checked before any job runs.
    InvalidParameterError
        Neither or both of ``output`` and ``output_table``; a table name that is not one,
        in a database that does not exist, or that exists without ``overwrite``.
    SparkJobError
        When the job fails on the cluster.
    """
    require_pyspark()
    from pyspark.sql import functions as F

    if (output is None) == (output_table is None):
        raise InvalidParameterError("Give exactly one of output (a path) or output_table (a catalog table).")
    _check_columns(mv, frame)
    rejects_table = output_table is not None and rejects is None  # a rejects path given stays a path
    if output_table is not None:
        rejects = rejects or f"{output_table}_rejects"
        for name in (output_table, rejects) if rejects_table else (output_table,):
            check_table(frame.sparkSession, name, overwrite=overwrite)
    else:
        assert output is not None
        rejects = rejects or output.rstrip("/") + ".rejects"
    param: Any = _PartitionCounts()  # duck-typed as pyspark's AccumulatorParam (no pyspark import at module level)
    counts = frame.sparkSession.sparkContext.accumulator({}, param)
    scored = scored_frame(registry, mv, frame, counts=counts)
    with spark_job(f"scored the rows with {mv.ref}"), quiet():
        good = scored.filter(F.col(_INTERNAL_ERROR).isNull()).drop(_INTERNAL_ERROR)
        _save(good, output_table or str(output), as_table=output_table is not None)
        n_good = sum(g for g, _ in counts.value.values())
        n_bad = sum(b for _, b in counts.value.values())
        if n_bad:  # a second pass, only when rows were rejected: the scores are not kept between jobs
            keep = [c for c in frame.columns] + [_INTERNAL_ERROR]
            bad = scored.filter(F.col(_INTERNAL_ERROR).isNotNull())
            _save(bad.select(*keep).withColumnRenamed(_INTERNAL_ERROR, ERROR_COLUMN), rejects, as_table=rejects_table)
    where = f"table {output_table}" if output_table is not None else str(output)
    return BatchScoring(n_good, n_bad, where, (f"table {rejects}" if rejects_table else rejects) if n_bad else None)


def _save(part: DataFrame, where: str, *, as_table: bool) -> None:
    """Write ``part`` to the catalog table ``where`` (Parquet, replacing it: `check_table` ran first) or the path."""
    if as_table:
        part.write.mode("overwrite").format("parquet").saveAsTable(where)
    else:
        _writer(part, where).save(where)


_TABLE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*){0,2}")


def check_table(spark: Any, name: str, *, overwrite: bool) -> None:
    """Refuse, before any job, a catalog table ``name`` that cannot be written (or exists, without ``overwrite``)."""
    if not _TABLE_NAME.fullmatch(name):
        raise InvalidParameterError(
            f"{name!r} is not a catalog table name; write it as db.name or name (letters, digits and _).")
    database = name.rpartition(".")[0]
    if database and not spark.catalog.databaseExists(database):
        raise InvalidParameterError(
            f"The database {database!r} of the output table {name} does not exist; create it "
            f"(CREATE DATABASE {database}) or name a table in an existing one.")
    if spark.catalog.tableExists(name) and not overwrite:
        raise InvalidParameterError(
            f"The table {name} already exists; pass --overwrite (overwrite=True) to replace it, or name another.")


def _check_columns(mv: ModelVersion, frame: DataFrame) -> None:
    """A feature column absent from the whole table fails every row: say so before the job."""
    from mlpilot.data import Problem, Schema

    if not mv.schema:
        return
    schema = Schema.from_dict(mv.schema)
    missing = [c for c in schema.feature_names if c not in frame.columns]
    if missing:
        raise SchemaValidationError([
            Problem(name, "missing_column", f"Column {name!r} is missing; the model {mv.ref} needs it. "
                    f"The table has: {', '.join(frame.columns[:20])}.")
            for name in missing
        ])


@dataclass(frozen=True)
class BatchRecommendations:
    """What `recommend_spark` did: users ranked for, those unknown to the model (most-popular fallback), rows written."""

    n_users: int
    n_fallback: int
    n_rows: int
    k: int
    output: str


_FALLBACK = "__mlpilot_fallback__"


def _id_type(values: np.ndarray) -> Any:
    from pyspark.sql import types as T

    kind = np.asarray(values).dtype.kind
    return T.LongType() if kind in "iub" else T.DoubleType() if kind == "f" else T.StringType()


def recommend_spark(registry: Registry, mv: ModelVersion, frame: DataFrame, output: str | None = None,
                    *, k: int | None = None, output_table: str | None = None,
                    overwrite: bool = False) -> BatchRecommendations:
    """Top-``k`` items for every distinct user of ``frame`` with the recommender ``mv``, written to ``output``.

    The columns are `RecommenderModel.recommend`'s (``user``, ``item``, ``score``,
    ``rank``), one row per user and rank. Users the model never saw get the most
    popular items, as on one machine; they are counted (``n_fallback``). The model
    is broadcast once and loaded once per Python worker, as for `predict_spark`.

    ``output_table`` writes a catalog table instead of the ``output`` path, as `predict_spark`.

    Raises
    ------
    ColumnNotFoundError
        When ``frame`` lacks the model's user column (checked before any job).
    InvalidParameterError
        As `predict_spark`, for the output.
    """
    require_pyspark()
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from mlpilot.exceptions import ColumnNotFoundError

    if (output is None) == (output_table is None):
        raise InvalidParameterError("Give exactly one of output (a path) or output_table (a catalog table).")
    model = load_version(registry, mv, fast_path=False).model  # the registry checks the hash here
    user_col = str(model.user_col)
    if user_col not in frame.columns:
        raise ColumnNotFoundError(user_col, list(frame.columns), what=f"user column of {mv.ref}")
    if output_table is not None:
        check_table(frame.sparkSession, output_table, overwrite=overwrite)
    top = int(k if k is not None else model.protocol_.get("k", 10))
    artifact = frame.sparkSession.sparkContext.broadcast(registry.read_file(mv, None))
    user_type = next(f.dataType for f in frame.schema.fields if f.name == user_col)
    schema = T.StructType([T.StructField("user", user_type, True), T.StructField("item", _id_type(model.items_), True),
                           T.StructField("score", T.DoubleType(), True), T.StructField("rank", T.LongType(), True),
                           T.StructField(_FALLBACK, T.BooleanType(), True)])

    def rank_partition(batches: Any) -> Any:
        loaded = _worker_model(mv, artifact).model
        for batch in batches:
            users = batch[user_col].tolist()
            ranked = loaded.recommend(users, k=top)
            fallback = {_key_of(u) for u in ranked.attrs.get("fallback_users", [])}
            ranked[_FALLBACK] = [_key_of(u) in fallback for u in ranked["user"]]
            yield ranked

    users = frame.select(F.col(f"`{user_col}`")).where(F.col(f"`{user_col}`").isNotNull()).distinct()
    with quiet():
        ranked = users.mapInPandas(rank_partition, schema).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with spark_job(f"ranked items for the users with {mv.ref}"), quiet():
            _save(ranked.drop(_FALLBACK), output_table or str(output), as_table=output_table is not None)
            counts = ranked.groupBy(_FALLBACK).agg(F.countDistinct("user").alias("users"), F.count("*").alias("rows"))
            by_kind = {bool(r[_FALLBACK]): (int(r["users"]), int(r["rows"])) for r in counts.collect()}
    finally:
        ranked.unpersist()
    known, unknown = by_kind.get(False, (0, 0)), by_kind.get(True, (0, 0))
    where = f"table {output_table}" if output_table is not None else str(output)
    return BatchRecommendations(known[0] + unknown[0], unknown[0], known[1] + unknown[1], top, where)


def _key_of(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


__all__ = ["ERROR_COLUMN", "BatchRecommendations", "BatchScoring", "OutputColumns", "check_table", "predict_spark",
           "recommend_spark", "score_batch", "scored_frame"]
