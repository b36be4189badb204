"""Recommenders go through the one promotion policy: a worse new recommender does not become champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpilot.recommend import train
from mlpilot.registry import Registry, Workspace

FAST: dict[str, Any] = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp",
                        "max_trials": 1, "name": "movies"}


@pytest.fixture(scope="module")
def older(ml_small: pd.DataFrame) -> pd.DataFrame:
    """The first 70% of each user's ratings, in time: what a champion trained last month saw."""
    order = ml_small.sort_values(["userId", "timestamp"], kind="stable")
    position = order.groupby("userId").cumcount()
    size = order.groupby("userId")["movieId"].transform("size")
    return order[position < 0.7 * size].reset_index(drop=True)


def _version(ws: Path, ref: str) -> Any:
    registry = Registry(Workspace.open(ws))
    try:
        return registry.get_version(ref)
    finally:
        registry.close()


def test_a_worse_recommender_on_new_interactions_is_kept_as_a_candidate(
    tmp_path: Path, older: pd.DataFrame, ml_small: pd.DataFrame
) -> None:
    first = train(older, families=("ease",), workspace=tmp_path, **FAST)
    worse = train(ml_small, families=("most_popular",), workspace=tmp_path, **FAST)
    assert (first.registered_version_, worse.registered_version_) == ("movies:1", "movies:2")
    assert _version(tmp_path, "movies@champion").version == 1
    mv = _version(tmp_path, "movies:2")
    evidence = mv.info["promotion"]
    assert evidence["rule"] == "shared_rows" and evidence["unit"] == "test users"
    assert evidence["champion_version"] == 1 and evidence["n_rows"] >= 30
    assert evidence["challenger"] < evidence["champion"] and evidence["test"] == "paired bootstrap (holdout)"
    assert 0.0 <= evidence["p_value"] <= 1.0
    assert mv.info["champion_reason"].startswith("kept as a candidate: test ndcg@10 ")
    assert "test users, unseen by both" in mv.info["champion_reason"]
    assert mv.info["training_rows"]["n_rows"] == len(ml_small)


def test_a_better_recommender_on_new_interactions_becomes_champion(
    tmp_path: Path, older: pd.DataFrame, ml_small: pd.DataFrame
) -> None:
    train(older, families=("most_popular",), workspace=tmp_path, **FAST)
    better = train(ml_small, families=("ease",), workspace=tmp_path, **FAST)
    assert _version(tmp_path, "movies@champion").version == 2
    evidence = _version(tmp_path, better.registered_version_ or "").info["promotion"]
    assert evidence["rule"] == "shared_rows" and evidence["challenger"] > evidence["champion"]


def test_retraining_on_the_same_interactions_falls_back_to_each_models_own_test_score(
    tmp_path: Path, ml_small: pd.DataFrame
) -> None:
    """The champion was refit on every interaction: no test user is unseen by it, so no paired test."""
    train(ml_small, families=("ease",), workspace=tmp_path, **FAST)
    train(ml_small, families=("most_popular",), workspace=tmp_path, **FAST)
    assert _version(tmp_path, "movies@champion").version == 1
    mv = _version(tmp_path, "movies:2")
    assert mv.info["promotion"]["rule"] == "own_rows" and mv.info["promotion"]["p_value"] is None
    assert "only 0 test users have interactions unseen by champion v1" in mv.info["champion_reason"]
    assert "champion_reason" not in mv.metrics


def test_per_user_ndcg_counts_only_the_relevant_items_in_the_top_k() -> None:
    from mlpilot.automl._promote import per_user_ndcg

    ranked = pd.DataFrame({"user": ["a", "a", "a", "b"], "item": [1, 2, 3, 9], "rank": [1, 2, 3, 1]})
    got = per_user_ndcg(ranked, pd.Series({"a": {2, 7}, "b": {5}}), k=3)
    ideal = 1 + 1 / np.log2(3)
    np.testing.assert_allclose(got, [(1 / np.log2(3)) / ideal, 0.0])
