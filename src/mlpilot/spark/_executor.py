"""An `Executor` for the ``mlpilot.tune`` seam that runs each item as a Spark task.

The seam's shape: ``map(fn, items) -> list`` (results in the order of ``items``) and
``n_workers`` (how many items run at once). Each item becomes one task of one job
(``fn`` and the items are shipped with cloudpickle, as any PySpark closure), so a
search that hands its trials or folds to this executor gets wider with every
executor the cluster adds. A task that fails fails the job: a `SparkJobError`
naming the error the task raised.

The large arrays ``fn`` refers to (a search's prepared fold matrices, which every
candidate of an encoding uses) are Spark broadcast variables, made once per array
and reused by every later ``map``: each candidate's work item then pickles to a few
kilobytes on the driver instead of a copy of the folds, and each executor's Python
worker loads an array once, however many candidates read it.
"""

from __future__ import annotations

import contextlib
import io
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from mlpilot.spark._session import require_pyspark, spark_job

if TYPE_CHECKING:
    from pyspark.core.broadcast import Broadcast
    from pyspark.sql import SparkSession

T = TypeVar("T")
R = TypeVar("R")
#: Arrays of at least this many bytes travel as broadcast variables (made once per array), smaller ones inline.
BROADCAST_BYTES = 1 << 20


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
        #: The arrays broadcast so far, by ``id``: (a weak reference to the array, its broadcast variable).
        self._shared: dict[int, tuple[weakref.ref[np.ndarray], Broadcast[np.ndarray]]] = {}
        #: Bytes pickled on the driver for the last ``map``'s function (its arrays excluded).
        self.last_payload_bytes = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"n_workers": self.n_workers, "spark": None, "_shared": {}, "last_payload_bytes": 0}  # driver only

    @property
    def broadcasts(self) -> int:
        """How many arrays this executor has broadcast (each once, however many ``map`` calls use it)."""
        return sum(1 for ref, _ in self._shared.values() if ref() is not None)

    def _broadcast(self, array: np.ndarray) -> Broadcast[np.ndarray]:
        """The broadcast variable of ``array``: made on first use, dropped from the cluster when it is freed."""
        known = self._shared.get(id(array))
        if known is not None and known[0]() is array:
            return known[1]
        assert self.spark is not None
        variable = self.spark.sparkContext.broadcast(array)
        key = id(array)
        self._shared[key] = (weakref.ref(array), variable)
        weakref.finalize(array, _forget, self._shared, key, variable).atexit = False  # Spark stops first at exit
        return variable

    def _pickle(self, fn: Callable[..., Any]) -> bytes:
        """``fn`` pickled with cloudpickle, each large array in it replaced by its broadcast variable."""
        from pyspark import cloudpickle

        executor = self

        class _Pickler(cloudpickle.Pickler):  # type: ignore[misc,name-defined]
            def reducer_override(self, obj: Any) -> Any:
                if type(obj) is np.ndarray and obj.nbytes >= BROADCAST_BYTES:
                    return _value_of, (executor._broadcast(obj),)
                return super().reducer_override(obj)

        buffer = io.BytesIO()
        _Pickler(buffer, protocol=5).dump(fn)
        return buffer.getvalue()

    def describe(self) -> dict[str, Any]:
        """The decision record: which executor, how many items at once, on which master."""
        master = self.spark.sparkContext.master if self.spark is not None else None
        return {"executor": "spark", "n_workers": self.n_workers, "master": master}

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``, computed on the cluster, in the order of ``items``."""
        indexed = list(enumerate(items))
        if not indexed:
            return []

        if self.spark is None:
            raise RuntimeError("A SparkExecutor unpickled in a Spark task cannot start Spark jobs.")
        # pickled here, in the thread that submits the job: the broadcast variables it refers to are
        # registered with this job (PySpark collects them per thread when it pickles the job's function)
        payload = self._pickle(fn)
        self.last_payload_bytes = len(payload)

        def call(pair: tuple[int, Any]) -> tuple[int, Any]:
            import pickle

            return pair[0], pickle.loads(payload)(pair[1])

        rdd = self.spark.sparkContext.parallelize(indexed, numSlices=min(len(indexed), max(self.n_workers, 1)))
        with spark_job("ran the executor's tasks"):
            results = rdd.map(call).collect()
        return [value for _, value in sorted(results, key=lambda pair: pair[0])]


def _value_of(variable: Broadcast[np.ndarray]) -> np.ndarray:
    """A broadcast array in a Spark task (loaded once per Python worker)."""
    return variable.value


def _forget(shared: dict[int, Any], key: int, variable: Broadcast[np.ndarray]) -> None:
    """The driver's array was freed: forget its broadcast and free the executors' copies."""
    shared.pop(key, None)
    with contextlib.suppress(Exception):  # the session may be stopped already: nothing left to free
        variable.destroy(blocking=False)


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
