from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mlpilot.recommend import prepare_interactions, split_interactions
from mlpilot.recommend._tuning import FAMILIES, Validation, tune_family


@pytest.fixture(scope="module")
def fold(ml_small: pd.DataFrame) -> tuple[sp.csr_matrix, Validation]:
    data = prepare_interactions(ml_small, user="userId", item="movieId", rating="rating")
    fit, val = split_interactions(data, random_state=1)
    X = data.subset(fit).matrix(positives_only=True)
    return X, Validation(data.subset(fit).matrix(), data.subset(val).matrix(positives_only=True), exclude=data.subset(fit).matrix())


def test_validation_caps_and_stacks_its_users(fold: tuple[sp.csr_matrix, Validation]) -> None:
    X, full = fold
    capped = Validation(full.train, full.relevant, max_users=10, random_state=3)
    again = Validation(full.train, full.relevant, max_users=10, random_state=3)
    assert len(capped.users) == 10 and set(capped.users) <= set(full.users)
    np.testing.assert_array_equal(capped.users, again.users)
    assert (np.diff(capped.users) > 0).all()
    stacked = Validation.stack([capped, full])
    scores = np.random.default_rng(0).random((len(stacked.users), X.shape[1]))
    per_user = stacked.per_user_ndcg(scores)
    np.testing.assert_allclose(per_user[:10], capped.per_user_ndcg(scores[:10]))
    np.testing.assert_allclose(per_user[10:], full.per_user_ndcg(scores[10:]))


def test_patience_ends_a_settled_search_before_its_budget(fold: tuple[sp.csr_matrix, Validation]) -> None:
    X, validation = fold
    ease = next(f for f in FAMILIES if f.name == "ease")
    patient = tune_family(ease, X, validation, budget_s=600.0, patience=1)
    # defaults, the two initial points, then stop at the first trial that does not improve
    assert patient.n_trials <= 2 + len(ease.initial) + 4 and patient.seconds < 600
    assert patient.score >= 0 and patient.val_scores is not None
    fixed = tune_family(ease, X, validation, budget_s=0.0, max_trials=6, patience=1)
    assert fixed.n_trials == 6  # fixed work ignores patience and the budget
