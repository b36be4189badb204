"""Sample weights where the last places ignored them: the decision threshold, the boosted families'
early-stopping sets, promotion's paired test, permutation importance and the stacker's fit.

Each test makes a case where the weights must change the outcome, and checks it changes the way
weighting says (a weight of 0 is the row left out, a weight of 2 the row counted twice).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from mlpilot.automl._promote import Challenger, Champion, PromotionPolicy, hash_prefixes, row_hashes
from mlpilot.evaluate import permutation_importance
from mlpilot.search import CandidateResult, Learner, make_folds
from mlpilot.search._selection import select_ensemble
from mlpilot.search._stack import consider_stack, fit_stacker
from mlpilot.tasks import ThresholdRule, choose_threshold, get_metric
from mlpilot.tune import Budget


def test_weighting_the_negatives_raises_the_threshold_as_duplicating_them_does() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    p = np.clip(0.3 + 0.3 * y + rng.normal(0, 0.25, 400), 0, 1).round(3)
    w = np.where(y == 0, 3.0, 1.0)
    twice = np.repeat(np.arange(len(y)), w.astype(int))  # each negative three times
    for rule in ("f1", "balanced_accuracy", "cost:2"):
        weighted = choose_threshold(y, p, ThresholdRule.parse(rule), sample_weight=w)
        repeated = choose_threshold(y[twice], p[twice], ThresholdRule.parse(rule))
        assert weighted.threshold == repeated.threshold, rule
        assert weighted.at_threshold == repeated.at_threshold
        assert weighted.n_rows == len(y)
    plain = choose_threshold(y, p, ThresholdRule("f1"))
    heavier = choose_threshold(y, p, ThresholdRule("f1"), sample_weight=w)
    assert heavier.threshold > plain.threshold  # false positives cost more: fewer rows are called positive
    zero = np.where(np.arange(len(y)) < 200, 1.0, 0.0)  # a weight of zero is the row left out
    assert choose_threshold(y, p, ThresholdRule("f1"), sample_weight=zero).threshold == \
        choose_threshold(y[:200], p[:200], ThresholdRule("f1")).threshold


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training rows, and a validation set whose second half has its labels flipped (``flipped`` marks it)."""
    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    tr, va = slice(0, 400), slice(400, None)
    y_val = y[va].copy()
    flipped = np.arange(len(y_val)) >= len(y_val) // 2
    y_val[flipped] = 1 - y_val[flipped]
    return X[tr], y[tr], X[va], y_val, flipped


