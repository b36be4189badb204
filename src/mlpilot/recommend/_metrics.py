"""Ranking metrics over full catalogue rankings.

The bootstrap intervals and paired tests over per-user values are the
project's one set (`mlpilot.tune._stats`), re-exported here.

All functions take the top-K item indices of each evaluated user and the
held-out relevant items as a CSR matrix; the formulas are written down in
``docs/recommend-metrics.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mlpilot.tune._stats import PairedTest, bootstrap_ci, paired_test

__all__ = [
    "METRICS",
    "Evaluation",
    "PairedTest",
    "bootstrap_ci",
    "coverage",
    "evaluate_scores",
    "paired_test",
    "per_user_metrics",
    "popularity_bias",
    "relevance",
    "top_k",
]

METRICS = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate")


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Indices of the ``k`` best items per row, best first; ``exclude`` entries are never returned.

    Ties are broken by the lower item index, so rankings are deterministic.

    Examples
    --------
    >>> top_k(np.array([[0.1, 0.9, 0.5]]), 2).tolist()
    [[1, 2]]
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None:
        ex = sp.csr_matrix(exclude)
        rows = np.repeat(np.arange(ex.shape[0]), np.diff(ex.indptr))
        scores[rows, ex.indices] = -np.inf
    n_items = scores.shape[1]
    k = min(k, n_items)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1)


def relevance(top: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean matrix: is the item at rank ``j`` of user row ``i`` relevant?"""
    rel = sp.csr_matrix(relevant)
    n, k = top.shape
    rows = np.repeat(np.arange(n), k)
    return (np.asarray(rel[rows, top.ravel()]).ravel() > 0).reshape(n, k)


def per_user_metrics(top: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """NDCG@k, Recall@k, Precision@k, MAP@k, MRR@k and hit rate@k for each user row.

    Examples
    --------
    >>> rel = sp.csr_matrix(np.array([[0, 1, 0, 1]]))
    >>> m = per_user_metrics(np.array([[1, 0]]), rel, k=2)
    >>> float(m["recall"][0]), float(m["precision"][0]), float(m["mrr"][0])
    (0.5, 0.5, 1.0)
    """
    top = top[:, :k]
    hits = relevance(top, relevant).astype(np.float64)
    n_rel = np.diff(sp.csr_matrix(relevant).indptr).astype(np.float64)
    kk = top.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, kk + 2))
    dcg = hits @ discounts
    ideal_cum = np.concatenate(([0.0], np.cumsum(discounts)))
    idcg = ideal_cum[np.minimum(n_rel, kk).astype(int)]
    safe = np.maximum(n_rel, 1.0)
    n_hits = hits.sum(axis=1)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, kk + 1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, np.inf)
    return {
        "ndcg": np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0),
        "recall": n_hits / safe,
        "precision": n_hits / kk,
        "map": (precision_at * hits).sum(axis=1) / np.maximum(np.minimum(n_rel, kk), 1.0),
        "mrr": 1.0 / first,
        "hit_rate": (n_hits > 0).astype(np.float64),
    }


def coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalogue recommended to at least one user."""
    return float(len(np.unique(top)) / n_items) if n_items else 0.0


def popularity_bias(top: np.ndarray, popularity: np.ndarray, n_users: int) -> float:
    """Mean share of training users who interacted with a recommended item (ARP / n_users)."""
    return float(popularity[top].mean() / max(n_users, 1))


@dataclass(frozen=True)
class Evaluation:
    """Per-user metrics of one model and their summaries."""

    k: int
    users: np.ndarray
    per_user: dict[str, np.ndarray]
    coverage: float
    popularity_bias: float

    def summary(self, *, with_ci: bool = True) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, values in self.per_user.items():
            key = name if name == "mrr" else f"{name}@{self.k}"
            out[key] = float(values.mean()) if len(values) else 0.0
            if with_ci:
                lo, hi = bootstrap_ci(values)
                out[f"{key}_ci_low"], out[f"{key}_ci_high"] = lo, hi
        out[f"coverage@{self.k}"] = self.coverage
        out[f"popularity_bias@{self.k}"] = self.popularity_bias
        out["n_eval_users"] = float(len(self.users))
        return out


def evaluate_scores(
    score_fn: Callable[[np.ndarray], np.ndarray],
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    *,
    k: int = 10,
    batch_size: int = 2048,
) -> Evaluation:
    """Rank the full catalogue for every user with a relevant test item and score the ranking.

    ``score_fn(user_rows)`` returns dense scores for those users; each user's
    training items are excluded from their ranking.
    """
    train = sp.csr_matrix(train)
    test = sp.csr_matrix(test)
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    tops = []
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        tops.append(top_k(score_fn(batch), k, exclude=train[batch]))
    top = np.concatenate(tops) if tops else np.zeros((0, k), dtype=np.int64)
    per_user = per_user_metrics(top, test[users], k)
    popularity = np.asarray((train > 0).sum(axis=0)).ravel().astype(np.float64)
    return Evaluation(
        k=k,
        users=users,
        per_user=per_user,
        coverage=coverage(top, train.shape[1]),
        popularity_bias=popularity_bias(top, popularity, train.shape[0]) if len(top) else 0.0,
    )
