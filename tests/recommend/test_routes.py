"""The recommendation API and page, through a TestClient on a small app."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI

from mlpilot.exceptions import ModelNotFoundError
from mlpilot.recommend import RecommenderModel
from mlpilot.registry import Registry, Workspace
from mlpilot.serve._errors import install_error_handlers
from mlpilot.serve._recommend_routes import router

with warnings.catch_warnings():
    # Starlette asks for its httpx fork 'httpx2'; plain httpx works (as in tests/serve).
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient


class _Models:
    """What the serving app's model cache offers the routes: ``get`` -> model + version."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def get(self, name: str, version: int | None = None, alias: str | None = None) -> Any:
        ref = f"{name}:{version}" if version else f"{name}@{alias or 'champion'}"
        mv = self.registry.get_version(ref)
        return SimpleNamespace(model=self.registry.load_model(mv), version=mv)


def _serve(ws: Path, *, with_tabular: bool = False) -> Iterator[TestClient]:
    registry = Registry(Workspace.open(ws))
    if with_tabular:
        registry.register_model("tabular", {"w": 1}, kind="tabular", aliases=("champion",))
    app = FastAPI()
    app.state.registry = registry
    app.state.models = _Models(registry)
    install_error_handlers(app)
    app.include_router(router)
    with TestClient(app) as c:
        yield c
    registry.close()


@pytest.fixture(scope="module")
def client(trained: tuple[RecommenderModel, Path]) -> Iterator[TestClient]:
    yield from _serve(trained[1], with_tabular=True)


