"""One BLAS thread for the thread that scores a request, through OpenBLAS's own per-thread setting.

OpenBLAS's threads cost more than they save on the products of a request
(tens to hundreds of rows times a few hundred weights), and on a busy machine
far more: its waiting threads spin (a 64-row MLP layer took 5 ms instead of
0.08 ms under load). A count set around each request and restored after it
(threadpoolctl's ``set_num_threads``, the process's count) races between
concurrent requests: one that ends gives the pool back its threads while
another is in its products, and each restore wakes the spinning threads again.

`one_blas_thread` calls ``openblas_set_num_threads_local(1)`` (OpenBLAS
0.3.27 and later) on every OpenBLAS library loaded (numpy's, scipy's) before a
thread scores, and never restores it. Where OpenBLAS keeps the count per
thread, only scoring threads are affected; numpy's and scipy's wheels
(OpenBLAS 0.3.31, pthreads) keep one count for the process, so there a
process that has scored a request does every later product on one thread too,
which is what a server wants. A library without the symbol (older OpenBLAS,
MKL, BLIS) is left as it is.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


@functools.cache
def _local_setters() -> tuple[Callable[[int], int], ...]:
    """``openblas_set_num_threads_local`` of each OpenBLAS loaded at the first scoring call."""
    try:
        from threadpoolctl import threadpool_info

        paths = [info["filepath"] for info in threadpool_info() if info.get("internal_api") == "openblas"]
    except Exception:  # threadpoolctl (scikit-learn's dependency) missing or unable: leave BLAS as it is
        return ()
    setters: list[Callable[[int], int]] = []
    for path in dict.fromkeys(paths):
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):  # OpenBLAS before 0.3.27 has no per-thread count
            logger.debug("no openblas_set_num_threads_local in %s: its thread count is left as it is", path)
            continue
        setter.argtypes = [ctypes.c_int]
        setter.restype = ctypes.c_int
        setters.append(setter)
    return tuple(setters)


def one_blas_thread() -> None:
    """Do this thread's matrix products on one OpenBLAS thread from now on (about 1 µs a call)."""
    for setter in _local_setters():
        setter(1)


__all__ = ["one_blas_thread"]
