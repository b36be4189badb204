"""``monitor --engine spark``: the live window read on the cluster into the local monitor's mergeable counts.

Each partition of the Spark table runs the local monitor's own window
(`mlpilot.monitor._report._Window`: rows binned on the reference's edges and
levels by `mlpilot.monitor._drift.summarize`, the quality flags, the rows per
period, a bottom-k hash sample of probabilities, the labelled rows) over its
Arrow batches; only those counts come back to the driver, where they are merged
(sums, minima, unions, a bottom-k) and handed to the same drift statistics and
report. Nothing is reimplemented, so the report is the local one on the same rows.
"""

from __future__ import annotations

import json
import pickle
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlpilot.exceptions import DataError
from mlpilot.spark._session import quiet, require_pyspark, spark_job

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from mlpilot.monitor import MonitorReport
    from mlpilot.monitor._report import _Window

#: Columns a prediction log has to have for the window to be read (the inputs come beside them).
_REQUIRED = ("timestamp", "version", "request_id", "row", "prediction", "probabilities", "warnings", "source")
_STATE = "__mlpilot_window__"


def _empty_like(window: _Window) -> _Window:
    """A window with ``window``'s reference, bins and filters, and no rows yet."""
    from mlpilot.monitor._report import _Window

    return _Window(window.ref, window.profile, window.prediction_profile, window.version, window.start,
                   window.end, window.step, window.labels, window.max_kept)


def _counts(window: _Window) -> bytes:
    """The counted part of a partition's window (the reference stays on the driver)."""
    from dataclasses import fields

    keep = {f.name: getattr(window, f.name) for f in fields(window)
            if f.name not in ("ref", "profile", "prediction_profile", "labels")}
    return pickle.dumps(keep, protocol=pickle.HIGHEST_PROTOCOL)


def _as_log_frame(batch: pd.DataFrame, timezone: str, json_columns: tuple[str, ...]) -> pd.DataFrame:
    """A Spark batch as the prediction log's reader gives it: UTC times, JSON columns decoded."""
    raw = batch["timestamp"]
    # the log writes nanosecond times, which Spark reads as longs (`read_log` sets nanosAsLong)
    stamps = pd.to_datetime(raw, unit="ns", utc=True) if pd.api.types.is_integer_dtype(raw) else pd.to_datetime(raw)
    batch["timestamp"] = (stamps.dt.tz_localize(timezone) if stamps.dt.tz is None else stamps).dt.tz_convert("UTC")
    for name in json_columns:
        batch[name] = pd.Series([json.loads(v) if isinstance(v, str) else v for v in batch[name]],
                                index=batch.index, dtype=object)
    return batch


def _check_log(frame: DataFrame) -> None:
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"The live window lacks the prediction log's column(s) {', '.join(missing)}; it has "
            f"{', '.join(frame.columns[:20])}. Point --engine spark at logged predictions (the Parquet parts "
            "under the workspace's predictions/<name>/, or a table with the same columns)."
        )


def fill_window(window: _Window, frame: DataFrame) -> None:
    """Count ``frame`` (a prediction log as a Spark table) into ``window``, one partial window per partition."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    _check_log(frame)
    spark = frame.sparkSession
    timezone = str(spark.conf.get("spark.sql.session.timeZone"))
    nested = (T.StructType, T.MapType, T.ArrayType)
    json_columns = tuple(f.name for f in frame.schema.fields
                         if isinstance(f.dataType, nested) or f.name == "probabilities")
    columns = [F.to_json(F.col(f"`{f.name}`")).alias(f.name) if isinstance(f.dataType, nested)
               else F.col(f"`{f.name}`") for f in frame.schema.fields]
    template = spark.sparkContext.broadcast(pickle.dumps(_empty_like(window), protocol=pickle.HIGHEST_PROTOCOL))

    def count_partition(batches: Any) -> Any:
        part: _Window = pickle.loads(template.value)
        for batch in batches:
            part.add(_as_log_frame(batch, timezone, json_columns))
        if part.kept:
            part._shrink()
        yield pd.DataFrame({_STATE: [_counts(part)]})

    with spark_job("counted the live window"), quiet():
        states = frame.select(*columns).mapInPandas(count_partition, f"{_STATE} binary").collect()
    for row in states:
        part = _empty_like(window)
        for name, value in pickle.loads(row[_STATE]).items():
            setattr(part, name, value)
        window.merge(part)


def read_log(source: str, *, spark: Any, table: str | None = None, query: str | None = None) -> DataFrame:
    """`read_spark` for a live window: the log's nanosecond Parquet times are read as longs, which Spark allows."""
    from mlpilot.spark._sources import read_spark

    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    return read_spark(source, spark=spark, table=table, query=query)


def monitor_spark(name: str, frame: DataFrame, **options: Any) -> MonitorReport:
    """`mlpilot.monitor.monitor` on a live window read as a Spark table (e.g. a Parquet folder of logged predictions).

    ``options`` are `monitor`'s (``workspace``, ``since``, ``until``, ``window``,
    ``version``, ``labels``, ...). The reference, the bins and the statistics
    are the local monitor's; the counting runs on the cluster.

    Raises
    ------
    DataError
        When the table lacks the prediction log's columns (checked before any job).
    """
    require_pyspark()
    from mlpilot.monitor import monitor

    _check_log(frame)
    return monitor(name, fill=lambda window: fill_window(window, frame), **options)


__all__ = ["fill_window", "monitor_spark", "read_log"]
