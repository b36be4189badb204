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
