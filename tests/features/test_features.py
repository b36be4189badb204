from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mlpilot.features as features_pkg
from mlpilot.exceptions import InvalidParameterError
from mlpilot.features import TabularPreprocessor, column_roles, find_leaks
from mlpilot.registry._artifacts import dumps, loads


def test_exports() -> None:
    assert sorted(features_pkg.__all__) == sorted(n for n in dir(features_pkg) if not n.startswith("_") and n != "annotations")


@pytest.fixture
def mixed() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame(
        {
            "num": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "cat": rng.choice(["a", "b", "c"], n),
            "flag": rng.choice([True, False], n),
            "when": pd.date_range("2024-01-01", periods=n, freq="D"),
            "text": [f"free text message number {i} about {'spam offer' if i % 2 else 'meeting notes'}" for i in range(n)],
            "empty": [None] * n,
        }
    )


def test_column_roles(mixed: pd.DataFrame) -> None:
    roles = column_roles(mixed)
    assert roles == {"num": "numeric", "cat": "categorical", "flag": "categorical", "when": "datetime", "text": "text"}


@pytest.mark.parametrize("encoding", ["ordinal", "onehot"])
def test_handles_missing_unseen_and_absent_columns(mixed: pd.DataFrame, encoding: str) -> None:
    pre = TabularPreprocessor(encoding=encoding).fit(mixed)
    new = mixed.head(5).copy()
    new.loc[0, "cat"] = "never-seen"
    new.loc[1, "num"] = np.nan
    new = new.drop(columns=["flag"]).assign(extra=1)
    out = pre.transform(new)
    dense = out.toarray() if sp.issparse(out) else out
    assert dense.shape == (5, pre.n_features_out_)
    assert len(pre.get_feature_names_out()) == pre.n_features_out_
    if encoding == "onehot":
        assert np.isfinite(dense).all()
        assert sp.issparse(out)  # text makes a sparse matrix
    else:
        assert pre.categorical_indices_ == [1, 2]


def test_high_cardinality_is_capped() -> None:
    df = pd.DataFrame({"c": [f"v{i % 500}" for i in range(2000)], "x": np.random.default_rng(0).normal(size=2000)})
    pre = TabularPreprocessor(encoding="onehot", max_categories=20).fit(df)
    assert pre.n_features_out_ == 21
    ordinal = TabularPreprocessor(encoding="ordinal").fit(df).transform(df)
    assert np.nanmax(ordinal[:, 0]) <= 254


def test_bad_encoding_and_skops_round_trip(mixed: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameterError, match="'ordinal' or 'onehot'"):
        TabularPreprocessor(encoding="bogus").fit(mixed)
    pre = TabularPreprocessor(encoding="ordinal").fit(mixed)
    data, fmt = dumps(pre)
    assert fmt == "skops"
    np.testing.assert_allclose(loads(data, fmt).transform(mixed), pre.transform(mixed))


def test_find_leaks() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(["no", "yes"], 300)
    df = pd.DataFrame({"y": y, "copy": np.where(y == "yes", "Y", "N"), "x": rng.normal(size=300)})
    assert find_leaks(df, "y", "binary", ["copy", "x"]) == ["copy"]
    reg = pd.DataFrame({"y": np.arange(100.0), "double": np.arange(100.0) * 2, "noise": rng.normal(size=100)})
    assert find_leaks(reg, "y", "regression", ["double", "noise"]) == ["double"]
