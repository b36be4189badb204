"""Schema inference on real tables, and validation returning every problem at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpilot.data import Schema, infer_schema, validate
from mlpilot.exceptions import ColumnNotFoundError, EmptyDataError, TargetError


def test_roles_on_real_churn(churn: pd.DataFrame) -> None:
    schema = infer_schema(churn, target="churn")
    roles = {c.name: c.role for c in schema.columns}
    assert roles["rownames"] == "id"
    assert roles["state"] == "categorical"
    assert roles["total_day_minutes"] == "numeric"
    assert "rownames" not in schema.feature_names
    assert "churn" not in schema.feature_names
    assert schema["churn"].categories == ("no", "yes")
    assert len(schema.feature_names) == 19


def test_constant_text_datetime_boolean_roles() -> None:
    rng = np.random.default_rng(0)
    n = 200
    words = ["free", "win", "call", "now", "meeting", "lunch", "tomorrow", "prize", "urgent", "hello"]
    frame = pd.DataFrame(
        {
            "const": ["same"] * n,
            "message": [" ".join(rng.choice(words, 8)) + f" {i}" for i in range(n)],
            "when": pd.date_range("2024-01-01", periods=n, freq="D").astype(str),
            "flag": rng.random(n) > 0.5,
            "customer_id": [f"C{i:05d}" for i in range(n)],
        }
    )
    roles = {c.name: c.role for c in infer_schema(frame).columns}
    assert roles == {
        "const": "constant",
        "message": "text",
        "when": "datetime",
        "flag": "boolean",
        "customer_id": "id",
    }


def test_schema_round_trips_through_json(churn: pd.DataFrame) -> None:
    schema = infer_schema(churn, target="churn")
    assert Schema.from_json(schema.to_json()) == schema


def test_target_errors() -> None:
    frame = pd.DataFrame({"churned": [0, 1] * 10, "x": range(20), "empty": [None] * 20, "one": [1] * 20})
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'churned'"):
        infer_schema(frame, target="churn")
    with pytest.raises(TargetError, match="all 20 values are missing"):
        infer_schema(frame, target="empty")
    with pytest.raises(TargetError, match="single value"):
        infer_schema(frame, target="one")
    with pytest.raises(EmptyDataError, match="no rows"):
        infer_schema(frame.iloc[:0])


def test_validate_lists_every_problem(churn: pd.DataFrame) -> None:
    schema = infer_schema(churn, target="churn")
    bad = churn.drop(columns=["total_day_minutes", "churn"]).head(10).copy()
    bad["account_length"] = bad["account_length"].astype(object)
    bad.loc[3, "account_length"] = "lots"
    bad.loc[5, "account_length"] = "n/a?"
    bad.loc[2, "state"] = "Atlantis"
    bad["total_eve_calls"] = np.nan
    bad["surprise"] = 1
    result = validate(bad, schema)
    kinds = sorted(p.kind for p in result.problems)
    assert kinds == ["all_null", "extra_column", "missing_column", "unseen_category", "wrong_type"]
    wrong = next(p for p in result.problems if p.kind == "wrong_type")
    assert wrong.column == "account_length"
    assert wrong.rows == (3, 5)
    assert "'lots'" in wrong.message and "row(s) 3, 5" in wrong.message
    assert not result.ok
    assert {p.kind for p in result.warnings} == {"unseen_category", "extra_column"}


def test_validate_all_null_column(churn: pd.DataFrame) -> None:
    schema = infer_schema(churn, target="churn")
    frame = churn.head(5).copy()
    frame["total_day_calls"] = None
    result = validate(frame, schema)
    assert [p.kind for p in result.errors] == ["all_null"]


def test_validate_infinity_is_wrong_type(churn: pd.DataFrame) -> None:
    schema = infer_schema(churn, target="churn")
    frame = churn.head(4).copy()
    frame.loc[1, "total_day_minutes"] = np.inf
    errors = validate(frame, schema).errors
    assert [(p.column, p.rows) for p in errors] == [("total_day_minutes", (1,))]
