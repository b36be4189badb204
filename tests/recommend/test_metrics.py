from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from mlpilot.recommend import (
    bootstrap_ci,
    coverage,
    paired_test,
    per_user_metrics,
    popularity_bias,
    top_k,
)


def _reference(ranked: list[int], relevant: set[int], k: int) -> dict[str, float]:
    """Loop-by-loop definitions, as written in docs/recommend-metrics.md."""
    ranked = ranked[:k]
    hits = [1.0 if item in relevant else 0.0 for item in ranked]
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    ap = sum(sum(hits[: i + 1]) / (i + 1) for i, h in enumerate(hits) if h) / min(k, len(relevant))
    first = next((i + 1 for i, h in enumerate(hits) if h), None)
    return {
        "ndcg": dcg / idcg,
        "recall": sum(hits) / len(relevant),
        "precision": sum(hits) / k,
        "map": ap,
        "mrr": 1 / first if first else 0.0,
        "hit_rate": float(sum(hits) > 0),
    }


def test_metrics_match_loop_definitions(global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    n_users, n_items, k = 40, 30, 5
    relevant = sp.random(n_users, n_items, density=0.15, random_state=global_random_seed, format="csr")
    relevant.data[:] = 1
    keep = np.diff(relevant.indptr) > 0
    relevant = relevant[keep]
    scores = rng.random((relevant.shape[0], n_items))
    top = top_k(scores, k)
    got = per_user_metrics(top, relevant, k)
    for u in range(relevant.shape[0]):
        expected = _reference(top[u].tolist(), set(relevant[u].indices.tolist()), k)
        for name, value in expected.items():
            assert got[name][u] == pytest.approx(value), (name, u)


def test_top_k_excludes_and_breaks_ties_by_index() -> None:
    scores = np.array([[1.0, 1.0, 0.5, 1.0]])
    assert top_k(scores, 3).tolist() == [[0, 1, 3]]
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0]]))
    assert top_k(scores, 3, exclude=exclude).tolist() == [[0, 3, 2]]


def test_coverage_and_popularity_bias() -> None:
    top = np.array([[0, 1], [0, 2]])
    assert coverage(top, 10) == pytest.approx(0.3)
    popularity = np.array([4.0, 2.0, 0.0])
    assert popularity_bias(top, popularity, n_users=4) == pytest.approx((4 + 2 + 4 + 0) / 4 / 4)


def test_bootstrap_ci_and_paired_test() -> None:
    rng = np.random.default_rng(0)
    values = rng.random(500)
    lo, hi = bootstrap_ci(values)
    assert lo < values.mean() < hi and hi - lo < 0.1
    better = paired_test(values + 0.05, values)
    assert better.p_value < 0.01 and better.ci_low > 0
    same = paired_test(values, values)
    assert same.p_value == 1.0 and same.mean_difference == 0
    noise = paired_test(values, rng.permutation(values))
    assert noise.p_value > 0.01
