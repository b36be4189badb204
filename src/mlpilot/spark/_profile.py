"""The data profile of a Spark table, from Spark aggregates: the `mlpilot.data.Profile` ``profile`` makes.

Counts, nulls, distinct estimates (HyperLogLog++), mean/std/min/max, the top values
of categorical columns, duplicate rows and the class balance are computed over the
whole table by Spark; nothing but aggregates comes back to the driver. The column
roles and the leakage suspects need rows: they are decided on a uniform sample of
at most ``sample_rows`` rows (`mlpilot.data.infer_schema`, `mlpilot.data.leakage_scores`,
the single-machine functions), and the profile's notes say so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlpilot.data import ColumnProfile, Profile, Schema, infer_schema, leakage_scores, target_task
from mlpilot.data._profile import HIGH_CARDINALITY
from mlpilot.exceptions import ColumnNotFoundError, EmptyDataError
from mlpilot.spark._session import quiet, require_pyspark, spark_job

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SAMPLE_ROWS = 20_000
_TOP_ROLES = ("categorical", "boolean", "constant", "id", "text")
#: Top values are counted (in one job) for at most this many columns.
_MAX_TOP_COLUMNS = 50


@dataclass(frozen=True)
class SparkProfile:
    """What `profile_spark` gives: the profile and schema of the whole table, and the sample behind the roles."""

    profile: Profile
    schema: Schema
    sample: pd.DataFrame
    n_rows: int


def sample_frame(frame: DataFrame, n_rows: int, size: int, random_state: int) -> pd.DataFrame:
    """A uniform random sample of about ``size`` rows (all of a smaller table) as pandas."""
    with quiet():
        part = frame if n_rows <= size else frame.sample(fraction=min(1.0, 1.2 * size / n_rows), seed=random_state)
        return part.limit(size).toPandas()


def _aggregates(frame: DataFrame, numeric: list[str]) -> dict[str, Any]:
    from pyspark.sql import functions as F

    exprs = [F.count(F.lit(1)).alias("__rows__")]
    for i, name in enumerate(frame.columns):
        col = F.col(f"`{name}`")
        exprs += [F.count(col).alias(f"n{i}"), F.approx_count_distinct(col, 0.02).alias(f"d{i}")]
        if name in numeric:
            value = col.cast("double")
            exprs += [F.mean(value).alias(f"mean{i}"), F.stddev(value).alias(f"std{i}"),
                      F.min(value).alias(f"min{i}"), F.max(value).alias(f"max{i}")]
    return frame.agg(*exprs).first().asDict()  # type: ignore[union-attr]


def _top_values(frame: DataFrame, names: list[str]) -> dict[str, tuple[tuple[str, int], ...]]:
    """The ten most frequent values of each of ``names``, all columns counted in one Spark job."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not names:
        return {}
    pairs = F.explode(F.array(*[F.struct(F.lit(n).alias("c"), F.col(f"`{n}`").cast("string").alias("v"))
                                for n in names]))
    counted = (frame.select(pairs.alias("p")).select("p.c", "p.v").where(F.col("v").isNotNull())
               .groupBy("c", "v").count())
    rank = F.row_number().over(Window.partitionBy("c").orderBy(F.desc("count"), F.asc("v")))
    rows = counted.withColumn("r", rank).where(F.col("r") <= 10).orderBy("c", "r").collect()
    out: dict[str, list[tuple[str, int]]] = {}
    for row in rows:
        out.setdefault(row["c"], []).append((str(row["v"]), int(row["count"])))
    return {name: tuple(values) for name, values in out.items()}


