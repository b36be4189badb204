"""Cold start: items known only from metadata, through a model trained on movielens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

import mlpilot
from mlpilot.exceptions import DataError, DataQualityWarning
from mlpilot.recommend import RecommenderModel
from mlpilot.registry import Registry, Workspace

Split = tuple[pd.DataFrame, pd.DataFrame, list[int]]


def _genres(meta: pd.DataFrame) -> dict[int, set[str]]:
    return {int(i): set(g.split("|")) for i, g in zip(meta["movieId"], meta["genres"], strict=True)}


def _words(meta: pd.DataFrame) -> dict[int, set[str]]:
    return {int(i): set(str(t).lower().replace(",", " ").split()) for i, t in zip(meta["movieId"], meta["title"], strict=True)}


def test_metadata_only_items_are_cold(cold_trained: tuple[RecommenderModel, Path], cold_split: Split) -> None:
    model, _ = cold_trained
    _, meta, cold = cold_split
    assert sorted(model.cold_items_.tolist()) == sorted(cold) and model.cold_items_.dtype == model.items_.dtype
    assert all(model.is_cold_item(c) and model.item_index(c) is None for c in cold)
    assert not model.is_cold_item(int(model.items_[0])) and not model.is_cold_item(-1)
    assert model.content_ is not None and model.content_.shape[0] == model.n_items + len(cold)
    assert model.content_.dtype == np.float32
    assert model.content_columns_ == {"title": "name", "year": "numeric", "genres": "multi"}
    assert model.data_report_["n_cold_items"] == len(cold)
    assert model.title(cold[0]) == meta.set_index("movieId").loc[cold[0], "title"]


def test_similar_for_a_cold_item_shares_its_genres(cold_trained: tuple[RecommenderModel, Path], cold_split: Split) -> None:
    model, _ = cold_trained
    _, meta, cold = cold_split
    genres, words = _genres(meta), _words(meta)
    sims = model.similar(cold, k=5)
    assert list(sims.columns) == ["item", "similar_item", "score", "rank"]
    assert sims.attrs["cold_items"] == cold and sims.attrs["unknown_items"] == []
    assert sims["item"].drop_duplicates().tolist() == cold  # in the order asked
    assert not (sims["item"] == sims["similar_item"]).any()
    assert ((sims["score"] > 0) & (sims["score"] <= 1 + 1e-6)).all()
    related = [bool(genres[i] & genres[j] or (words[i] & words[j]) - {"the", "a"})
               for i, j in zip(sims["item"], sims["similar_item"], strict=True)]
    assert np.mean(related) > 0.95
    # a sequel finds its franchise through the title words
    toy = model.similar(3114, k=5)["similar_item"].tolist()
    assert toy[0] == 1  # Toy Story, for Toy Story 2


def test_similar_mixes_warm_cold_and_unknown_items(cold_trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = cold_trained
    warm = int(model.items_[np.argmax(model.popularity_)])
    sims = model.similar([3114, warm, "nope"], k=4)
    assert sims["item"].drop_duplicates().tolist() == [3114, warm]
    assert sims.attrs["cold_items"] == [3114] and sims.attrs["unknown_items"] == ["nope"]
    # warm items keep the model's own similarity
    alone = model.similar([warm], k=4)
    assert alone.attrs["cold_items"] == []
    pd.testing.assert_frame_equal(sims[sims["item"] == warm].reset_index(drop=True), alone)


def test_fold_in_maps_a_cold_item_to_its_content_neighbours(
    cold_trained: tuple[RecommenderModel, Path], cold_split: Split
) -> None:
    model, _ = cold_trained
    _, meta, cold = cold_split
    genres = _genres(meta)
    popular = model.recommend_from_history([], k=10)
    assert popular.attrs["fallback"] is True
    overlap_history, overlap_popular = [], []
    for c in cold:
        recs = model.recommend_from_history([c, "no-such-item"], k=10)
        assert recs.attrs["cold_items"] == [c] and recs.attrs["unknown_items"] == ["no-such-item"]
        assert recs.attrs["fallback"] is False and c not in set(recs["item"])
        assert list(recs.columns) == ["item", "score", "rank"] and len(recs) == 10
        overlap_history.append(np.mean([bool(genres[int(i)] & genres[c]) for i in recs["item"]]))
        overlap_popular.append(np.mean([bool(genres[int(i)] & genres[c]) for i in popular["item"]]))
    # paired over the cold items: content fold-in shares genres with the cold item more often
    # than the popularity fallback does (a test, not a fixed margin on one deterministic number)
    gain = np.asarray(overlap_history) - np.asarray(overlap_popular)
    assert gain.mean() > 0.05
    assert wilcoxon(overlap_history, overlap_popular, alternative="greater").pvalue < 0.05
    # The Matrix Reloaded stands for The Matrix and its like: what fans of those get
    matrix = model.recommend_from_history([6365], k=10)
    assert not matrix["item"].isin(popular["item"]).all()
    kept = model.recommend_from_history([6365], k=10, exclude_seen=False)
    assert len(kept) == 10


def test_cold_items_are_recommended_without_swamping(cold_trained: tuple[RecommenderModel, Path], cold_split: Split) -> None:
    model, _ = cold_trained
    interactions, _, _ = cold_split
    users = sorted(interactions["userId"].unique().tolist())
    recs = model.recommend(users, k=10)
    is_cold = recs["item"].map(model.is_cold_item)
    assert is_cold.any() and is_cold.mean() < 0.25  # 30 of ~3,000 items are cold
    assert list(recs.columns) == ["user", "item", "score", "rank"]
    assert (recs.groupby("user")["score"].apply(lambda s: (np.diff(s) <= 0).all())).all()
    # a history of the warm items most like a cold one brings the cold one
    for c in (3114, 6365):
        row = model.cold_neighbors_[np.flatnonzero(model.cold_items_ == c)[0]]
        history = model.items_[row.indices[np.argsort(-row.data)]][:5].tolist()
        recs_c = model.recommend_from_history(history, k=20)
        assert c in set(recs_c["item"]) and not set(history) & set(recs_c["item"])
    # unknown users get the most-popular warm items only
    fallback = model.recommend(["ghost"], k=10)
    assert not fallback["item"].map(model.is_cold_item).any()
    # the weight turns it off
    model.cold_weight = 0.0
    try:
        assert not model.recommend(users[:20], k=10)["item"].map(model.is_cold_item).any()
    finally:
        model.cold_weight = 0.5


def test_cold_start_survives_the_registry(cold_trained: tuple[RecommenderModel, Path]) -> None:
    model, ws = cold_trained
    registry = Registry(Workspace.open(ws))
    try:
        mv = registry.get_version("films@champion")
        assert mv.info["data_report"]["content_columns"]["genres"] == "multi"
        loaded = registry.load_model(mv)
    finally:
        registry.close()
    assert loaded.n_cold_items == model.n_cold_items and loaded.is_cold_item(3114)
    assert (loaded.content_ != model.content_).nnz == 0
    pd.testing.assert_frame_equal(loaded.similar([3114, 1], k=5), model.similar([3114, 1], k=5))
    pd.testing.assert_frame_equal(loaded.recommend_from_history([3114], k=5), model.recommend_from_history([3114], k=5))
    pd.testing.assert_frame_equal(loaded.recommend([1, 2], k=10), model.recommend([1, 2], k=10))


def test_without_metadata_nothing_is_cold(trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = trained
    assert model.n_cold_items == 0 and model.content_ is None and not model.is_cold_item(3114)
    assert model.similar([-5], k=2).attrs["cold_items"] == []


def _train_small(interactions: pd.DataFrame, meta: pd.DataFrame) -> RecommenderModel:
    return mlpilot.recommend.train(
        interactions[interactions["userId"] <= 30], user="userId", item="movieId", rating="rating", items=meta,
        time_budget=2, max_trials=1, families=("most_popular", "item_knn"), register=False,
    )


def test_metadata_ids_as_text_are_converted(cold_split: Split) -> None:
    interactions, meta, _ = cold_split
    as_text = meta.assign(movieId=meta["movieId"].astype(str))
    model = _train_small(interactions, as_text)
    assert model.is_cold_item(3114) and model.cold_items_.dtype == model.items_.dtype
    assert model.title(3114) == "Toy Story 2"
    assert all(isinstance(i, int | np.integer) for i in model.similar(3114, k=3)["similar_item"])


def test_metadata_with_other_ids_is_a_clear_error(cold_split: Split) -> None:
    interactions, meta, _ = cold_split
    with pytest.raises(DataError, match="must hold numbers, as the item ids of the interactions"):
        _train_small(interactions, meta.assign(movieId="m" + meta["movieId"].astype(str)))
    with pytest.raises(DataError, match=r"None of the .* item ids of the item metadata"):
        _train_small(interactions, meta.assign(movieId=meta["movieId"] + 10_000_000))


def test_metadata_without_text_gives_titles_only(cold_split: Split) -> None:
    interactions, meta, _ = cold_split
    ids_only = meta[["movieId"]].assign(imdb=[f"tt{i:07d}" for i in range(len(meta))])
    with pytest.warns(DataQualityWarning, match="no column usable for content similarity"):
        model = _train_small(interactions, ids_only)
    assert model.n_cold_items == 0 and model.content_ is None
    assert model.recommend_from_history([3114], k=3).attrs["unknown_items"] == [3114]