@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "catboost"])
def test_early_stopping_scores_its_rounds_with_the_validation_weights(
        family: str, cancer: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    X, y, X_val, y_val, flipped = cancer
    params = {"n_estimators": 120, "learning_rate": 0.3, **({"depth": 4} if family == "catboost" else {})}

    def rounds(**kw: object) -> int:
        learner = Learner(family=family, task="binary", params=dict(params), n_jobs=1, deterministic=True)
        return learner.fit(X, y, **kw).n_iterations_  # type: ignore[arg-type]

    on_wrong = rounds(X_val=X_val, y_val=y_val, val_weight=flipped.astype(float))
    on_right = rounds(X_val=X_val, y_val=y_val, val_weight=(~flipped).astype(float))
    # a weight of zero leaves the row out of the early-stopping score
    assert on_wrong == rounds(X_val=X_val[flipped], y_val=y_val[flipped])
    assert on_right == rounds(X_val=X_val[~flipped], y_val=y_val[~flipped])
    assert on_wrong < on_right  # scored on flipped labels, more rounds only make it worse


class _Fixed:
    def __init__(self, value: np.ndarray) -> None:
        self.value = value

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.value[frame["i"].to_numpy()]


def test_promotions_paired_test_counts_each_holdout_row_by_its_weight() -> None:
    rng = np.random.default_rng(1)
    n = 300
    y = rng.normal(size=n)
    first = np.arange(n) < n // 2
    # the challenger is accurate on the first half, the champion on the second
    new_pred = y + np.where(first, 0.1, 1.5) * rng.normal(size=n)
    old_pred = y + np.where(first, 1.0, 0.1) * rng.normal(size=n)
    rows = pd.DataFrame({"i": np.arange(n), "y": y})
    seen = hash_prefixes(row_hashes(rows.iloc[:0], ["i", "y"]))
    champion = Champion(version=1, task="regression", target="y", scores={}, load_model=lambda: _Fixed(old_pred),
                        seen=seen, seen_columns=["i", "y"])

    def decide(weight: np.ndarray | None) -> tuple[bool, dict]:
        challenger = Challenger(task="regression", target="y", metric="rmse", classes=[], scores={}, holdout_rows=rows,
                                holdout_y=y, holdout_prediction=new_pred, holdout_weight=weight)
        decision = PromotionPolicy(min_unseen_rows=10).decide(challenger, champion)
        return decision.promote, decision.evidence

    plain, evidence = decide(None)
    assert not plain and evidence["weighted"] is False
    weight = np.where(first, 10.0, 0.1)  # the rows where the challenger is right are what counts
    promoted, evidence = decide(weight)
    assert promoted and evidence["weighted"] is True and evidence["rule"] == "shared_rows"
    rmse = get_metric("rmse").weighted(weight)
    assert evidence["challenger"] == pytest.approx(rmse(y, new_pred))
    assert evidence["champion"] == pytest.approx(rmse(y, old_pred))


def test_permutation_importance_counts_the_rows_by_their_weight() -> None:
    rng = np.random.default_rng(2)
    n = 800
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "group": np.arange(n) % 2})
    y = np.where(frame["group"] == 0, frame["a"], frame["b"]).astype(float)

    def predict(f: pd.DataFrame) -> np.ndarray:  # exact: column a decides the even rows, b the odd ones
        return np.where(f["group"].to_numpy() == 0, f["a"].to_numpy(), f["b"].to_numpy())

    rmse = get_metric("rmse")
    kw = {"random_state": 0, "n_repeats": 2, "max_rows": 300}  # a row sample: its weights must follow it
    plain = {c: m for c, m, _s in permutation_importance(predict, frame, y, rmse, ["a", "b"], **kw)}
    assert plain["a"] > 0.5 and plain["b"] > 0.5
    even = (frame["group"] == 0).to_numpy(dtype=float)
    weighted = {c: m for c, m, _s in permutation_importance(predict, frame, y, rmse.weighted(even), ["a", "b"], **kw)}
    assert weighted["a"] > 0.5 and weighted["b"] == 0.0  # b only moves rows that weigh nothing


def test_the_stacker_fits_with_the_rows_weights() -> None:
    rng = np.random.default_rng(3)
    n = 400
    y = rng.normal(size=n)
    first = np.arange(n) < n // 2
    a = y + np.where(first, 0.05, 1.0) * rng.normal(size=n)  # member a knows the first half, b the second
    b = y + np.where(first, 1.0, 0.05) * rng.normal(size=n)
    # integer weights are duplicated rows
    w = np.where(first, 3.0, 1.0)
    dup = np.repeat(np.arange(n), w.astype(int))
    weighted = fit_stacker("regression", ["a", "b"], [a, b], y, n_classes=1, random_state=0, sample_weight=w)
    repeated = fit_stacker("regression", ["a", "b"], [a[dup], b[dup]], y[dup], n_classes=1, random_state=0)
    assert np.allclose(weighted.coef, repeated.coef) and np.allclose(weighted.intercept, repeated.intercept)
    # the search's stack: with the weights on one half, the member that knows that half gets the weight
    folds = make_folds(y, "regression", 5, 0)

    def member(name: str, oof: np.ndarray) -> CandidateResult:
        return CandidateResult(name, name, {}, oof=oof, holdout=None, n_iterations=[1] * 5, fit_seconds=1.0,
                               fold_scores=[get_metric("rmse").score(y[va], oof[va]) for _tr, va in folds])

    cands = [member("dummy", np.full(n, y.mean())), member("linear", a), member("knn", b)]
    shares = {}
    for side, weight in (("first", np.where(first, 1.0, 1e-3)), ("second", np.where(first, 1e-3, 1.0))):
        metric = get_metric("rmse").weighted(weight)
        choice = select_ensemble(cands[1:], cands, y, metric, folds, with_holdout=False, budget=Budget(None),
                                 metric_seconds=[], refit_reserve=lambda: 0.0, predict_limit=None, notes=[])
        stack = consider_stack(cands[1:], cands, choice, y, metric, folds, task="regression", n_classes=1,
                               mode="force", budget=Budget(None), keep=lambda: 0.0, refit_share=1.25,
                               predict_limit=None, random_state=0, notes=[])
        assert stack is not None
        shares[side] = stack.stacker.importance()
    assert shares["first"]["linear"] > 0.7 and shares["second"]["knn"] > 0.7
