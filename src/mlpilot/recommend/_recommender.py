"""The fitted recommender: ids in, ranked ids out."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mlpilot.exceptions import InvalidParameterError, NotFittedError
from mlpilot.recommend._content import ItemContent, nearest
from mlpilot.recommend._metrics import top_k
from mlpilot.recommend._models import BaseRecommender

logger = logging.getLogger(__name__)

MAX_K = 1000


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= int(k) <= MAX_K:
        raise InvalidParameterError(
            f"The 'k' parameter must be an int in [1, {MAX_K}]. Got {k!r} instead."
        )
    return int(k)


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, str | bytes) or np.isscalar(values):
        return [values]
    return list(values)


class RecommenderModel:
    """A trained recommender with the ids of the data it learned from.

    Built by `mlpilot.recommend.train`; it is what the registry stores and the
    server loads. User and item ids keep the type they had in the data.

    With item metadata (``content``), items that have metadata but no
    interactions (*cold* items) are part of the catalogue too: `similar` answers
    for them by content similarity, a cold item in a fold-in history stands for
    its nearest warm items, and cold items are scored from their warm
    neighbours' scores, scaled down by ``cold_weight``, so that they can be
    recommended without swamping the warm ones. `is_cold_item` tells them apart.

    Parameters
    ----------
    content : ItemContent, optional
        TF-IDF content rows of the metadata items (built by ``train(items=...)``).
    n_content_neighbors : int
        Warm content neighbours kept per cold item.
    cold_weight : float >= 0
        How far up the ranking cold items may come: a cold item is ranked at
        about ``1 / (cold_weight * a)``, ``a`` the mean of ``similarity / rank``
        over its warm content neighbours, further down when many items are cold
        (see `_with_cold_scores`); 0 never recommends cold items.

    Attributes
    ----------
    model_ : BaseRecommender
        The chosen scorer (often a blend).
    users_, items_ : ndarray
        Known user and item ids, in index order.
    history_ : csr_matrix
        The users x items weights the model scores known users from.
    seen_ : csr_matrix
        Every training interaction (what ``exclude_seen`` leaves out).
    cold_items_ : ndarray
        Items known only from metadata; they follow ``items_`` in the catalogue.
    content_ : csr_matrix or None
        L2-normalised float32 TF-IDF rows, one per catalogue item (``items_``
        then ``cold_items_``; all-zero for a warm item without metadata).
    cold_neighbors_ : csr_matrix or None
        Cosine similarity of each cold item to its nearest warm items.
    """

    def __init__(
        self,
        *,
        model: BaseRecommender,
        users: np.ndarray,
        items: np.ndarray,
        history: sp.csr_matrix,
        seen: sp.csr_matrix | None = None,
        weighting: str = "binary",
        explicit: bool = False,
        item_titles: dict[Any, str] | None = None,
        leaderboard: list[dict[str, Any]] | None = None,
        protocol: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        user_col: str = "user",
        item_col: str = "item",
        name: str | None = None,
        content: ItemContent | None = None,
        n_content_neighbors: int = 10,
        cold_weight: float = 0.5,
    ) -> None:
        self.model_ = model
        self.users_ = np.asarray(users)
        self.items_ = np.asarray(items)
        self.history_ = sp.csr_matrix(history, dtype=np.float32)
        self.seen_ = sp.csr_matrix(history if seen is None else seen, dtype=np.float32)
        self.weighting = weighting
        self.explicit = explicit
        self.item_titles = dict(item_titles or {})
        self.leaderboard_ = list(leaderboard or [])
        self.protocol_ = dict(protocol or {})
        self.metrics_ = dict(metrics or {})
        self.user_col = user_col
        self.item_col = item_col
        self.name = name
        self.data_report_: dict[str, Any] = {}
        self.registered_version_: str | None = None
        self.rating_model_: Any = None
        self.n_content_neighbors = int(n_content_neighbors)
        self.cold_weight = float(cold_weight)
        self.content_columns_: dict[str, str] = {}
        self.cold_items_ = self.items_[:0]
        self.content_: sp.csr_matrix | None = None
        self.cold_neighbors_: sp.csr_matrix | None = None
        if content is not None:
            self._set_content(content)
        self._build_index()

    def _set_content(self, content: ItemContent) -> None:
        warm = {_key(v): i for i, v in enumerate(self.items_.tolist())}
        position = np.array([warm.get(_key(v), -1) for v in content.items.tolist()], dtype=np.int64)
        cold = position < 0
        n_cold = int(cold.sum())
        position[cold] = self.n_items + np.arange(n_cold)
        self.cold_items_ = np.asarray(content.items[cold]).astype(self.items_.dtype, copy=False)
        # rows of the metadata table moved to catalogue order: items_ then cold_items_
        move = sp.csr_matrix(
            (np.ones(len(position), dtype=np.float32), (position, np.arange(len(position)))),
            shape=(self.n_items + n_cold, len(position)),
        )
        self.content_ = sp.csr_matrix(move @ content.matrix, dtype=np.float32)
        self.content_columns_ = dict(content.columns)
        self.cold_neighbors_ = nearest(
            self.content_[self.n_items :], self.content_[: self.n_items], self.n_content_neighbors
        )

    # Lookup tables are rebuilt after loading rather than stored.
    def _build_index(self) -> None:
        self._user_index = {_key(u): i for i, u in enumerate(self.users_.tolist())}
        self._item_index = {_key(v): i for i, v in enumerate(self.items_.tolist())}
        self._cold_index = {_key(v): i for i, v in enumerate(self.cold_items_.tolist())}
        self._catalogue = np.concatenate([self.items_, self.cold_items_]) if len(self.cold_items_) else self.items_
        self.popularity_ = np.asarray((self.seen_ > 0).sum(axis=0), dtype=np.float32).ravel()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_user_index", "_item_index", "_cold_index", "_catalogue", "popularity_"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # models saved before cold-start support have no content
        defaults = {"n_content_neighbors": 10, "cold_weight": 0.5, "content_columns_": {},
                    "cold_items_": self.items_[:0], "content_": None, "cold_neighbors_": None}
        for key, value in defaults.items():
            self.__dict__.setdefault(key, value)
        self._build_index()

    # -- lookups ------------------------------------------------------------------

    @property
    def n_users(self) -> int:
        return len(self.users_)

    @property
    def n_items(self) -> int:
        return len(self.items_)

    def user_index(self, user: Any) -> int | None:
        return self._user_index.get(_key(user))

    def item_index(self, item: Any) -> int | None:
        return self._item_index.get(_key(item))

    def is_known_user(self, user: Any) -> bool:
        return self.user_index(user) is not None

    def is_cold_item(self, item: Any) -> bool:
        """True for an item known only from metadata: it has no interactions."""
        return _key(item) in self._cold_index

    @property
    def n_cold_items(self) -> int:
        return len(self.cold_items_)

    def title(self, item: Any) -> str | None:
        return self.item_titles.get(item)

    def user_history(self, user: Any, *, limit: int | None = None) -> pd.DataFrame:
        """The items a known user interacted with in training, strongest first."""
        idx = self.user_index(user)
        if idx is None:
            return pd.DataFrame({"item": [], "weight": []})
        row = self.seen_[idx] if self.history_[idx].nnz == 0 else self.history_[idx]
        order = np.lexsort((row.indices, -row.data))
        if limit is not None:
            order = order[:limit]
        return pd.DataFrame({"item": self.items_[row.indices[order]], "weight": row.data[order]})

    # -- recommending -------------------------------------------------------------

    def recommend(self, users: Any, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items for each user, best first.

        Users not seen in training get the most-popular items; they are listed
        in ``result.attrs["fallback_users"]``. With item metadata, items without
        interactions are scored from their content neighbours (see the class
        docstring); `is_cold_item` tells which recommended items those are.

        Parameters
        ----------
        users : id or sequence of ids
        k : int in [1, 1000]
        exclude_seen : bool
            Leave out items the user interacted with in training.

        Returns
        -------
        DataFrame
            Columns ``user, item, score, rank`` (rank 1 is best).
        """
        k = _check_k(k)
        user_list = _as_list(users)
        rows = np.array([self.user_index(u) if self.user_index(u) is not None else -1 for u in user_list], dtype=np.int64)
        known = rows >= 0
        scores = np.empty((len(user_list), self.n_items), dtype=np.float32)
        if known.any():
            idx = rows[known]
            scores[known] = self.model_.score(self.history_[idx], idx)
        if (~known).any():
            scores[~known] = self.popularity_[None, :]
        scores = self._with_cold_scores(scores, known)
        exclude = None
        if exclude_seen:
            # unknown users' rows are zeroed: they have seen nothing
            exclude = sp.csr_matrix(sp.diags(known.astype(np.float32)) @ self.seen_[np.maximum(rows, 0)])
            exclude.eliminate_zeros()
            exclude = self._widen(exclude)
        frame = self._frame(user_list, scores, k, exclude)
        frame.attrs["fallback_users"] = [u for u, ok in zip(user_list, known, strict=True) if not ok]
        return frame

    def recommend_from_history(
        self, history_items: Sequence[Any], k: int = 10, exclude_seen: bool = True
    ) -> pd.DataFrame:
        """Top-``k`` items for a user described only by items they interacted with (fold-in).

        No retraining happens: item-based models score the history directly and
        factor models solve for a user vector. A cold item (known only from
        metadata) counts as one interaction spread over its nearest warm items
        by content similarity; such items are listed in
        ``result.attrs["cold_items"]``. Items unknown to both the interactions
        and the metadata are ignored and listed in ``result.attrs["unknown_items"]``;
        with no usable item the most-popular items are returned
        (``result.attrs["fallback"]`` is True).

        Returns
        -------
        DataFrame
            Columns ``item, score, rank``.
        """
        k = _check_k(k)
        history = _as_list(history_items)
        known_idx: list[int] = []
        cold_idx: list[int] = []
        unknown, cold = [], []
        for item in history:
            idx = self.item_index(item)
            if idx is not None:
                if idx not in known_idx:
                    known_idx.append(idx)
            elif self.is_cold_item(item):
                c = self._cold_index[_key(item)]
                if c not in cold_idx:
                    cold_idx.append(c)
                    cold.append(item)
            else:
                unknown.append(item)
        weights = np.zeros(self.n_items, dtype=np.float32)
        weights[known_idx] = 1.0
        if cold_idx and self.cold_neighbors_ is not None:
            spread = sp.csr_matrix(self.cold_neighbors_[cold_idx])
            mass = np.asarray(spread.sum(axis=1)).ravel()
            spread = sp.diags(1.0 / np.where(mass > 0, mass, 1.0)) @ spread
            weights = np.minimum(weights + np.asarray(spread.sum(axis=0)).ravel(), 1.0).astype(np.float32)
        used = np.flatnonzero(weights)
        H = sp.csr_matrix((weights[used], (np.zeros(len(used), dtype=np.int64), used)), shape=(1, self.n_items))
        found = H.nnz > 0
        if found:
            scores = self.model_.score(H, np.array([-1]))
        else:
            scores = self.popularity_[None, :].copy()
        scores = self._with_cold_scores(np.asarray(scores, dtype=np.float32), np.array([found]), H)
        exclude = None
        if exclude_seen:
            seen = np.array([*known_idx, *(self.n_items + np.array(cold_idx, dtype=np.int64))], dtype=np.int64)
            exclude = sp.csr_matrix(
                (np.ones(len(seen), dtype=np.float32), (np.zeros(len(seen), dtype=np.int64), seen)),
                shape=(1, scores.shape[1]),
            )
        frame = self._frame([None], scores, k, exclude).drop(columns="user")
        frame.attrs["unknown_items"] = unknown
        frame.attrs["cold_items"] = cold
        frame.attrs["fallback"] = not found
        return frame

    def similar(self, items: Any, k: int = 10) -> pd.DataFrame:
        """The ``k`` items most similar to each item, by the model's own item similarity.

        A cold item (known only from metadata) gets the items, warm or cold,
        whose metadata is most similar (cosine of TF-IDF rows); such items are
        listed in ``result.attrs["cold_items"]``. Items unknown to both are
        listed in ``result.attrs["unknown_items"]``.

        Returns
        -------
        DataFrame
            Columns ``item, similar_item, score, rank``.
        """
        k = _check_k(k)
        item_list = _as_list(items)
        idx = [self.item_index(i) for i in item_list]
        known = [(n, item, i) for n, (item, i) in enumerate(zip(item_list, idx, strict=True)) if i is not None]
        cold = [
            (n, item, self.n_items + self._cold_index[_key(item)])
            for n, (item, i) in enumerate(zip(item_list, idx, strict=True))
            if i is None and self.is_cold_item(item)
        ]
        parts = []
        for group, similarities in ((known, self._model_similarities), (cold, self._content_similarities)):
            if not group:
                continue
            rows = np.array([i for _, _, i in group], dtype=np.int64)
            sims = similarities(rows)
            exclude = sp.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), rows)), shape=sims.shape)
            frame = self._frame(list(range(len(group))), sims, k, exclude)
            order = np.array([n for n, _, _ in group])[frame["user"].to_numpy(dtype=np.int64)]
            frame["user"] = [item_list[n] for n in order]
            parts.append(frame.assign(_order=order))
        if parts:
            out = pd.concat(parts, ignore_index=True).sort_values("_order", kind="stable").drop(columns="_order")
            out = out.rename(columns={"user": "item", "item": "similar_item"}).reset_index(drop=True)
        else:
            out = pd.DataFrame(columns=["item", "similar_item", "score", "rank"])
        out.attrs["unknown_items"] = [item for item, i in zip(item_list, idx, strict=True) if i is None and not self.is_cold_item(item)]
        out.attrs["cold_items"] = [item for _, item, _ in cold]
        return out

    def _model_similarities(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.similar_scores(rows), dtype=np.float32)

    def _content_similarities(self, rows: np.ndarray) -> np.ndarray:
        if self.content_ is None:
            return np.full((len(rows), self.n_items), -np.inf, dtype=np.float32)
        sims = np.asarray((self.content_[rows] @ self.content_.T).todense(), dtype=np.float32)
        sims[sims <= 0] = -np.inf  # nothing in common is not similar
        return sims

    def _with_cold_scores(
        self, scores: np.ndarray, personal: np.ndarray, history: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """Append the cold items' scores: from their warm neighbours' ranks for the
        rows in ``personal``, -inf (never recommended) for most-popular rows.

        Ranks rather than scores make this the same for every model family,
        whatever the scale and spread of its scores. An item of the row's
        ``history`` (what the user chose) takes the better of its rank by score
        and its rank when the history is put first. A cold item whose warm neighbours have affinity
        ``a = mean(similarity / rank)`` (over ``n_content_neighbors`` slots, a
        missing neighbour counting 0) is placed at rank ``c / (cold_weight * a)``
        among the items not in the history, just after the warm item there;
        ``c`` is the catalogue's size over the number of warm items (1 when few
        items are cold). Ten neighbours at ranks 1 to 10 with similarity 0.8
        give rank 9 with the default weight 0.5, a single neighbour at rank 1
        rank 25.
        """
        if not self.n_cold_items or self.cold_neighbors_ is None:
            return scores
        out = np.full((scores.shape[0], self.n_items + self.n_cold_items), -np.inf, dtype=np.float32)
        out[:, : self.n_items] = scores
        if not personal.any() or self.cold_weight <= 0:
            return out
        rows = np.flatnonzero(personal)
        part = np.where(np.isfinite(scores[rows]), scores[rows], np.float32(np.finfo(np.float32).min))
        chosen = np.zeros(part.shape, dtype=bool)
        if history is not None:
            chosen = np.asarray(sp.csr_matrix(history)[rows].todense()) > 0
        n = part.shape[1]
        harmonic = (1.0 / np.arange(1, n + 1, dtype=np.float32))[None, :]
        reciprocal = np.empty(part.shape, dtype=np.float32)
        np.put_along_axis(reciprocal, np.argsort(-part, axis=1, kind="stable"), harmonic, axis=1)
        if chosen.any():
            first = np.empty(part.shape, dtype=np.float32)
            np.put_along_axis(first, np.lexsort((-part, ~chosen), axis=1), harmonic, axis=1)
            reciprocal = np.maximum(reciprocal, first)
        affinity = np.asarray(self.cold_neighbors_ @ reciprocal.T, dtype=np.float64).T / max(self.n_content_neighbors, 1)
        # many cold items would fill the top by sheer number: a cold item's place
        # among n warm items is stretched by the share of the catalogue it competes for
        crowding = (self.n_items + self.n_cold_items) / max(self.n_items, 1)
        with np.errstate(divide="ignore"):
            rank = crowding / (self.cold_weight * affinity)
        ranked = -np.sort(-np.where(chosen, -np.inf, part), axis=1)
        position = np.minimum(np.ceil(np.minimum(rank, n)) - 1, n - 1).astype(np.int64)
        cold = np.take_along_axis(ranked, np.maximum(position, 0), axis=1)
        floor = part.min(axis=1, keepdims=True)
        # beyond the items left: after every warm item, still listed when k is large
        below = np.nextafter(floor, np.float32(-np.inf))
        out[rows, self.n_items :] = np.where((rank > n) | ~np.isfinite(cold), below, cold)
        return out

    def _widen(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """A users x items matrix padded with empty columns for the cold items."""
        if not self.n_cold_items:
            return matrix
        return sp.csr_matrix(
            (matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], self.n_items + self.n_cold_items)
        )

    def predict_rating(self, users: Any, items: Any) -> np.ndarray:
        """Predicted ratings for (user, item) pairs; needs ``train(..., predict_ratings=True)``.

        Unknown users or items get the global mean plus the known bias.
        """
        if self.rating_model_ is None:
            raise NotFittedError(
                "This recommender has no rating predictor; train it with predict_ratings=True "
                "on explicit ratings."
            )
        user_list, item_list = _as_list(users), _as_list(items)
        if len(user_list) != len(item_list):
            raise InvalidParameterError(
                f"users and items must have the same length. Got {len(user_list)} and {len(item_list)}."
            )
        u = np.array([self.user_index(x) if self.user_index(x) is not None else -1 for x in user_list], dtype=np.int64)
        i = np.array([self.item_index(x) if self.item_index(x) is not None else -1 for x in item_list], dtype=np.int64)
        return np.asarray(self.rating_model_.predict(u, i))

    def leaderboard(self) -> pd.DataFrame:
        """Every candidate's validation and test scores, the chosen model first."""
        return pd.DataFrame(self.leaderboard_)

    def _frame(self, keys: list[Any], scores: np.ndarray, k: int, exclude: sp.csr_matrix | None) -> pd.DataFrame:
        k = min(k, scores.shape[1])
        top = top_k(scores, k, exclude=exclude)
        chosen = np.take_along_axis(scores, top, axis=1).astype(np.float64)
        valid = np.isfinite(chosen)
        if exclude is not None:
            # an excluded item must never be returned, even when few items are left
            ex = sp.csr_matrix(exclude)
            valid &= ~(np.asarray(ex[np.repeat(np.arange(len(keys)), k), top.ravel()]).reshape(top.shape) > 0)
        n = len(keys)
        frame = pd.DataFrame(
            {
                "user": np.repeat(np.array(keys, dtype=object), k)[valid.ravel()],
                "item": self._catalogue[top.ravel()][valid.ravel()],
                "score": chosen.ravel()[valid.ravel()],
                "rank": np.tile(np.arange(1, k + 1), n)[valid.ravel()],
            }
        )
        return frame

    def __repr__(self) -> str:
        chosen = self.protocol_.get("chosen", type(self.model_).__name__)
        return f"RecommenderModel({chosen}, n_users={self.n_users}, n_items={self.n_items})"


def _key(value: Any) -> Any:
    """Ids from JSON or a CLI arrive as str or int; match them to the training type."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def coerce_ids(values: Iterable[Any], reference: np.ndarray) -> list[Any]:
    """Convert ids given as text (query strings, CLI) to the type of the training ids."""
    out = []
    numeric = reference.dtype.kind in "iuf"
    for v in values:
        if numeric and isinstance(v, str):
            try:
                num = float(v)
                v = int(num) if num.is_integer() else num
            except ValueError:
                pass
        out.append(v)
    return out
