"""Drift statistics on the real mlc_churn table: injected drift is found, resampled windows are not flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpilot.data import infer_schema
from mlpilot.monitor._drift import (
    Profile,
    build_profile,
    compare,
    drifted_importance,
    summarize,
    summarize_chunks,
)


@pytest.fixture(scope="module")
def reference(churn: pd.DataFrame) -> pd.DataFrame:
    return churn.drop(columns=["rownames", "churn"])


@pytest.fixture(scope="module")
def roles(churn: pd.DataFrame) -> dict[str, str]:
    schema = infer_schema(churn.drop(columns=["rownames"]), target="churn")
    return {c.name: c.role for c in schema.features}


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame, roles: dict[str, str]) -> Profile:
    return build_profile(reference, roles)


def _window(reference: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return reference.sample(n, replace=True, random_state=seed).reset_index(drop=True)


def _flagged(profile: Profile, window: pd.DataFrame, seed: int = 0) -> set[tuple[str, str]]:
    return {(e.name, e.aspect) for e in compare(profile, summarize(window, profile), random_state=seed) if e.drift}


@pytest.mark.parametrize("size", [300, 3000])
def test_false_alarm_rate_on_resampled_windows_is_bounded(reference: pd.DataFrame, profile: Profile, size: int) -> None:
    # 15 seeded no-drift windows per size: a window with any flagged feature is a false alarm
    alarms = [bool(_flagged(profile, _window(reference, size, seed), seed)) for seed in range(15)]
    assert np.mean(alarms) <= 0.1


def test_a_shifted_numeric_feature_is_flagged_with_its_effect(reference: pd.DataFrame, profile: Profile) -> None:
    window = _window(reference, 2000, 1)
    sd = reference["total_day_minutes"].std()
    window["total_day_minutes"] += 0.5 * sd
    entries = {(e.name, e.aspect): e for e in compare(profile, summarize(window, profile))}
    shifted = entries[("total_day_minutes", "distribution")]
    assert shifted.drift and shifted.statistic == "wasserstein"
    # the effect is in reference standard deviations, and its interval covers the injected shift
    assert shifted.interval is not None and shifted.interval[0] <= 0.5 <= shifted.interval[1] + 0.05
    assert shifted.p_adjusted is not None and shifted.p_adjusted < 0.05
    assert {k for k, e in entries.items() if e.drift} == {("total_day_minutes", "distribution")}


def test_a_changed_category_mix_is_flagged(reference: pd.DataFrame, profile: Profile) -> None:
    window = _window(reference, 2000, 2)
    plan = window["international_plan"].to_numpy(copy=True)
    rng = np.random.default_rng(0)
    plan[rng.random(len(plan)) < 0.3] = "yes"  # about 9% "yes" in the reference, about 36% here
    window["international_plan"] = plan
    assert ("international_plan", "distribution") in _flagged(profile, window)


def test_rising_missingness_is_flagged_and_a_dropped_column_is_all_missing(
    reference: pd.DataFrame, profile: Profile
) -> None:
    window = _window(reference, 2000, 3)
    window.loc[window.sample(frac=0.2, random_state=0).index, "account_length"] = np.nan
    window = window.drop(columns=["state"])
    entries = {(e.name, e.aspect): e for e in compare(profile, summarize(window, profile))}
    assert entries[("account_length", "missing")].drift
    assert entries[("account_length", "missing")].effect == pytest.approx(0.2, abs=0.001)
    assert entries[("state", "missing")].drift and entries[("state", "missing")].effect == 1.0
    assert entries[("state", "distribution")].note.startswith("not tested")


def test_a_small_shift_in_a_huge_window_is_not_flagged(reference: pd.DataFrame, roles: dict[str, str]) -> None:
    # 200k rows on each side make a 0.03 sd shift highly significant; its effect is below the practical minimum
    columns = ["total_eve_minutes", "total_day_calls"]
    big = build_profile(_window(reference[columns], 200_000, 40), {c: roles[c] for c in columns})
    window = _window(reference[columns], 200_000, 4)
    window["total_eve_minutes"] += 0.03 * reference["total_eve_minutes"].std()
    entries = {(e.name, e.aspect): e for e in compare(big, summarize(window, big))}
    entry = entries[("total_eve_minutes", "distribution")]
    assert entry.p_value is not None and entry.p_value < 1e-6
    assert not entry.drift and entry.threshold is not None and entry.effect is not None
    assert entry.effect < entry.threshold


def test_chunked_summaries_equal_the_whole_window(reference: pd.DataFrame, profile: Profile) -> None:
    window = _window(reference, 3000, 5)
    whole = summarize(window, profile)
    merged = summarize_chunks((window.iloc[i:i + 700] for i in range(0, 3000, 700)), profile)
    assert merged.n_rows == whole.n_rows == 3000
    for name, counts in whole.columns.items():
        assert counts.missing == merged.columns[name].missing
        for aspect, values in counts.aspects.items():
            np.testing.assert_array_equal(values, merged.columns[name].aspects[aspect])
    assert [e.to_dict() for e in compare(profile, whole)] == [e.to_dict() for e in compare(profile, merged)]


def test_text_length_and_vocabulary_and_datetime_calendar() -> None:
    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "fast", "slow", "cheap", "price", "late", "early"])
    ref = pd.DataFrame({
        "review": [" ".join(rng.choice(words[:6], rng.integers(3, 12))) for _ in range(3000)],
        "at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 60 * 24, 3000), unit="h"),
    })
    profile = build_profile(ref, {"review": "text", "at": "datetime"})
    live = pd.DataFrame({
        # longer reviews, with words the reference never had
        "review": [" ".join(rng.choice(words, rng.integers(10, 25))) for _ in range(1000)],
        # only weekends, at night
        "at": pd.Timestamp("2024-06-01") + pd.to_timedelta(rng.integers(0, 2, 1000) + 7 * rng.integers(0, 8, 1000),
                                                           unit="D") + pd.Timedelta(hours=23),
    })
    flagged = _flagged(profile, live)
    assert {("review", "length"), ("review", "vocabulary"), ("at", "weekday"), ("at", "hour")} <= flagged
    same = _flagged(profile, ref.sample(1000, random_state=1))
    assert not same


def test_model_at_risk_weighs_features_by_importance(reference: pd.DataFrame, profile: Profile) -> None:
    window = _window(reference, 2000, 6)
    window["total_night_calls"] += reference["total_night_calls"].std()
    entries = compare(profile, summarize(window, profile))
    assert drifted_importance(entries, {"total_night_calls": 0.01, "total_day_minutes": 0.99}) == pytest.approx(0.01)
    assert drifted_importance(entries, {"total_night_calls": 0.9, "total_day_minutes": 0.1}) == pytest.approx(0.9)
    assert drifted_importance(entries, None) == pytest.approx(1 / 19)


def test_same_counts_give_the_same_entries(reference: pd.DataFrame, profile: Profile) -> None:
    summary = summarize(_window(reference, 1000, 7), profile)
    assert [e.to_dict() for e in compare(profile, summary, random_state=3)] == [
        e.to_dict() for e in compare(profile, summary, random_state=3)]
