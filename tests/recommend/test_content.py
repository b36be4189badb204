"""Item content from metadata: column choice, id alignment, neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpilot.exceptions import DataError, DataQualityWarning
from mlpilot.recommend._content import align_item_ids, item_content, nearest


def _catalogue(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    genres = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]
    return pd.DataFrame({
        "id": np.arange(n),
        "name": [f"{rng.choice(['red', 'blue', 'green'])} {rng.choice(['house', 'river', 'moon'])} {i}" for i in range(n)],
        "tags": ["|".join(sorted(set(rng.choice(genres, 2)))) for _ in range(n)],
        "studio": rng.choice(["north", "south", "east"], n),
        "price": rng.normal(10, 3, n),
        "code": np.arange(1000, 1000 + n),
        "constant": 1,
        "sku": [f"sku{i:04d}" for i in range(n)],
        "released": pd.date_range("2000-01-01", periods=n, freq="D"),
        "flag": rng.random(n) > 0.5,
    })


def test_columns_are_chosen_by_what_they_hold() -> None:
    content = item_content(_catalogue(), "id")
    assert content is not None
    assert content.columns == {
        "name": "name", "tags": "multi", "studio": "category", "price": "numeric", "flag": "category",
    }
    assert content.matrix.dtype == np.float32 and content.matrix.format == "csr"
    norms = np.sqrt(np.asarray(content.matrix.multiply(content.matrix).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    assert content.items.tolist() == list(range(60))


def test_multi_value_genres_are_split_into_values() -> None:
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "genres": ["Action|Comedy", "Comedy", "Drama|Horror", "Drama"]})
    content = item_content(frame, "id")
    assert content is not None and content.columns == {"genres": "multi"}
    sims = (content.matrix @ content.matrix.T).toarray()
    assert sims[0, 1] > 0 and sims[2, 3] > 0 and sims[0, 2] == 0 and sims[1, 3] == 0


def test_columns_varying_within_an_item_are_left_out(movielens: pd.DataFrame) -> None:
    """The interaction table itself as metadata: users, ratings and times describe no item."""
    content = item_content(movielens[movielens["userId"] <= 30], "movieId")
    assert content is not None and content.columns == {"title": "name", "year": "numeric", "genres": "multi"}


def test_no_usable_column_warns_and_gives_titles_only() -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "sku": ["a1", "b2", "c3"], "same": ["x", "x", "x"]})
    with pytest.warns(DataQualityWarning, match="no column usable for content similarity"):
        assert item_content(frame, "id") is None


@pytest.mark.parametrize(
    ("ids", "reference", "expected"),
    [
        (["1", "2", "10"], np.array([1, 2, 3]), [1, 2, 10]),
        ([1.0, 2.0, None], np.array([1, 2, 3]), [1, 2]),
        ([1, 2, 7], np.array(["1", "2", "x"], dtype=object), ["1", "2", "7"]),
        ([1.5, 2.0], np.array([1.5, 2.0]), [1.5, 2.0]),
    ],
)
def test_item_ids_take_the_type_of_the_interaction_ids(ids: list, reference: np.ndarray, expected: list) -> None:
    frame = pd.DataFrame({"item": ids, "title": ["a", "b", "c"][: len(ids)]})
    out = align_item_ids(frame, "item", reference)
    assert out["item"].tolist() == expected
    assert all(type(a) is type(b) for a, b in zip(out["item"].tolist(), expected, strict=True)) or reference.dtype.kind in "iuf"


@pytest.mark.parametrize(
    ("ids", "reference", "message"),
    [
        (["1", "two"], np.array([1, 2]), r"must hold numbers.*1 id\(s\) are not numbers, e.g. 'two'"),
        ([1.5, 2.0], np.array([1, 2]), "holds fractional numbers"),
        ([7, 8], np.array([1, 2]), "None of the 2 item ids of the item metadata"),
        (["a", "b"], np.array(["c", "d"], dtype=object), "None of the 2 item ids"),
    ],
)
def test_item_ids_that_do_not_match_are_a_clear_error(ids: list, reference: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        align_item_ids(pd.DataFrame({"item": ids}), "item", reference)


def test_nearest_keeps_the_most_similar_positive_rows() -> None:
    import scipy.sparse as sp

    rows = sp.csr_matrix(np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32))
    top = nearest(rows, rows, 2, exclude=np.arange(4))
    assert top.shape == (4, 4) and top[0].indices.tolist() == [1]  # row 2 and 3 share nothing with row 0
    assert set(top[1].indices.tolist()) == {0, 3} and top[2].nnz == 0
    np.testing.assert_allclose(top[1, 0], 0.8)
