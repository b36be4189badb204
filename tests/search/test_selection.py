"""Ensemble selection on its own: candidates' out-of-fold predictions in, weights and scores out."""

from __future__ import annotations

import numpy as np

from mlpilot.search._candidates import CandidateResult
from mlpilot.search._selection import select_ensemble
from mlpilot.tasks import get_metric
from mlpilot.tune import Budget


def _candidate(name: str, family: str, oof: np.ndarray, y: np.ndarray, folds: list) -> CandidateResult:
    metric = get_metric("rmse")
    return CandidateResult(name, family, {}, oof=oof, holdout=oof[:10].copy(),
                           fold_scores=[metric.score(y[va], oof[va]) for _tr, va in folds])


def test_a_redundant_member_is_pruned_and_a_blend_of_independent_models_kept() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    folds = [(np.setdiff1d(np.arange(300), va), va) for va in np.array_split(np.arange(300), 3)]
    good = y + rng.normal(scale=0.3, size=300)
    dummy = _candidate("dummy", "dummy", np.full(300, y.mean()), y, folds)
    best = _candidate("lightgbm", "lightgbm", good, y, folds)
    twin = _candidate("lightgbm_tuned_1", "lightgbm", good + 1e-9, y, folds)  # adds nothing
    other = _candidate("linear", "linear", y + rng.normal(scale=0.3, size=300), y, folds)
    notes: list[str] = []
    usable = [best, twin, other]
    choice = select_ensemble(usable, [dummy, *usable], y, get_metric("rmse"), folds, with_holdout=True,
                             budget=Budget(None), metric_seconds=[], refit_reserve=lambda: 0.0,
                             predict_limit=None, notes=notes)
    assert abs(sum(choice.weights.values()) - 1.0) < 1e-9 and len(choice.weights) <= 2
    assert not {"lightgbm", "lightgbm_tuned_1"} <= set(choice.weights)  # the twin is redundant
    oofs = {c.name: np.asarray(c.oof) for c in usable}
    expected = np.sum([w * oofs[n] for n, w in choice.weights.items()], axis=0)
    np.testing.assert_allclose(choice.oof, expected)
    assert choice.holdout is not None and choice.holdout.shape == (10,)
    # independent errors: the blend beats either model on every fold
    assert np.mean(choice.fold_scores) > max(best.cv_mean, other.cv_mean)
    assert notes == []  # no clock: nothing skipped, nothing to say
