"""mlpilot.Client's recommend() and similar() against a real server with a trained recommender."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlpilot
from mlpilot.recommend import RecommenderModel
from mlpilot.registry import Registry, Workspace
from mlpilot.serve import ServeSettings, create_app
from tests.serve.conftest import running_server


def test_recommend_and_similar_as_frames(trained: tuple[RecommenderModel, Path]) -> None:
    model, ws = trained
    registry = Registry(Workspace.open(ws))
    app = create_app(ServeSettings(home=ws, prediction_log=False), registry=registry)
    try:
        with running_server(app) as url, mlpilot.Client(url) as client:
            user = model.users_[2]
            got = client.recommend("movies", user, k=3)
            expected = model.recommend([user], k=3)
            assert got["item"].tolist() == expected["item"].tolist()
            assert got["score"].tolist() == pytest.approx(expected["score"].tolist())
            assert got.attrs["fallback"] is False and got.attrs["model"] == "movies"
            assert client.recommend("movies", "no-such-user", k=2).attrs["fallback"] is True
            item = model.items_[0]
            similar = client.similar("movies", item, k=4)
            assert similar["item"].tolist() == model.similar([item], k=4)["similar_item"].tolist()
            assert list(similar.columns) == ["item", "score", "rank", "title", "cold_start"]
    finally:
        registry.close()
