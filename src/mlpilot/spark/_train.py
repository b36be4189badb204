"""Training from a Spark table: a holdout kept on the cluster, a stratified sample for the driver.

`plan_training` splits the table (a seeded hash of each row, so the split does not
depend on partitioning), snapshots it, and draws from the training part a sample
sized to the driver's memory budget: stratified by class for classifiers
(``sampleBy``, every class kept), uniform for regression; all of the training part
when it fits. mlpilot's engine then searches and fits on that sample as on any
table (`mlpilot.train`). `SparkTraining.evaluate` scores the full holdout on the
cluster (``mapInPandas`` with the fitted model) and computes the metric and its
bootstrap interval from the per-row values; the sample's size and how it was drawn
go on the leaderboard rows, the model card and the notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot._workspace import Workspace
from mlpilot.exceptions import ColumnNotFoundError, EmptyDataError
from mlpilot.spark._session import quiet, require_pyspark, spark_job
from mlpilot.spark._snapshot import snapshot_spark
from mlpilot.spark._sources import describe

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from mlpilot.data import Dataset, Snapshot

#: Bytes of driver memory the engine needs per byte of the sample's pandas frame
#: (the frame, its preprocessed copies, the folds and the learners' own matrices).
_WORKING_FACTOR = 12
#: Per-row values of at most this many holdout rows are collected for the metric and its interval.
MAX_EVAL_ROWS = 2_000_000
_MIN_CLASS_ROWS = 50


def driver_budget_bytes() -> int:
    """The default memory budget for the driver's sample: a quarter of the memory available now, at most 2 GiB."""
    import psutil

    return int(min(psutil.virtual_memory().available // 4, 2 << 30))


@dataclass
class SparkTraining:
    """A Spark table prepared for mlpilot's engine: the driver sample, the cluster holdout, the snapshot."""

    target: str
    sample: pd.DataFrame
    holdout: DataFrame
    n_rows: int
    n_train: int
    method: str
    snapshot: Snapshot | None
    source: str
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def note(self) -> str:
        return (f"Spark engine: the search and the final fit used {self.method}; the full holdout is "
                f"{self.n_rows - self.n_train:,} rows kept on the cluster.")

    def dataset(self, local: Dataset) -> Dataset:
        """``local`` (the sample's dataset) with the snapshot and description of the whole Spark table."""
        return replace(local, snapshot=self.snapshot, source=self.source)

    def evaluate(self, outcome: Any) -> None:
        """Score the full holdout on the cluster; record metric, interval, sample and method on ``outcome``."""
        from mlpilot.tasks import get_metric
        from mlpilot.tune import bootstrap_ci, metric_value

        y, pred, n_scored = _holdout_values(self.holdout, outcome, self.target)
        metric = get_metric(outcome.metric, outcome.task)
        info: dict[str, Any] = {"rows": self.n_rows, "train_rows": self.n_train, "sample_rows": len(self.sample),
                                "sample": self.method, "holdout_rows": n_scored}
        if len(y):
            n_boot = int(max(50, min(1000, 20_000_000 // len(y))))
            value = metric_value(metric, y, pred)
            low, high = bootstrap_ci(y, pred, metric, n_boot=n_boot, random_state=0)
            info.update({f"holdout_full_{metric.name}": value, "holdout_full_ci": [low, high],
                         "holdout_evaluated_rows": len(y)})
            outcome.evaluation.metrics[f"holdout_full_{metric.name}"] = value
            outcome.evaluation.metrics[f"holdout_full_{metric.name}_ci"] = [low, high]
            outcome.evaluation.metrics["holdout_full_rows"] = len(y)
        self.evaluation = info
        outcome.notes.append(self.note + (
            f" On {len(y):,} of them (scored in Spark) {metric.name} = {info[f'holdout_full_{metric.name}']:.4f} "
            f"(95% CI {info['holdout_full_ci'][0]:.4f}–{info['holdout_full_ci'][1]:.4f})." if len(y) else ""))
        outcome.card.setdefault("data", {})["spark"] = info
        for row in outcome.evaluation.leaderboard:
            row["train_rows"], row["sample"] = len(self.sample), self.method


def _holdout_values(holdout: DataFrame, outcome: Any, target: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Encoded targets and predictions (probabilities for classifiers) of the holdout, scored in Spark."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    model, features, encoding, task = outcome.model, list(outcome.features), outcome.encoding, outcome.task
    k = len(encoding.classes)
    index = {str(c): i for i, c in enumerate(encoding.classes)}
    fields = [T.StructField("y", T.DoubleType())] + [
        T.StructField(f"p{j}", T.DoubleType()) for j in range(k if task != "regression" else 1)]
    labelled = holdout.where(F.col(f"`{target}`").isNotNull())
    if task != "regression":
        labelled = labelled.where(F.col(f"`{target}`").cast("string").isin(list(index)))

    def score(batches: Any) -> Any:
        for batch in batches:
            X = batch[features]
            if task == "regression":
                out = {"y": pd.to_numeric(batch[target]).astype(float), "p0": model.predict(X)}
            else:
                proba = model.predict_proba(X)
                out = {"y": batch[target].astype(str).map(index).astype(float)}
                out.update({f"p{j}": proba[:, j] for j in range(k)})
            yield pd.DataFrame(out)

    with spark_job("scored the holdout"), quiet():
        n_rows = labelled.count()
        if n_rows > MAX_EVAL_ROWS:
            labelled = labelled.sample(fraction=MAX_EVAL_ROWS / n_rows, seed=0)
        values = labelled.select(*[F.col(f"`{c}`") for c in [*features, target]]).mapInPandas(
            score, T.StructType(fields)).toPandas()
    y = values["y"].to_numpy()
    pred = values[[f"p{j}" for j in range(k)]].to_numpy() if task != "regression" else values["p0"].to_numpy()
    return (y.astype(np.int64) if task != "regression" else y), pred, n_rows


def _sample_rows(frame: DataFrame, n_rows: int, budget_bytes: int) -> int:
    """How many rows of ``frame`` fit the driver budget, from the pandas size of a small sample."""
    from mlpilot.spark._profile import sample_frame

    probe = sample_frame(frame, n_rows, 2_000, 0)
    per_row = max(1.0, float(probe.memory_usage(deep=True).sum()) / max(len(probe), 1))
    return max(1_000, int(budget_bytes / (per_row * _WORKING_FACTOR)))


def plan_training(frame: DataFrame, target: str, *, workspace: Workspace | None, holdout: float = 0.2,
                  random_state: int = 0, max_rows: int | None = None, budget_bytes: int | None = None,
                  source: Any = None) -> SparkTraining:
    """Split ``frame`` into a cluster holdout and a driver sample; snapshot it when ``workspace`` is given.

    Parameters
    ----------
    max_rows : int, optional
        Most rows in the driver sample (default: what ``budget_bytes`` holds).
    budget_bytes : int, optional
        Driver memory for the search (default `driver_budget_bytes`).

    Raises
    ------
    ColumnNotFoundError, EmptyDataError, SparkJobError
    """
    require_pyspark()
    from pyspark.sql import functions as F

    if target not in frame.columns:
        raise ColumnNotFoundError(target, list(frame.columns))
    description = describe(source if source is not None else frame)
    snapshot = snapshot_spark(frame, workspace, source=description) if workspace is not None else None
    # a seeded hash of the row's content: the same rows split alike however they are partitioned
    share = (F.abs(F.xxhash64(F.lit(random_state), *[F.col(f"`{c}`") for c in frame.columns])) % 1_000_000) / 1e6
    marked = frame.withColumn("__mlpilot_u__", share)
    train = marked.where(F.col("__mlpilot_u__") >= holdout).drop("__mlpilot_u__")
    hold = marked.where(F.col("__mlpilot_u__") < holdout).drop("__mlpilot_u__")
    with spark_job("sampled the table for the driver"):
        u, y = F.col("__mlpilot_u__"), F.col(f"`{target}`")
        sizes = marked.agg(F.count(F.when(u >= holdout, 1)).alias("train"), F.count(F.when(u < holdout, 1)).alias("hold"),
                           F.approx_count_distinct(F.when(u >= holdout, y)).alias("distinct")).first()
        assert sizes is not None  # a global aggregate always has one row
        n_train, n_rows = int(sizes["train"]), int(sizes["train"]) + int(sizes["hold"])
        if n_train == 0:
            raise EmptyDataError("The Spark table has no rows to train on.")
        counts = ({r[0]: int(r[1]) for r in train.groupBy(y).count().collect()}
                  if int(sizes["distinct"]) <= 100 else {})
        limit = max_rows or _sample_rows(train, n_train, budget_bytes or driver_budget_bytes())
        classes = [c for c in counts if c is not None]
        with quiet():
            if n_train <= limit:
                sample, method = train.toPandas(), f"all {n_train:,} training rows (they fit the driver's memory budget)"
            elif 1 < len(classes) < 0.05 * n_train and not _looks_continuous(classes):
                fraction = limit / n_train
                fractions = {c: min(1.0, max(fraction, _MIN_CLASS_ROWS / counts[c])) for c in classes}
                sample = train.sampleBy(f"`{target}`", fractions, seed=random_state).toPandas()
                method = (f"a sample of {len(sample):,} of {n_train:,} training rows, stratified by {target!r} "
                          f"(Spark sampleBy, seed {random_state}; each class at least {_MIN_CLASS_ROWS} rows), "
                          "sized to the driver's memory budget")
            else:
                sample = train.sample(fraction=min(1.0, limit / n_train), seed=random_state).toPandas()
                method = (f"a uniform sample of {len(sample):,} of {n_train:,} training rows (Spark sample, seed "
                          f"{random_state}), sized to the driver's memory budget")
    return SparkTraining(target, sample, hold, n_rows, n_train, method, snapshot, description)


def _looks_continuous(values: list[Any]) -> bool:
    return any(isinstance(v, float) and not float(v).is_integer() for v in values)


__all__ = ["MAX_EVAL_ROWS", "SparkTraining", "driver_budget_bytes", "plan_training"]
