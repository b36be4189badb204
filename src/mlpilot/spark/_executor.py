"""An `Executor` for the ``mlpilot.tune`` seam that runs each item as a Spark task.

The seam's shape: ``map(fn, items) -> list`` (results in the order of ``items``) and
``n_workers`` (how many items run at once). Each item becomes one task of one job
(``fn`` and the items are shipped with cloudpickle, as any PySpark closure), so a
search that hands its trials or folds to this executor gets wider with every
executor the cluster adds. A task that fails fails the job: a `SparkJobError`
naming the error the task raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from mlpilot.spark._session import require_pyspark, spark_job

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

T = TypeVar("T")
R = TypeVar("R")


class SparkExecutor:
    """Run ``fn`` over items on a Spark cluster, one task per item.

    Parameters
    ----------
    spark : SparkSession, optional
        Default: the active session, else one on ``local[*]``.
    n_workers : int, optional
        Items run at once; default the cluster's default parallelism (its cores).

    Examples
    --------
    >>> executor = SparkExecutor()                        # doctest: +SKIP
    >>> executor.map(lambda x: x * x, [1, 2, 3])          # doctest: +SKIP
    [1, 4, 9]
    """

    def __init__(self, spark: SparkSession | None = None, *, n_workers: int | None = None) -> None:
        require_pyspark("SparkExecutor")
        from mlpilot.spark._session import get_session

        self.spark = spark or get_session()
        self.n_workers = int(n_workers or self.spark.sparkContext.defaultParallelism)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``, computed on the cluster, in the order of ``items``."""
        indexed = list(enumerate(items))
        if not indexed:
            return []

        def call(pair: tuple[int, Any]) -> tuple[int, Any]:
            return pair[0], fn(pair[1])

        rdd = self.spark.sparkContext.parallelize(indexed, numSlices=min(len(indexed), max(self.n_workers, 1)))
        with spark_job("ran the executor's tasks"):
            results = rdd.map(call).collect()
        return [value for _, value in sorted(results, key=lambda pair: pair[0])]


__all__ = ["SparkExecutor"]