def profile_spark(frame: DataFrame, *, target: str | None = None, sample_rows: int = SAMPLE_ROWS,
                  random_state: int = 0, check_leakage: bool = True, notes: list[str] | None = None) -> SparkProfile:
    """Profile a Spark table with Spark aggregates; roles and leakage from a sample.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
    target : str, optional
        The target column (class balance, leakage suspects).
    sample_rows : int
        Most rows collected to the driver for the column roles and the leakage check.

    Returns
    -------
    SparkProfile

    Raises
    ------
    ColumnNotFoundError, EmptyDataError
    """
    require_pyspark()
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if target is not None and target not in frame.columns:
        raise ColumnNotFoundError(target, list(frame.columns))
    numeric = [f.name for f in frame.schema.fields if isinstance(f.dataType, T.NumericType | T.BooleanType)]
    with spark_job("profiled the table"):
        agg = _aggregates(frame, numeric)
        n_rows = int(agg["__rows__"])
        if n_rows == 0:
            raise EmptyDataError("The Spark table has no rows; there is nothing to profile.")
        sample = sample_frame(frame, n_rows, sample_rows, random_state)
        inferred = infer_schema(sample, target=target)
        columns_schema = []
        for i, c in enumerate(inferred.columns):
            n_present = int(agg[f"n{i}"])
            n_unique = int(agg[f"d{i}"])
            role = "constant" if n_unique <= 1 else c.role
            bounds = {"minimum": agg[f"min{i}"], "maximum": agg[f"max{i}"]} if c.name in numeric else {}
            columns_schema.append(replace(c, n_unique=n_unique, nullable=n_present < n_rows, role=role, **bounds))
        schema = Schema(tuple(columns_schema), target=target)
        tops = _top_values(frame, [c.name for c in schema.columns
                                   if c.role in _TOP_ROLES or c.dtype == "string"][:_MAX_TOP_COLUMNS])
        n_duplicates = n_rows - frame.dropDuplicates().count()
        task = None
        balance = None
        found = list(notes or [])
        if target is not None:
            task, target_notes = target_task(sample[target])
            found += target_notes
            if task != "regression":
                counts = frame.where(F.col(f"`{target}`").isNotNull()).groupBy(
                    F.col(f"`{target}`").cast("string").alias("v")).count().collect()
                total = sum(int(r["count"]) for r in counts) or 1
                balance = {str(r["v"]): round(int(r["count"]) / total, 6) for r in sorted(counts, key=lambda r: str(r["v"]))}
    if len(sample) < n_rows:
        found.append(f"Column roles and leakage suspects were decided on a random sample of {len(sample):,} of "
                     f"{n_rows:,} rows; counts, missing values, distinct counts (approximate, ±2%), statistics, "
                     "top values, duplicates and class balance cover every row.")
    scores = {}
    if target is not None and check_leakage and task is not None:
        scores = leakage_scores(sample, target, task, schema.feature_names)
    suspects = sorted((c for c, s in scores.items() if s.suspect), key=lambda c: -scores[c].score)
    profiles = []
    for i, c in enumerate(schema.columns):
        n_missing = n_rows - int(agg[f"n{i}"])
        stats = ({"mean": agg[f"mean{i}"], "std": agg[f"std{i}"] or 0.0, "minimum": agg[f"min{i}"],
                  "maximum": agg[f"max{i}"]} if c.name in numeric and agg[f"mean{i}"] is not None else {})
        profiles.append(ColumnProfile(name=c.name, dtype=c.dtype, role=c.role, n_missing=n_missing,
                                      missing_pct=100.0 * n_missing / n_rows, n_unique=c.n_unique,
                                      top_values=tops.get(c.name, ()), **stats))
    total_missing = sum(p.n_missing for p in profiles)
    report = Profile(
        n_rows=n_rows, n_columns=len(frame.columns), n_duplicate_rows=n_duplicates,
        missing_pct=100.0 * total_missing / (n_rows * len(frame.columns)),
        columns=tuple(profiles), target=target,
        constant_columns=[c.name for c in schema.columns if c.role == "constant" and c.name != target],
        id_columns=[c.name for c in schema.columns if c.role == "id" and c.name != target],
        high_cardinality=[c.name for c in schema.features if c.role == "categorical"
                          and c.n_unique > HIGH_CARDINALITY and c.n_unique > 0.05 * n_rows],
        class_balance=balance, leakage_suspects=suspects,
        leakage_scores={c: round(s.score, 6) for c, s in scores.items()},
        leakage_rules={c: scores[c].describe() for c in suspects}, notes=found,
    )
    return SparkProfile(report, schema, sample, n_rows)


__all__ = ["SAMPLE_ROWS", "SparkProfile", "profile_spark", "sample_frame"]
