from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mlpilot.features as features_pkg
from mlpilot.exceptions import InvalidParameterError
from mlpilot.features import TabularPreprocessor, column_roles, find_leaks
from mlpilot.features._preprocess import _as_str, _category_codes
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


def _reference_codes(series: pd.Series, categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Codes by the definition: each value's ``str`` looked up one by one (None when missing)."""
    raw = _as_str(series)
    index = {c: i for i, c in enumerate(categories)}
    codes = np.array([-1 if v is None else index.get(v, -1) for v in raw], dtype=np.int64)
    return codes, np.array([v is None for v in raw])


@pytest.mark.parametrize(
    "series",
    [
        pd.Series(["a", "b", None, "zz", "a", np.nan], dtype=object),
        pd.Series(["a", "b", None, "zz"], dtype="string"),
        pd.Series(["a", "b", None, "a"], dtype="category"),
        pd.Series([1, 2, 3, 2, 7]),
        pd.Series([1.0, np.nan, 2.5, 1.0]),
        pd.Series([True, False, True]),
        pd.Series([1, "1", "a", None, 2.0], dtype=object),
        pd.Series([None, None], dtype=object),
        pd.Series([], dtype=object),
    ],
    ids=["object", "string", "category", "int", "float", "bool", "mixed", "all-missing", "empty"],
)
def test_category_codes_match_the_per_value_definition(series: pd.Series) -> None:
    categories = ["1", "1.0", "2", "2.5", "False", "True", "a", "b"]
    codes, missing = _category_codes(series, categories)
    expected_codes, expected_missing = _reference_codes(series, categories)
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(missing, expected_missing)


@pytest.mark.parametrize("encoding", ["ordinal", "onehot"])
def test_transform_encodes_categories_by_their_string(encoding: str) -> None:
    train = pd.DataFrame({"c": ["1", "2", "2", "x", None] * 4, "n": np.arange(20.0)})
    new = pd.DataFrame({"c": pd.Series([1, "2", None, "unseen", 2], dtype=object), "n": [0.0, 1.0, np.nan, 3.0, np.inf]})
    pre = TabularPreprocessor(encoding=encoding, roles={"c": "categorical", "n": "numeric"}).fit(train)
    out = pre.transform(new)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    if encoding == "ordinal":  # categories ["1", "2", "x"]; unseen -> 3, missing -> NaN
        np.testing.assert_array_equal(out[:, 0], [0.0, 1.0, np.nan, 3.0, 1.0])
        np.testing.assert_array_equal(out[:, 1], [0.0, 1.0, np.nan, 3.0, np.nan])
    else:
        np.testing.assert_array_equal(out[:, 0:3], [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 1, 0]])
        assert pre.feature_names_out_[0:3] == ["c=1", "c=2", "c=x"]
