"""The fitted recommender: ids in, ranked ids out."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mlpilot.exceptions import InvalidParameterError, NotFittedError
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
        self._build_index()

    # Lookup tables are rebuilt after loading rather than stored.
    def _build_index(self) -> None:
        self._user_index = {_key(u): i for i, u in enumerate(self.users_.tolist())}
        self._item_index = {_key(v): i for i, v in enumerate(self.items_.tolist())}
        self.popularity_ = np.asarray((self.seen_ > 0).sum(axis=0), dtype=np.float32).ravel()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_user_index", "_item_index", "popularity_"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
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
        in ``result.attrs["fallback_users"]``.

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
        exclude = None
        if exclude_seen:
            # unknown users' rows are zeroed: they have seen nothing
            exclude = sp.csr_matrix(sp.diags(known.astype(np.float32)) @ self.seen_[np.maximum(rows, 0)])
            exclude.eliminate_zeros()
        frame = self._frame(user_list, scores, k, exclude)
        frame.attrs["fallback_users"] = [u for u, ok in zip(user_list, known, strict=True) if not ok]
        return frame

    def recommend_from_history(
        self, history_items: Sequence[Any], k: int = 10, exclude_seen: bool = True
    ) -> pd.DataFrame:
        """Top-``k`` items for a user described only by items they interacted with (fold-in).

        No retraining happens: item-based models score the history directly and
        factor models solve for a user vector. Unknown items are ignored and
        listed in ``result.attrs["unknown_items"]``; with no known item the
        most-popular items are returned (``result.attrs["fallback"]`` is True).

        Returns
        -------
        DataFrame
            Columns ``item, score, rank``.
        """
        k = _check_k(k)
        history = _as_list(history_items)
        known_idx, unknown = [], []
        for item in history:
            idx = self.item_index(item)
            if idx is None:
                unknown.append(item)
            elif idx not in known_idx:
                known_idx.append(idx)
        H = sp.csr_matrix(
            (np.ones(len(known_idx), dtype=np.float32), (np.zeros(len(known_idx), dtype=np.int64), np.array(known_idx, dtype=np.int64))),
            shape=(1, self.n_items),
        )
        if known_idx:
            scores = self.model_.score(H, np.array([-1]))
        else:
            scores = self.popularity_[None, :].copy()
        frame = self._frame([None], scores, k, H if exclude_seen else None).drop(columns="user")
        frame.attrs["unknown_items"] = unknown
        frame.attrs["fallback"] = not known_idx
        return frame

    def similar(self, items: Any, k: int = 10) -> pd.DataFrame:
        """The ``k`` items most similar to each item, by the model's own item similarity.

        Unknown items are listed in ``result.attrs["unknown_items"]``.

        Returns
        -------
        DataFrame
            Columns ``item, similar_item, score, rank``.
        """
        k = _check_k(k)
        item_list = _as_list(items)
        idx = [self.item_index(i) for i in item_list]
        known = [(item, i) for item, i in zip(item_list, idx, strict=True) if i is not None]
        parts = []
        if known:
            rows = np.array([i for _, i in known], dtype=np.int64)
            sims = self.model_.similar_scores(rows)
            exclude = sp.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), rows)), shape=(len(rows), self.n_items))
            frame = self._frame([item for item, _ in known], sims, k, exclude)
            parts.append(frame.rename(columns={"user": "item", "item": "similar_item"}))
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["item", "similar_item", "score", "rank"])
        out.attrs["unknown_items"] = [item for item, i in zip(item_list, idx, strict=True) if i is None]
        return out

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
        k = min(k, self.n_items)
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
                "item": self.items_[top.ravel()][valid.ravel()],
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
