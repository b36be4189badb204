"""``seed=`` is a deprecated alias of ``random_state=`` on the public search and promotion values."""

from __future__ import annotations

import numpy as np
import pytest

from mlpilot.automl._promote import PromotionPolicy
from mlpilot.search import SearchConfig, make_folds


def test_seed_still_sets_random_state_and_warns() -> None:
    with pytest.warns(FutureWarning, match="'seed' parameter of SearchConfig is deprecated"):
        assert SearchConfig(seed=4) == SearchConfig(random_state=4)
    with pytest.warns(FutureWarning, match="'seed' parameter of PromotionPolicy is deprecated"):
        assert PromotionPolicy(seed=5).random_state == 5
    y = np.array([0, 1] * 10)
    with pytest.warns(FutureWarning, match="'seed' parameter of make_folds is deprecated"):
        old = make_folds(y, "binary", 3, seed=7)
    new = make_folds(y, "binary", 3, random_state=7)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(old, new, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(new, make_folds(y, "binary", 3, 8), strict=True))
