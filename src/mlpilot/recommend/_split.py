"""Holdout splits for recommendation: per-user random, per-user temporal, global time cut."""

from __future__ import annotations

import numpy as np

from mlpilot.exceptions import DataError, InvalidParameterError
from mlpilot.recommend._data import Interactions

SPLITS = ("random", "temporal", "time_cut")


def split_interactions(
    data: Interactions,
    *,
    method: str = "random",
    test_size: float = 0.2,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test) over the rows of ``data``.

    ``"random"`` holds out ``test_size`` of each user's interactions at random;
    ``"temporal"`` holds out the latest ``test_size`` of each user's history;
    ``"time_cut"`` holds out everything after the global ``1 - test_size``
    quantile of time. Per-user splits keep at least one training interaction
    per user and hold out ``round(test_size * n)`` rows (users with a single
    interaction stay whole in training).

    Examples
    --------
    >>> import pandas as pd
    >>> from mlpilot.recommend import prepare_interactions
    >>> df = pd.DataFrame({"u": [1] * 5 + [2] * 5, "i": list(range(5)) * 2})
    >>> train, test = split_interactions(prepare_interactions(df, user="u", item="i"))
    >>> int(train.sum()), int(test.sum())
    (8, 2)
    """
    if method not in SPLITS:
        raise InvalidParameterError(
            f"The split method must be one of {SPLITS}. Got {method!r} instead."
        )
    if not 0.0 < test_size < 1.0:
        raise InvalidParameterError(
            f"The 'test_size' parameter must be a float in (0, 1). Got {test_size!r} instead."
        )
    n = len(data)
    rng = np.random.default_rng(random_state)
    if method == "random":
        key = rng.random(n)
    else:
        if data.timestamp is None:
            raise DataError(
                f"The {method!r} split needs a timestamp column; pass timestamp=... "
                "or use the 'random' split."
            )
        if method == "time_cut":
            cut = np.quantile(data.timestamp, 1.0 - test_size)
            test = data.timestamp > cut
            return ~test, test
        # ties in time are broken at random so the split does not depend on row order
        key = data.timestamp + rng.random(n) * 1e-3
    order = np.lexsort((key, data.user_idx))
    users_sorted = data.user_idx[order]
    counts = np.bincount(data.user_idx, minlength=data.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(n) - starts[users_sorted]
    n_test = np.where(counts > 1, np.floor(test_size * counts + 0.5), 0).astype(np.int64)
    n_test = np.minimum(n_test, counts - 1)
    # random: first positions after shuffling; temporal: the latest positions
    if method == "random":
        is_test_sorted = position < n_test[users_sorted]
    else:
        is_test_sorted = position >= (counts - n_test)[users_sorted]
    test = np.zeros(n, dtype=bool)
    test[order] = is_test_sorted
    return ~test, test


def validation_folds(
    data: Interactions,
    *,
    method: str = "random",
    n_folds: int = 3,
    test_size: float = 0.2,
    random_state: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validation folds (fit mask, validation mask) carved from a training set.

    Fold 0 is ``split_interactions(data, method=method, random_state=random_state)``.
    Later folds are fresh validation sets for choosing between models that were
    tuned on fold 0: ``"random"`` draws a new random holdout per fold (seed
    ``random_state + j``); ``"temporal"`` and ``"time_cut"`` move the origin back
    (rolling-origin evaluation): fold ``j`` first drops the latest ``j * test_size / 2``
    of each user's history (or of the time range) and then holds out the latest
    ``test_size`` of what is left, so its model never sees the future.

    Examples
    --------
    >>> import pandas as pd
    >>> from mlpilot.recommend import prepare_interactions
    >>> df = pd.DataFrame({"u": [1] * 10, "i": range(10), "t": range(10)})
    >>> folds = validation_folds(prepare_interactions(df, user="u", item="i", timestamp="t"), method="temporal")
    >>> [np.flatnonzero(val).tolist() for _, val in folds]
    [[8, 9], [7, 8], [6, 7]]
    """
    folds = []
    for fold in range(n_folds):
        if method == "random" or fold == 0:
            folds.append(split_interactions(data, method=method, test_size=test_size, random_state=random_state + fold))
            continue
        keep, _ = split_interactions(data, method=method, test_size=min(fold * test_size / 2, 0.9), random_state=random_state)
        rows = np.flatnonzero(keep)
        fit_sub, val_sub = split_interactions(
            data.subset(keep), method=method, test_size=test_size, random_state=random_state + fold
        )
        fit, val = np.zeros(len(data), dtype=bool), np.zeros(len(data), dtype=bool)
        fit[rows[fit_sub]], val[rows[val_sub]] = True, True
        folds.append((fit, val))
    return folds
