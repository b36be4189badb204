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

    #: Items run in the cluster's tasks, not on this machine's cores (a search hands them over on any table).
    remote = True

    def __init__(self, spark: SparkSession | None = None, *, n_workers: int | None = None) -> None:
        require_pyspark("SparkExecutor")
        from mlpilot.spark._session import get_session

        self.spark: SparkSession | None = spark or get_session()
        self.n_workers = int(n_workers or self.spark.sparkContext.defaultParallelism)

    def __getstate__(self) -> dict[str, Any]:
        return {"n_workers": self.n_workers, "spark": None}  # the session stays on the driver

    def describe(self) -> dict[str, Any]:
        """The decision record: which executor, how many items at once, on which master."""
        master = self.spark.sparkContext.master if self.spark is not None else None
        return {"executor": "spark", "n_workers": self.n_workers, "master": master}

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``, computed on the cluster, in the order of ``items``."""
        indexed = list(enumerate(items))
        if not indexed:
            return []

        def call(pair: tuple[int, Any]) -> tuple[int, Any]:
            return pair[0], fn(pair[1])

        if self.spark is None:
            raise RuntimeError("A SparkExecutor unpickled in a Spark task cannot start Spark jobs.")
        rdd = self.spark.sparkContext.parallelize(indexed, numSlices=min(len(indexed), max(self.n_workers, 1)))
        with spark_job("ran the executor's tasks"):
            results = rdd.map(call).collect()
        return [value for _, value in sorted(results, key=lambda pair: pair[0])]


def driver_only(fn: Callable[..., None] | None) -> Callable[..., None] | None:
    """``fn`` as a callable that pickles to a no-op: a callback that Spark tasks may carry but never call."""
    return None if fn is None else _DriverOnly(fn)


class _DriverOnly:
    def __init__(self, fn: Callable[..., None] | None) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if self.fn is not None:
            self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[type, tuple[None]]:
        return _DriverOnly, (None,)


__all__ = ["SparkExecutor", "driver_only"]
