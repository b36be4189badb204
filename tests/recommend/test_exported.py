from __future__ import annotations

import numpy as np
import pandas as pd

import mlpilot
import mlpilot.recommend as rec
from mlpilot.recommend import prepare_interactions
from mlpilot.recommend._inputs import input_matrix, positive_weight, recency_weights, scoring_matrix


def test_all_matches_public_names() -> None:
    public = {n for n in dir(rec) if not n.startswith("_")} - {"annotations"}
    modules = {n for n in public if type(getattr(rec, n)).__name__ == "module"}
    assert set(rec.__all__) == public - modules
    assert mlpilot.recommend is rec and callable(mlpilot.recommend.train)


def test_recency_weights_favour_the_latest_interactions() -> None:
    df = pd.DataFrame({"u": [1, 1, 1, 1, 2], "i": [1, 2, 3, 4, 1], "t": [40, 10, 30, 20, 5], "r": [5.0, 4, 2, 4, 4]})
    data = prepare_interactions(df, user="u", item="i", rating="r", timestamp="t")
    w = recency_weights(data, 0.5)
    assert data.timestamp is not None
    by_time = dict(zip(data.timestamp.tolist(), w.tolist(), strict=True))
    assert by_time[40] == 1.0 and by_time[5] == 1.0
    assert by_time[40] > by_time[30] > by_time[20] > by_time[10]
    assert np.allclose(recency_weights(data, None), 1.0)
    binary = input_matrix(data, "binary")
    assert binary.nnz == 4  # the rating of 2 is not a positive
    soft = input_matrix(data, "soft")
    assert soft.nnz == 5 and np.isclose(soft.data.min(), 0.3)
    rated = input_matrix(data, "rating")
    assert rated.data.max() == 1.0 and 0 < rated.data.min() < 0.5
    squared = input_matrix(data, "rating_squared")
    np.testing.assert_allclose(squared.toarray(), rated.toarray() ** 2)
    for weighting in ("binary", "soft", "rating", "rating_squared"):  # the positives weigh the most
        X = input_matrix(data, weighting).toarray()
        liked = X[data.user_idx[data.positive], data.item_idx[data.positive]]
        threshold = positive_weight(data, weighting)
        lighter = X[(X > 0) & np.less(X, threshold)]
        assert liked.min() == threshold and lighter.size == int(weighting != "binary")
    decayed = scoring_matrix(data, "binary", 0.5)
    assert decayed.nnz == binary.nnz and decayed.sum() < binary.sum()
