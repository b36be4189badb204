from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpilot.exceptions import (
    ColumnNotFoundError,
    DataError,
    DataQualityWarning,
    EmptyDataError,
    InvalidParameterError,
)
from mlpilot.recommend import prepare_interactions, split_interactions
from mlpilot.recommend._split import validation_folds


def test_duplicates_are_aggregated_and_reported() -> None:
    df = pd.DataFrame({"u": [1, 1, 1, 2], "i": ["a", "a", "b", "a"], "r": [2.0, 4.0, 5.0, 3.0], "t": [1, 5, 2, 3]})
    with pytest.warns(DataQualityWarning, match=r"1 duplicated \(user, item\) interaction"):
        data = prepare_interactions(df, user="u", item="i", rating="r", timestamp="t")
    assert data.report["n_duplicates"] == 1
    assert len(data) == 3
    row = np.flatnonzero((data.users[data.user_idx] == 1) & (data.items[data.item_idx] == "a"))[0]
    assert data.rating[row] == 3.0  # ratings averaged
    assert data.timestamp is not None and data.timestamp[row] == 5  # latest time kept


def test_implicit_duplicates_become_weights() -> None:
    df = pd.DataFrame({"u": [1, 1, 1, 2], "i": [10, 10, 10, 11]})
    with pytest.warns(DataQualityWarning, match="counted as weights"):
        data = prepare_interactions(df, user="u", item="i")
    assert sorted(data.rating.tolist()) == [1.0, 3.0]
    assert not data.explicit and data.positive.all()


def test_single_interaction_users_and_items_are_kept_and_reported() -> None:
    df = pd.DataFrame({"u": [1, 1, 1, 2, 3], "i": [1, 2, 3, 1, 1]})
    data = prepare_interactions(df, user="u", item="i")
    assert data.n_users == 3 and data.n_items == 3
    assert data.report["n_single_interaction_users"] == 2
    assert data.report["n_single_interaction_items"] == 2


def test_ids_keep_their_type() -> None:
    df = pd.DataFrame({"u": ["x", "y"], "i": [7, 8]})
    data = prepare_interactions(df, user="u", item="i")
    assert data.users.tolist() == ["x", "y"] and data.items.tolist() == [7, 8]


def test_non_numeric_rating_is_a_clear_error() -> None:
    df = pd.DataFrame({"u": [1, 2], "i": [1, 2], "r": ["good", "4"]})
    with pytest.raises(DataError, match=r"rating column 'r' must be numeric.*1 value\(s\)"):
        prepare_interactions(df, user="u", item="i", rating="r")


def test_empty_after_filtering_is_a_clear_error() -> None:
    df = pd.DataFrame({"u": [1, 2, 3], "i": [1, 2, 3]})
    with pytest.raises(EmptyDataError, match="fewer than 2 interaction"):
        prepare_interactions(df, user="u", item="i", min_user_interactions=2)
    with pytest.raises(EmptyDataError, match="no rows"):
        prepare_interactions(df.iloc[:0], user="u", item="i")
    missing = pd.DataFrame({"u": [None, None], "i": [1, 2]})
    with pytest.raises(EmptyDataError, match="No interactions are left"):
        prepare_interactions(missing, user="u", item="i")


def test_no_positive_rating_is_a_clear_error() -> None:
    df = pd.DataFrame({"u": [1, 2], "i": [1, 2], "r": [1.0, 2.0]})
    with pytest.raises(EmptyDataError, match="threshold 5"):
        prepare_interactions(df, user="u", item="i", rating="r", threshold=5)


def test_missing_column_suggests_names() -> None:
    df = pd.DataFrame({"userId": [1], "movieId": [1]})
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'userId'"):
        prepare_interactions(df, user="userid", item="movieId")


def test_thresholds() -> None:
    df = pd.DataFrame({"u": [1, 1, 2, 2], "i": [1, 2, 1, 2], "r": [5.0, 3.0, 2.0, 1.0]})
    assert prepare_interactions(df, user="u", item="i", rating="r").positive.tolist() == [True, False, False, False]
    by_mean = prepare_interactions(df, user="u", item="i", rating="r", threshold="user_mean")
    assert by_mean.positive.tolist() == [True, False, True, False]
    with pytest.raises(InvalidParameterError, match="'feedback'"):
        prepare_interactions(df, user="u", item="i", feedback="likes")


@pytest.mark.parametrize("method", ["random", "temporal"])
def test_per_user_splits_hold_out_a_fifth_of_each_user(method: str, ml_small: pd.DataFrame) -> None:
    data = prepare_interactions(ml_small, user="userId", item="movieId", rating="rating", timestamp="timestamp")
    train, test = split_interactions(data, method=method, random_state=0)
    assert not (train & test).any() and (train | test).all()
    counts = np.bincount(data.user_idx)
    held = np.bincount(data.user_idx[test], minlength=data.n_users)
    assert np.all(np.abs(held - 0.2 * counts) <= 1)
    if method == "temporal":
        assert data.timestamp is not None
        for u in range(data.n_users):
            mine = data.user_idx == u
            assert data.timestamp[mine & train].max() <= data.timestamp[mine & test].min()
    again = split_interactions(data, method=method, random_state=0)
    assert np.array_equal(again[1], test)


def test_time_cut_and_split_errors(ml_small: pd.DataFrame) -> None:
    data = prepare_interactions(ml_small, user="userId", item="movieId", rating="rating", timestamp="timestamp")
    train, test = split_interactions(data, method="time_cut")
    assert data.timestamp is not None and data.timestamp[train].max() <= data.timestamp[test].min()
    no_time = prepare_interactions(ml_small, user="userId", item="movieId")
    with pytest.raises(DataError, match="needs a timestamp"):
        split_interactions(no_time, method="temporal")
    with pytest.raises(InvalidParameterError, match="test_size"):
        split_interactions(data, test_size=1.5)


@pytest.mark.parametrize("method", ["random", "temporal", "time_cut"])
def test_validation_folds_are_fresh_and_never_peek_ahead(method: str, ml_small: pd.DataFrame) -> None:
    data = prepare_interactions(ml_small, user="userId", item="movieId", rating="rating", timestamp="timestamp")
    folds = validation_folds(data, method=method, n_folds=3, random_state=1)
    assert len(folds) == 3
    first_fit, first_val = split_interactions(data, method=method, random_state=1)
    np.testing.assert_array_equal(folds[0][0], first_fit)
    np.testing.assert_array_equal(folds[0][1], first_val)
    for fit, val in folds:
        assert not (fit & val).any() and fit.sum() > 0 and val.sum() > 0
    assert not np.array_equal(folds[1][1], folds[0][1]) and not np.array_equal(folds[2][1], folds[1][1])
    if method != "random":  # rolling origin: each fold ends earlier, and validates after its training part
        assert folds[2][0].sum() < folds[1][0].sum() < folds[0][0].sum()
        for fit, val in folds[1:]:
            ts = data.timestamp
            if method == "temporal":
                last_fit = pd.Series(ts[fit]).groupby(data.user_idx[fit]).max()
                first_val = pd.Series(ts[val]).groupby(data.user_idx[val]).min()
                assert (first_val >= last_fit.reindex(first_val.index)).all()
            else:
                assert ts[val].min() >= ts[fit].max()
