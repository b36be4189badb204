from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from mlpilot.recommend import prepare_interactions
from mlpilot.recommend._data import Interactions
from mlpilot.recommend._select import Fold, Selection, _blend_wins, make_fold, select
from mlpilot.recommend._split import validation_folds
from mlpilot.recommend._tuning import TuningResult, Validation


@pytest.fixture(scope="module")
def data(ml_small: pd.DataFrame) -> Interactions:
    return prepare_interactions(ml_small, user="userId", item="movieId", rating="rating", timestamp="timestamp")


def _folds(data: Interactions, method: str = "random") -> tuple[Validation, list[Fold]]:
    masks = validation_folds(data, method=method, n_folds=4, random_state=1)
    fit0, val0 = data.subset(masks[0][0]), data.subset(masks[0][1])
    fold0 = Validation(fit0.matrix(), val0.matrix(positives_only=True), exclude=fit0.matrix())
    fresh = [
        make_fold(data, fit, val, method=method, weighting="rating", recency=None, k=10, random_state=j)
        for j, (fit, val) in enumerate(masks[1:], start=1)
    ]
    assert all(f is not None for f in fresh)
    return fold0, [f for f in fresh if f is not None]


def _claims(fold0: Validation) -> dict[str, TuningResult]:
    # most_popular claims a tuning-fold score it never earned; EASE claims too little
    dummy = np.zeros((len(fold0.users), fold0.relevant.shape[1]), dtype=np.float32)
    return {
        "most_popular": TuningResult("most_popular", {}, 0.99, 1, 0.01, val_scores=dummy),
        "ease": TuningResult("ease", {"l2": 100.0, "min_item_count": 1}, 0.01, 1, 0.5, val_scores=dummy),
    }


@pytest.mark.parametrize("method", ["random", "temporal"])
def test_the_champion_is_chosen_on_fresh_folds_not_on_tuning_scores(data: Interactions, method: str) -> None:
    fold0, fresh = _folds(data, method)
    assert all(f.X_sub.nnz < f.X.nnz for f in fresh) and all(f.growth > 0 for f in fresh)
    selection = select(_claims(fold0), fold0, fresh, blend=True, deadline=None, random_state=0)
    assert selection.champion == "ease" and selection.n_folds == 3
    assert selection.scores["ease"] > selection.scores["most_popular"]
    # most popular is far below 95% of EASE: no blend is tried
    assert "blend" not in selection.scores and selection.blend_p_value is None


def test_without_time_for_a_fresh_fold_the_tuning_fold_decides(data: Interactions) -> None:
    fold0, fresh = _folds(data)
    selection = select(_claims(fold0), fold0, fresh, blend=False, deadline=time.perf_counter() - 1.0, random_state=0)
    assert selection.n_folds == 0 and selection.champion == "most_popular"


def test_a_blend_must_beat_its_best_member_clearly() -> None:
    rng = np.random.default_rng(0)
    member = rng.random(400)
    weights = {"ease": 1.0, "als": 0.25}
    better = Selection("ease", {"ease": float(member.mean())})
    assert _blend_wins(better, weights, member + 0.05 + rng.normal(0, 0.01, 400), member)
    assert better.blend_p_value is not None and better.blend_p_value < 0.01 and "blend" in better.scores
    tie = Selection("ease", {"ease": float(member.mean())})
    assert not _blend_wins(tie, weights, member.copy(), member)
    worse = Selection("ease", {"ease": float(member.mean())})
    assert not _blend_wins(worse, weights, member - 0.01, member)
    assert worse.blend_p_value is not None and worse.blend_p_value > 0.5
    assert not _blend_wins(Selection("ease", {}), {"ease": 1.0}, member + 1.0, member)  # one member is no blend
