"""Where independent fits run: the `Executor` seam, and local threads behind it.

A search hands an executor a list of independent pieces of work (the folds of
one candidate, the families of a recommender search) and gets their results
back in order. `LocalExecutor` runs them on threads of this process; another
backend (a Spark cluster) plugs in by offering the same two members.

Fitting libraries warn and size their thread pools through process-wide
state that threads cannot each save and restore. `quiet` silences the
warnings and caps the pools around one fit; in a thread that
`LocalExecutor` started it does nothing, because the executor has set both
once around all its threads (see `guarded_by_caller`).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

_thread_state = threading.local()


class Executor(Protocol):
    """Runs independent pieces of work; results come back in the order of the items."""

    @property
    def n_workers(self) -> int:
        """How many pieces may run at once (callers size their waves and deadlines on it)."""
        ...

    def map(self, fn: Callable[[_Item], _Result], items: Sequence[_Item]) -> list[_Result]:
        """``[fn(item) for item in items]``, possibly side by side; an exception in one is raised."""
        ...


class LocalExecutor:
    """Threads of this process (the libraries release the GIL while they fit).

    Parameters
    ----------
    n_jobs : int
        Threads at most; 1 runs the items one after the other in the calling thread.

    Examples
    --------
    >>> LocalExecutor(2).map(lambda x: x * x, [1, 2, 3])
    [1, 4, 9]
    """

    def __init__(self, n_jobs: int = 1) -> None:
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise ValueError(f"LocalExecutor needs n_jobs >= 1 threads. Got {n_jobs!r}.")
        self.n_jobs = n_jobs

    @property
    def n_workers(self) -> int:
        return self.n_jobs

    def map(self, fn: Callable[[_Item], _Result], items: Sequence[_Item]) -> list[_Result]:
        """``fn`` over ``items`` on up to `n_jobs` threads, results in ``items`` order.

        Warnings are silenced and BLAS pools capped at one thread here, once
        around the threads, which then leave both alone (`guarded_by_caller`);
        OpenMP's limit is per thread, so each thread sets its own.
        """
        if self.n_jobs == 1:
            return [fn(item) for item in items]
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        def task(item: _Item) -> _Result:
            with guarded_by_caller(), threadpool_limits(limits=1, user_api="openmp"):
                return fn(item)

        with warnings.catch_warnings(), threadpool_limits(limits=1), ThreadPoolExecutor(self.n_jobs) as pool:
            warnings.simplefilter("ignore")
            return list(pool.map(task, items))


@contextmanager
def quiet(n_jobs: int | None = None) -> Iterator[None]:
    """Silence the libraries' warnings and cap BLAS/OpenMP pools at ``n_jobs`` threads.

    Both change process-wide state and are not thread-safe: in a thread entered
    through `guarded_by_caller`, whose caller has set both once around its
    threads, this does nothing.
    """
    if getattr(_thread_state, "guarded_by_caller", False):
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n_jobs is None:
            yield
            return
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=n_jobs):
            yield


@contextmanager
def guarded_by_caller() -> Iterator[None]:
    """In a worker thread: fits and predictions leave warnings and thread pools to the caller.

    The caller wraps its pool of threads in ``warnings.catch_warnings()`` (with
    ``simplefilter("ignore")``) and ``threadpool_limits``; were each thread to do
    so itself, interleaved restores could leave an "ignore" filter behind.
    """
    _thread_state.guarded_by_caller = True
    try:
        yield
    finally:
        _thread_state.guarded_by_caller = False
