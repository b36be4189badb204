"""Ranking metrics over full catalogue rankings, bootstrap intervals and paired tests.

All functions take the top-K item indices of each evaluated user and the
held-out relevant items as a CSR matrix; the formulas are written down in
``docs/recommend-metrics.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

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


def bootstrap_ci(
    values: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, random_state: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over users."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(random_state)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 100):  # blocks keep memory small for many users
        stop = min(start + 100, n_boot)
        idx = rng.integers(0, len(values), size=(stop - start, len(values)))
        means[start:stop] = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of two models over the same users."""

    metric: str
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_users: int

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "metric": self.metric,
            "mean_difference": self.mean_difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "n_users": self.n_users,
        }


def paired_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    metric: str = "ndcg",
    n_resamples: int = 2000,
    random_state: int = 0,
) -> PairedTest:
    """Two-sided sign-flip permutation test of mean(a - b) = 0, with a bootstrap CI.

    Examples
    --------
    >>> t = paired_test(np.array([1.0, 1.0, 1.0, 1.0]), np.zeros(4))
    >>> t.mean_difference
    1.0
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(diff)
    observed = float(diff.mean()) if n else float("nan")
    if n == 0 or not np.any(diff):
        return PairedTest(metric, observed if n else 0.0, 0.0, 0.0, 1.0, n)
    rng = np.random.default_rng(random_state)
    extreme = 0
    for start in range(0, n_resamples, 200):
        stop = min(start + 200, n_resamples)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(stop - start, n))
        extreme += int((np.abs((signs * diff).mean(axis=1)) >= abs(observed) - 1e-12).sum())
    p_value = (extreme + 1) / (n_resamples + 1)
    lo, hi = bootstrap_ci(diff, random_state=random_state)
    return PairedTest(metric, observed, lo, hi, float(p_value), n)


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
