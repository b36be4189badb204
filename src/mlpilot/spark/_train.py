"""Training from a Spark table: a holdout kept on the cluster, a stratified sample for the driver.

`plan_training` splits the table (a seeded hash of each row, so the split does not
depend on partitioning), snapshots it, and draws from the training part a sample
sized to the driver's memory budget: stratified by class for classifiers
(``sampleBy``, every class kept), uniform for regression; all of the training part
when it fits. mlpilot's engine then searches and fits on that sample as on any
table (`mlpilot.train`), its candidate fits handed to a `SparkExecutor` (one Spark
task per fold). `SparkTraining.finish` refits the best boosted candidate on every
training row with ``xgboost.spark`` when the training part did not fit the driver
(`mlpilot.spark._fit`), then scores the full holdout on the cluster (``mapInPandas``
with the fitted models) and computes the metric, its bootstrap interval and the paired
test of the full fit against the sample fit from the per-row values. The sample's size
and how it was drawn, the executor and the final-fit decision with its evidence go on
the leaderboard rows, the model card, the notes and a ``spark_training`` event.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot._workspace import Workspace
from mlpilot.exceptions import ColumnNotFoundError, EmptyDataError, InvalidParameterError
from mlpilot.spark._labels import class_codes, of_known_class
from mlpilot.spark._session import quiet, require_pyspark, spark_job
from mlpilot.spark._snapshot import snapshot_spark
from mlpilot.spark._sources import describe

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from mlpilot.data import Dataset, Snapshot
    from mlpilot.tune import Executor

#: Bytes of driver memory the engine needs per byte of the sample's pandas frame (the frame, its
#: preprocessed copies, the folds, the learners' own matrices and the search's work items pickled for
#: Spark tasks), measured with bench/spark/run.py: about 29x above the driver's base with the search on
#: the driver (3.4 GB over 91 MB at 1e6 rows), about 45x with it on Spark tasks (2.6 GB over 41 MB).
_WORKING_FACTOR = 48
#: What the driver holds besides the sample (Python, the libraries, py4j, Arrow buffers), from the bench.
_DRIVER_BASE = 800 << 20
#: The driver's default memory limit: the sample is sized so that the driver stays under it.
_DRIVER_LIMIT = 2 << 30
#: Environment variable that overrides the driver memory limit ("1500m", "4g", bytes).
DRIVER_MEMORY_ENV = "MLPILOT_SPARK_DRIVER_MEMORY"
#: Per-row values of at most this many holdout rows are collected for the metric and its interval.
MAX_EVAL_ROWS = 2_000_000
_MIN_CLASS_ROWS = 50
#: The fewest rows the driver sample has, whatever the budget (the search needs rows to compare on).
_MIN_SAMPLE_ROWS = 500


#: The driver memory limit the caller set for this context (``mlpilot train --driver-memory``), over the env.
_DRIVER_MEMORY: ContextVar[str | None] = ContextVar("mlpilot_spark_driver_memory", default=None)


@contextlib.contextmanager
def driver_memory(value: str | None) -> Iterator[None]:
    """Within the block, the driver memory limit is ``value`` (as ``MLPILOT_SPARK_DRIVER_MEMORY``; None: unchanged).

    Raises
    ------
    InvalidParameterError
        When ``value`` is not a size, before the block runs.
    """
    if value is None:
        yield
        return
    parse_bytes(value, what="--driver-memory")
    token = _DRIVER_MEMORY.set(value)
    try:
        yield
    finally:
        _DRIVER_MEMORY.reset(token)


def driver_budget_bytes() -> int:
    """Driver memory for the sample's working set: the limit (`driver_memory`, else
    ``MLPILOT_SPARK_DRIVER_MEMORY``, else the smaller of 2 GiB and half the memory
    available now) less the driver's fixed cost.

    Raises
    ------
    InvalidParameterError
        When the limit is not a size (``"1500m"``, ``"4g"``, bytes).
    """
    import psutil

    given = _DRIVER_MEMORY.get()
    text = given if given is not None else os.environ.get(DRIVER_MEMORY_ENV, "").strip()
    what = "--driver-memory" if given is not None else DRIVER_MEMORY_ENV
    limit = parse_bytes(text, what=what) if text else int(min(psutil.virtual_memory().available // 2, _DRIVER_LIMIT))
    return max(limit - _DRIVER_BASE, 1 << 20)


def parse_bytes(text: str, *, what: str = DRIVER_MEMORY_ENV) -> int:
    """``"1500m"``, ``"4g"``, ``"512k"`` or a number of bytes, as Spark's ``--driver-memory`` takes them.

    ``what`` names the setting in the error (the environment variable or the CLI option).

    Examples
    --------
    >>> parse_bytes("1500m"), parse_bytes("2g"), parse_bytes("4096")
    (1572864000, 2147483648, 4096)
    """
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        shown = f"{what} {text!r}" if what.startswith("--") else f"{what}={text!r}"
        raise InvalidParameterError(
            f"{shown} is not a memory size; write it as Spark's --driver-memory does: "
            "'1500m', '4g' or a number of bytes.")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " "))


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
    train: DataFrame | None = None
    random_state: int = 0
    #: The decisions taken on the cluster's behalf, with their evidence (the ``spark_training`` event).
    decisions: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def fits_driver(self) -> bool:
        """Whether the whole training part is the driver's sample."""
        return len(self.sample) >= self.n_train

    @property
    def note(self) -> str:
        fit = self.decisions.get("final_fit", {})
        used = (f"the search used {self.method}; the final model is {fit['learner']} on all {self.n_train:,} "
                "training rows" if fit.get("where") == "cluster" else f"the search and the final fit used {self.method}")
        executor = self.decisions.get("executor", {})
        spread = (f" The candidate fits ran as Spark tasks ({executor.get('n_workers')} at once)."
                  if executor.get("executor") == "spark" else "")
        return (f"Spark engine: {used}.{spread} The full holdout is "
                f"{self.n_rows - self.n_train:,} rows kept on the cluster.")

    def dataset(self, local: Dataset) -> Dataset:
        """``local`` (the sample's dataset) with the snapshot and description of the whole Spark table."""
        return replace(local, snapshot=self.snapshot, source=self.source)

    def search_executor(self, given: Executor | None) -> Executor:
        """The search's executor: ``given``, else a `SparkExecutor` on the table's session; the choice recorded."""
        from mlpilot.spark._executor import SparkExecutor

        executor = given if given is not None else SparkExecutor(self.holdout.sparkSession)
        describe = getattr(executor, "describe", None)
        self.decisions["executor"] = describe() if callable(describe) else {
            "executor": type(executor).__name__, "n_workers": executor.n_workers}
        return executor

    def finish(self, outcome: Any) -> None:
        """Refit on the cluster when the training part did not fit the driver, then `evaluate` the full holdout."""
        sample_model = None
        if not self.fits_driver and self.train is not None:
            from mlpilot.spark._fit import fit_on_cluster

            n_workers = int(self.decisions.get("executor", {}).get("n_workers") or
                            self.holdout.sparkSession.sparkContext.defaultParallelism)
            sample_model = outcome.model
            outcome.model, record = fit_on_cluster(self.train, self.sample, outcome, target=self.target,
                                                   n_workers=n_workers, random_state=self.random_state)
            self.decisions["final_fit"] = {"where": "cluster", **record, "reason": (
                f"the {self.n_train:,} training rows do not fit the driver's memory budget "
                f"({self.decisions.get('budget', {}).get('sample_rows_limit', 0):,} rows)")}
        else:
            self.decisions["final_fit"] = {"where": "driver", "reason": (
                "the training part fits the driver's memory budget" if self.fits_driver else
                "no Spark table of the training part to refit on")}
        self.evaluate(outcome, baseline=sample_model)

    def evaluate(self, outcome: Any, baseline: Any = None) -> None:
        """Score the full holdout on the cluster; record metric, interval, sample and method on ``outcome``.

        ``baseline`` (the sample-fit model, when the final model was refitted on the
        cluster) is scored on the same rows and compared with a paired bootstrap.
        """
        from mlpilot.tasks import get_metric
        from mlpilot.tune import bootstrap_ci, metric_value, paired_bootstrap

        models = [outcome.model] if baseline is None else [outcome.model, baseline]
        y, preds, n_scored = _holdout_values(self.holdout, outcome, self.target, models)
        metric = get_metric(outcome.metric, outcome.task)
        info: dict[str, Any] = {"rows": self.n_rows, "train_rows": self.n_train, "sample_rows": len(self.sample),
                                "sample": self.method, "holdout_rows": n_scored, **self.decisions}
        extra = ""
        if len(y):
            n_boot = int(max(50, min(1000, 20_000_000 // len(y))))
            chosen = 0
            if baseline is not None:
                test = paired_bootstrap(y, preds[0], preds[1], metric, n_boot=max(50, n_boot // 2), random_state=0)
                before = metric_value(metric, y, preds[1])
                info["full_fit_vs_sample_fit"] = {f"sample_fit_{metric.name}": before, **test.to_dict()}
                extra = (f" The sample-fit ensemble scored {before:.4f} on the same rows: the full fit is "
                         f"{'significantly ' if test.significant else 'not significantly '}"
                         f"{'better' if test.difference > 0 else 'worse'} (paired bootstrap, p = {test.p_value:.3g})")
                if test.significant and test.difference < 0:  # more rows made it worse: keep what the search chose
                    chosen, outcome.model = 1, baseline
                    self.decisions["final_fit"] = info["final_fit"] = {
                        **info["final_fit"], "where": "driver", "kept": "sample_fit", "reason": (
                            f"the full fit on the cluster ({info['final_fit'].get('learner')}) scored significantly "
                            f"worse on the full holdout than the ensemble fitted on the driver sample "
                            f"({metric.name} {before:.4f} against {metric_value(metric, y, preds[0]):.4f}, p = "
                            f"{test.p_value:.3g}): the sample fit is kept")}
                    extra += "; the sample fit is kept."
                else:
                    outcome.evaluation.metrics[f"holdout_full_sample_fit_{metric.name}"] = before
                    outcome.evaluation.tests["sample_fit"] = {  # as the search's tests: champion minus the other
                        "against": "the ensemble fitted on the driver sample", "holdout": test.to_dict()}
                    fit_threshold = info["final_fit"].get("threshold")
                    if fit_threshold is not None and isinstance(outcome.card.get("threshold"), dict):
                        # the registered model's threshold: chosen again for the cluster fit's probabilities
                        outcome.card["threshold"] = {**outcome.card["threshold"], "value": fit_threshold["value"],
                                                     "cluster_fit": fit_threshold}
                        extra += (f"; its decision threshold is {fit_threshold['value']:.4g}, chosen for "
                                  f"{fit_threshold['rule']} on {fit_threshold['chosen_on'][4:]} (the sample fit's: "
                                  f"{fit_threshold['sample_fit_threshold']:.4g})")
                    extra += "."
            value = metric_value(metric, y, preds[chosen])
            low, high = bootstrap_ci(y, preds[chosen], metric, n_boot=n_boot, random_state=0)
            info.update({f"holdout_full_{metric.name}": value, "holdout_full_ci": [low, high],
                         "holdout_evaluated_rows": len(y)})
            outcome.evaluation.metrics[f"holdout_full_{metric.name}"] = value
            outcome.evaluation.metrics[f"holdout_full_{metric.name}_ci"] = [low, high]
            outcome.evaluation.metrics["holdout_full_rows"] = len(y)
            extra = (f" On {len(y):,} of them (scored in Spark) {metric.name} = {value:.4f} "
                     f"(95% CI {low:.4f}–{high:.4f}).") + extra
        self.evaluation = info
        outcome.notes.append(self.note + extra)
        outcome.card.setdefault("data", {})["spark"] = info
        executor = self.decisions.get("executor", {})
        where = self.decisions.get("final_fit", {}).get("where", "driver")
        for row in outcome.evaluation.leaderboard:
            row["train_rows"], row["sample"] = len(self.sample), self.method
            row["executor"] = f"{executor.get('executor', 'local')} ({executor.get('n_workers', 1)} workers)"
            row["final_fit"] = where


def _holdout_values(holdout: DataFrame, outcome: Any, target: str,
                    models: list[Any]) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Encoded targets and each model's predictions (probabilities for classifiers) of the holdout, scored in Spark."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    features, encoding, task = list(outcome.features), outcome.encoding, outcome.task
    k = len(encoding.classes)
    width = k if task != "regression" else 1
    fields = [T.StructField("y", T.DoubleType())] + [
        T.StructField(f"p{m}_{j}", T.DoubleType()) for m in range(len(models)) for j in range(width)]
    labelled = holdout.where(F.col(f"`{target}`").isNotNull()) if task == "regression" else (
        of_known_class(holdout, target, encoding.classes))

    def score(batches: Any) -> Any:
        for batch in batches:
            X = batch[features]
            if task == "regression":
                out = {"y": pd.to_numeric(batch[target]).astype(float)}
                out.update({f"p{m}_0": model.predict(X) for m, model in enumerate(models)})
            else:
                out = {"y": class_codes(batch[target], encoding.classes)}
                for m, model in enumerate(models):
                    proba = model.predict_proba(X)
                    out.update({f"p{m}_{j}": proba[:, j] for j in range(k)})
            yield pd.DataFrame(out)

    with spark_job("scored the holdout"), quiet():
        n_rows = labelled.count()
        if n_rows > MAX_EVAL_ROWS:
            labelled = labelled.sample(fraction=MAX_EVAL_ROWS / n_rows, seed=0)
        values = labelled.select(*[F.col(f"`{c}`") for c in [*features, target]]).mapInPandas(
            score, T.StructType(fields)).toPandas()
    y = values["y"].to_numpy()
    preds = [values[[f"p{m}_{j}" for j in range(k)]].to_numpy() if task != "regression" else
             values[f"p{m}_0"].to_numpy() for m in range(len(models))]
    return (y.astype(np.int64) if task != "regression" else y), preds, n_rows


def _sample_rows(frame: DataFrame, n_rows: int, budget_bytes: int) -> tuple[int, float]:
    """How many rows of ``frame`` fit the driver budget, and the pandas bytes per row of a small sample."""
    from mlpilot.spark._profile import sample_frame

    probe = sample_frame(frame, n_rows, 2_000, 0)
    per_row = max(1.0, float(probe.memory_usage(deep=True).sum()) / max(len(probe), 1))
    return max(_MIN_SAMPLE_ROWS, int(budget_bytes / (per_row * _WORKING_FACTOR))), per_row


def plan_training(frame: DataFrame, target: str, *, workspace: Workspace | None, holdout: float = 0.2,
                  random_state: int = 0, max_rows: int | None = None, budget_bytes: int | None = None,
                  source: Any = None, task: str | None = None) -> SparkTraining:
    """Split ``frame`` into a cluster holdout and a driver sample; snapshot it when ``workspace`` is given.

    Parameters
    ----------
    max_rows : int, optional
        Most rows in the driver sample (default: what ``budget_bytes`` holds).
    budget_bytes : int, optional
        Driver memory for the search (default `driver_budget_bytes`).
    task : str, optional
        The task asked for: a regression target's sample is uniform, never stratified by its values
        (a count of a few distinct values would otherwise have its rare values oversampled).

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
        budget = budget_bytes or driver_budget_bytes()
        limit, per_row = _sample_rows(train, n_train, budget)
        limit = min(limit, max_rows or limit)
        evidence = {"train_rows": n_train, "bytes_per_row": round(per_row, 1), "working_factor": _WORKING_FACTOR,
                    "estimated_bytes": int(n_train * per_row * _WORKING_FACTOR), "budget_bytes": budget,
                    "sample_rows_limit": limit, "fits_driver": n_train <= limit,
                    "driver_memory_env": os.environ.get(DRIVER_MEMORY_ENV),
                    "driver_memory_option": _DRIVER_MEMORY.get()}
        classes = [c for c in counts if c is not None]
        with quiet():
            if n_train <= limit:
                sample, method = train.toPandas(), f"all {n_train:,} training rows (they fit the driver's memory budget)"
            elif task != "regression" and 1 < len(classes) < 0.05 * n_train and not _looks_continuous(classes):
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
    return SparkTraining(target, sample, hold, n_rows, n_train, method, snapshot, description, train=train,
                         random_state=random_state, decisions={"budget": evidence})


def _looks_continuous(values: list[Any]) -> bool:
    return any(isinstance(v, float) and not float(v).is_integer() for v in values)


__all__ = ["DRIVER_MEMORY_ENV", "MAX_EVAL_ROWS", "SparkTraining", "driver_budget_bytes", "driver_memory",
           "parse_bytes", "plan_training"]
