"""One BLAS thread for the thread that scores: OpenBLAS's own setting, where the library has it."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from mlpilot.runtime._blas import _local_setters, one_blas_thread


def test_a_scoring_thread_does_its_products_on_one_openblas_thread() -> None:
    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's OpenBLAS is loaded
    if not _local_setters():
        pytest.skip("no OpenBLAS with openblas_set_num_threads_local (0.3.27+) is loaded")
    openblas = ThreadpoolController().select(internal_api="openblas")
    before = [lib.num_threads for lib in openblas.lib_controllers]
    seen: list[Any] = []

    def score() -> None:
        one_blas_thread()
        seen.extend(lib.get_num_threads() for lib in ThreadpoolController().select(internal_api="openblas").lib_controllers)

    try:
        worker = threading.Thread(target=score)
        worker.start()
        worker.join()
        assert seen and set(seen) == {1}
    finally:
        for lib, count in zip(openblas.lib_controllers, before, strict=True):
            lib.set_num_threads(count)