def test_get_recommend(client: TestClient, trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = trained
    r = client.get("/v1/models/movies/recommend", params={"user": "1", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "movies" and body["version"] == 1
    assert body["user"] == 1 and body["fallback"] is False
    expected = model.recommend([1], k=5)
    assert [i["item"] for i in body["items"]] == expected["item"].tolist()
    assert [i["rank"] for i in body["items"]] == [1, 2, 3, 4, 5]
    assert all(i["title"] for i in body["items"])


def test_unknown_user_falls_back_flagged(client: TestClient) -> None:
    body = client.get("/v1/models/movies/recommend", params={"user": "zz-new"}).json()
    assert body["fallback"] is True and len(body["items"]) == 10


@pytest.mark.parametrize("k", [0, 1001, "ten"])
def test_k_out_of_range_is_422(client: TestClient, k: object) -> None:
    r = client.get("/v1/models/movies/recommend", params={"user": "1", "k": k})
    assert r.status_code == 422
    r = client.post("/v1/models/movies/recommend", json={"users": [1], "k": k})
    assert r.status_code == 422


def test_post_users_and_history(client: TestClient, trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = trained
    history = [int(i) for i in model.user_history(2, limit=4)["item"]]
    r = client.post(
        "/v1/models/movies/recommend",
        json={"users": [1, 2, "ghost"], "history": [*history, 123456789], "k": 3},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [u["user"] for u in body["results"]] == [1, 2, "ghost"]
    assert [u["fallback"] for u in body["results"]] == [False, False, True]
    assert all(len(u["items"]) == 3 for u in body["results"])
    fold = body["from_history"]
    assert fold["unknown_items"] == [123456789] and fold["fallback"] is False
    assert not set(history) & {i["item"] for i in fold["items"]}


def test_post_needs_users_or_history(client: TestClient) -> None:
    r = client.post("/v1/models/movies/recommend", json={})
    assert r.status_code == 400 and "'users'" in r.json()["detail"]
    r = client.post("/v1/models/movies/recommend", json={"users": [1], "extra": 1})
    assert r.status_code == 422


def test_similar(client: TestClient, trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = trained
    item = int(model.items_[0])
    r = client.get("/v1/models/movies/similar", params={"item": str(item), "k": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["item"] == item and len(body["items"]) == 4
    assert item not in {i["item"] for i in body["items"]}
    r = client.get("/v1/models/movies/similar", params={"item": "nope"})
    assert r.status_code == 422 and "not in the catalogue" in r.json()["detail"]


def test_unknown_model_is_404_and_tabular_is_400(client: TestClient) -> None:
    with pytest.raises(ModelNotFoundError):
        client.app.state.models.get("nothing")  # type: ignore[attr-defined]
    r = client.get("/v1/models/nothing/recommend", params={"user": "1"})
    assert r.status_code == 404
    r = client.get("/v1/models/tabular/recommend", params={"user": "1"})
    assert r.status_code == 400 and "not a recommender" in r.json()["detail"]


def test_ui_page(client: TestClient, trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = trained
    r = client.get("/ui/models/movies/recommend")
    assert r.status_code == 200 and "<datalist" in r.text
    r = client.get("/ui/models/movies/recommend", params={"user": "1", "k": 5})
    assert r.status_code == 200
    first_title = model.title(model.recommend([1], k=1)["item"].iloc[0])
    history_title = model.title(model.user_history(1, limit=1)["item"].iloc[0])
    import html

    assert html.escape(first_title) in r.text and html.escape(history_title) in r.text
    r = client.get("/ui/models/movies/recommend", params={"item": str(model.items_[0])})
    assert r.status_code == 200 and "Similar to" in r.text
    r = client.get("/ui/models/movies/recommend", params={"user": "<script>"})
    assert "<script>" not in r.text and "Unknown user" in r.text


def test_through_the_serving_app(trained: tuple[RecommenderModel, Path], tmp_path: Path) -> None:
    """The real app factory includes the router and serves the registered recommender."""
    from mlpilot.serve import ServeSettings, create_app

    _, ws = trained
    registry = Registry(Workspace.open(ws))
    settings = ServeSettings(home=ws, poll_interval=0.1, log_flush_interval=0.05, prediction_log=False)
    try:
        with TestClient(create_app(settings, registry=registry)) as c:
            r = c.get("/v1/models/movies/recommend", params={"user": "3", "k": 2})
            assert r.status_code == 200, r.text
            assert len(r.json()["items"]) == 2
            assert c.get("/v1/models/movies/similar", params={"item": "1", "k": 1001}).status_code == 422
            assert c.get("/v1/models/ghost/recommend", params={"user": "3"}).status_code == 404
            assert c.get("/ui/models/movies/recommend", params={"user": "3"}).status_code == 200
    finally:
        registry.close()


@pytest.fixture(scope="module")
def cold_client(cold_trained: tuple[RecommenderModel, Path]) -> Iterator[TestClient]:
    yield from _serve(cold_trained[1])


def test_similar_flags_a_cold_item(cold_client: TestClient, cold_trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = cold_trained
    body = cold_client.get("/v1/models/films/similar", params={"item": "3114", "k": 3}).json()
    assert body["item"] == 3114 and body["cold_start"] is True and body["title"] == "Toy Story 2"
    assert [i["item"] for i in body["items"]] == model.similar(3114, k=3)["similar_item"].tolist()
    assert [i["cold_start"] for i in body["items"]] == [model.is_cold_item(i["item"]) for i in body["items"]]
    warm = cold_client.get("/v1/models/films/similar", params={"item": "1", "k": 3}).json()
    assert warm["cold_start"] is False and len(warm["items"]) == 3
    r = cold_client.get("/v1/models/films/similar", params={"item": "424242"})
    assert r.status_code == 422 and "item metadata" in r.json()["detail"]
    page = cold_client.get("/ui/models/films/recommend", params={"item": "3114"})
    assert page.status_code == 200 and "most similar metadata" in page.text


def test_history_with_a_cold_item_is_folded_in(cold_client: TestClient, cold_trained: tuple[RecommenderModel, Path]) -> None:
    model, _ = cold_trained
    r = cold_client.post("/v1/models/films/recommend", json={"history": [6365, 424242], "k": 5, "users": [1]})
    assert r.status_code == 200, r.text
    fold = r.json()["from_history"]
    assert fold["cold_items"] == [6365] and fold["unknown_items"] == [424242] and fold["fallback"] is False
    assert [i["item"] for i in fold["items"]] == model.recommend_from_history([6365, 424242], k=5)["item"].tolist()
    users = r.json()["results"][0]["items"]
    assert all(isinstance(i["cold_start"], bool) for i in users)
    recs = model.recommend(sorted(model.users_.tolist()), k=10)
    cold_user = int(recs.loc[recs["item"].map(model.is_cold_item), "user"].iloc[0])
    body = cold_client.get("/v1/models/films/recommend", params={"user": str(cold_user)}).json()
    assert any(i["cold_start"] for i in body["items"])
    assert [i["cold_start"] for i in body["items"]] == [model.is_cold_item(i["item"]) for i in body["items"]]
