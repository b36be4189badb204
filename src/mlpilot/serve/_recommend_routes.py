"""Recommendation endpoints and the recommendation page of the web UI.

``GET/POST /v1/models/{name}/recommend``, ``GET /v1/models/{name}/similar`` and
``GET /ui/models/{name}/recommend``. The models come from
``request.app.state.models.get(name, version=None, alias=None)``; errors are
mlpilot exceptions, turned into responses by the app's one error handler.
"""

from __future__ import annotations

import html
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from mlpilot.exceptions import DataError, InvalidParameterError, ResourceLimitError

router = APIRouter(tags=["recommend"])

MAX_USERS = 1000
MAX_HISTORY = 1000
Ident = int | str
KQuery = Annotated[int, Query(ge=1, le=1000, description="How many items to return.")]
VersionQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Pin this version.")]
AliasQuery = Annotated[
    str | None,
    Query(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", description="Pin the version this alias points at."),
]


class RecommendRequest(BaseModel):
    """Users to recommend for and/or a history of items to fold in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    users: list[Ident] = Field(default_factory=list, max_length=MAX_USERS)
    history: list[Ident] | None = Field(default=None, max_length=MAX_HISTORY)
    k: Annotated[int, Field(ge=1, le=1000)] = 10
    exclude_seen: bool = True


class RecommendedItem(BaseModel):
    item: Ident
    score: float
    rank: int
    title: str | None = None
    cold_start: bool = Field(
        default=False, description="True for an item with no interactions, known from item metadata only."
    )


class UserRecommendations(BaseModel):
    user: Ident | None
    fallback: bool = Field(description="True when the user is unknown and gets the most-popular items.")
    items: list[RecommendedItem]


class HistoryRecommendations(BaseModel):
    history: list[Ident]
    unknown_items: list[Ident] = Field(description="History items the model does not know; ignored.")
    cold_items: list[Ident] = Field(
        default_factory=list,
        description="History items with no interactions, known from item metadata: each stands for its "
        "nearest items by content similarity.",
    )
    fallback: bool = Field(description="True when no history item is known: most-popular items.")
    items: list[RecommendedItem]


class RecommendResponse(BaseModel):
    model: str
    version: int
    user: Ident | None = None
    fallback: bool | None = None
    items: list[RecommendedItem] | None = None
    results: list[UserRecommendations] | None = None
    from_history: HistoryRecommendations | None = None


class SimilarResponse(BaseModel):
    model: str
    version: int
    item: Ident
    title: str | None = None
    cold_start: bool = Field(
        default=False,
        description="True when the item has no interactions: its neighbours are the items whose "
        "metadata is most similar (TF-IDF cosine), not the model's own similarity.",
    )
    items: list[RecommendedItem]


def _recommender(request: Request, name: str, version: int | None, alias: str | None) -> tuple[Any, Any]:
    loaded = request.app.state.models.get(name, version=version, alias=alias)
    model = loaded.model
    if loaded.version.kind != "recommender" or not hasattr(model, "recommend_from_history"):
        raise InvalidParameterError(
            f"Model {loaded.version.ref} is a {loaded.version.kind!r} model, not a recommender. "
            f"Use POST /v1/models/{name}/predict for it."
        )
    return model, loaded.version


def _coerce(model: Any, values: list[Any], reference: Any) -> list[Any]:
    from mlpilot.recommend._recommender import coerce_ids

    return coerce_ids(values, reference)


def _items(model: Any, frame: Any, item_col: str = "item") -> list[RecommendedItem]:
    out = []
    for item, score, rank in zip(frame[item_col].tolist(), frame["score"].tolist(), frame["rank"].tolist(), strict=True):
        out.append(
            RecommendedItem(
                item=_plain(item), score=float(score), rank=int(rank), title=model.title(item),
                cold_start=model.is_cold_item(item),
            )
        )
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


@router.get("/v1/models/{name}/recommend", response_model=RecommendResponse, response_model_exclude_none=True)
def recommend_user(
    request: Request,
    name: str,
    user: Annotated[str, Query(min_length=1, max_length=256, description="The user id.")],
    k: KQuery = 10,
    exclude_seen: bool = True,
    version: VersionQuery = None,
    alias: AliasQuery = None,
) -> RecommendResponse:
    """Top-k items for one user; an unknown user gets the most-popular items (``fallback``)."""
    model, mv = _recommender(request, name, version, alias)
    (uid,) = _coerce(model, [user], model.users_)
    frame = model.recommend([uid], k=k, exclude_seen=exclude_seen)
    return RecommendResponse(
        model=mv.name,
        version=mv.version,
        user=_plain(uid),
        fallback=not model.is_known_user(uid),
        items=_items(model, frame),
    )


@router.post("/v1/models/{name}/recommend", response_model=RecommendResponse, response_model_exclude_none=True)
def recommend_many(
    request: Request,
    name: str,
    body: RecommendRequest,
    version: VersionQuery = None,
    alias: AliasQuery = None,
) -> RecommendResponse:
    """Top-k items for several users, and/or for a history of items given in the request (fold-in)."""
    if not body.users and body.history is None:
        raise InvalidParameterError(
            "The request must name 'users' (a list of user ids) or give a 'history' (a list of "
            "item ids), or both. Got neither."
        )
    if len(body.users) > MAX_USERS:
        raise ResourceLimitError(f"At most {MAX_USERS} users per request. Got {len(body.users)}.")
    model, mv = _recommender(request, name, version, alias)
    results = None
    if body.users:
        users = _coerce(model, list(body.users), model.users_)
        frame = model.recommend(users, k=body.k, exclude_seen=body.exclude_seen)
        results = []
        for uid in users:
            part = frame[frame["user"].map(lambda u, uid=uid: u == uid)]
            results.append(
                UserRecommendations(user=_plain(uid), fallback=not model.is_known_user(uid), items=_items(model, part))
            )
    from_history = None
    if body.history is not None:
        history = _coerce(model, list(body.history), model.items_)
        frame = model.recommend_from_history(history, k=body.k, exclude_seen=body.exclude_seen)
        from_history = HistoryRecommendations(
            history=[_plain(h) for h in history],
            unknown_items=[_plain(u) for u in frame.attrs.get("unknown_items", [])],
            cold_items=[_plain(c) for c in frame.attrs.get("cold_items", [])],
            fallback=bool(frame.attrs.get("fallback", False)),
            items=_items(model, frame),
        )
    return RecommendResponse(model=mv.name, version=mv.version, results=results, from_history=from_history)


@router.get("/v1/models/{name}/similar", response_model=SimilarResponse)
def similar_items(
    request: Request,
    name: str,
    item: Annotated[str, Query(min_length=1, max_length=256, description="The item id.")],
    k: KQuery = 10,
    version: VersionQuery = None,
    alias: AliasQuery = None,
) -> SimilarResponse:
    """The k items most similar to ``item``, by the model's own item similarity.

    An item with no interactions that the item metadata describes (``cold_start``)
    gets the items with the most similar metadata.
    """
    model, mv = _recommender(request, name, version, alias)
    (iid,) = _coerce(model, [item], model.items_)
    cold = model.is_cold_item(iid)
    if model.item_index(iid) is None and not cold:
        raise DataError(
            f"The item {item!r} is not in the catalogue of model {mv.ref} ({model.n_items} items with "
            "interactions, plus those described by its item metadata). Check the id, or retrain with "
            "interactions or item metadata that include it."
        )
    frame = model.similar([iid], k=k)
    return SimilarResponse(
        model=mv.name, version=mv.version, item=_plain(iid), title=model.title(iid), cold_start=cold,
        items=_items(model, frame, item_col="similar_item"),
    )


# -- web UI -----------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.5rem}
form{display:flex;gap:.5rem;align-items:end;flex-wrap:wrap;margin:.5rem 0}
label{display:flex;flex-direction:column;font-size:.85rem}
input{padding:.3rem;font-size:1rem}button{padding:.35rem .9rem;font-size:1rem}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:2rem}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.25rem .4rem;text-align:left;font-size:.9rem}
.note{background:#fff6d5;padding:.4rem .6rem;border-radius:4px}.muted{color:#777;font-size:.85rem}
"""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@router.get("/ui/models/{name}/recommend", response_class=HTMLResponse, include_in_schema=False)
def recommend_page(
    request: Request,
    name: str,
    user: Annotated[str | None, Query(max_length=256)] = None,
    item: Annotated[str | None, Query(max_length=256)] = None,
    k: KQuery = 10,
) -> HTMLResponse:
    """Pick or type a user: their history and recommendations; similar items for an item."""
    model, mv = _recommender(request, name, None, None)
    esc = html.escape
    base = f"/ui/models/{quote(name)}/recommend"

    def link_item(value: Any) -> str:
        label = model.title(value) or str(value)
        return f'<a href="{base}?{esc(urlencode({"item": str(value), "k": k}))}">{esc(label)}</a>'

    users_sample = [str(u) for u in model.users_[:500].tolist()]
    options = "".join(f'<option value="{esc(u)}">' for u in users_sample)
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(name)}: recommendations</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{esc(name)} <span class='muted'>version {mv.version} · {model.n_users} users · "
        f"{model.n_items} items · {esc(str(model.protocol_.get('chosen', '')))}</span></h1>",
        f"<form method='get' action='{base}'><label>User<input name='user' list='users' value='{esc(user or '')}' "
        f"placeholder='type or pick a user id' autofocus></label><datalist id='users'>{options}</datalist>"
        f"<label>k<input name='k' type='number' min='1' max='1000' value='{k}' style='width:5rem'></label>"
        "<button type='submit'>Recommend</button></form>",
        f"<form method='get' action='{base}'><label>Item<input name='item' value='{esc(item or '')}' "
        "placeholder='an item id'></label><input type='hidden' name='k' value='" + str(k) + "'>"
        "<button type='submit'>Similar items</button></form>",
    ]
    if user:
        (uid,) = _coerce(model, [user], model.users_)
        frame = model.recommend([uid], k=k)
        known = model.is_known_user(uid)
        history = model.user_history(uid, limit=50)
        parts.append(f"<h2>User {esc(str(uid))}</h2>")
        if not known:
            parts.append("<p class='note'>Unknown user: showing the most popular items.</p>")
        hist_rows = [[link_item(i), f"{w:.2f}"] for i, w in zip(history["item"].tolist(), history["weight"].tolist(), strict=True)]
        rec_rows = [[str(r), link_item(i), f"{s:.3f}"] for i, s, r in zip(frame["item"].tolist(), frame["score"].tolist(), frame["rank"].tolist(), strict=True)]
        parts.append("<div class='cols'><div><h2>History (strongest first)</h2>")
        parts.append(_table(["item", "weight"], hist_rows) if hist_rows else "<p class='muted'>No history.</p>")
        parts.append("</div><div><h2>Recommendations</h2>")
        parts.append(_table(["rank", "item", "score"], rec_rows))
        parts.append("</div></div>")
    if item:
        (iid,) = _coerce(model, [item], model.items_)
        parts.append(f"<h2>Similar to {link_item(iid)}</h2>")
        cold = model.is_cold_item(iid)
        if model.item_index(iid) is None and not cold:
            parts.append(f"<p class='note'>Unknown item {esc(str(item))}.</p>")
        else:
            if cold:
                parts.append("<p class='note'>No interactions: items with the most similar metadata.</p>")
            frame = model.similar([iid], k=k)
            rows = [[str(r), link_item(i), f"{s:.3f}"] for i, s, r in zip(frame["similar_item"].tolist(), frame["score"].tolist(), frame["rank"].tolist(), strict=True)]
            parts.append(_table(["rank", "item", "score"], rows))
    parts.append("</body></html>")
    return HTMLResponse("".join(parts))
