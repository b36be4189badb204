from __future__ import annotations

import numpy as np
import pytest

import mlpilot.evaluate as evaluate_pkg
from mlpilot.evaluate import bootstrap_ci, corrected_ttest, paired_bootstrap, permutation_importance
from mlpilot.tasks import get_metric


def test_exports() -> None:
    assert sorted(evaluate_pkg.__all__) == sorted(n for n in dir(evaluate_pkg) if not n.startswith("_") and n != "annotations")


def test_bootstrap_ci_contains_the_point_estimate() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    score = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)
    proba = np.column_stack([1 - score, score])
    metric = get_metric("roc_auc")
    lo, hi = bootstrap_ci(y, proba, metric, n_boot=300)
    assert lo < metric(y, proba) < hi
    assert hi - lo < 0.15


def test_paired_tests_detect_a_real_difference() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    good, bad = y + rng.normal(scale=0.1, size=500), y + rng.normal(scale=1.0, size=500)
    test = paired_bootstrap(y, good, bad, get_metric("rmse"), n_boot=300)
    assert test.significant and test.difference > 0
    same = paired_bootstrap(y, good, good + 1e-12, get_metric("rmse"), n_boot=100)
    assert not same.significant
    t = corrected_ttest([0.80, 0.81, 0.79, 0.80, 0.82], [0.80, 0.80, 0.80, 0.81, 0.81], n_train=80, n_test=20)
    assert not t.significant and t.to_dict()["method"].startswith("corrected")


def test_permutation_importance_ranks_the_signal() -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"signal": rng.normal(size=300), "noise": rng.normal(size=300)})
    y = frame["signal"].to_numpy() * 3

    def predict(f: pd.DataFrame) -> np.ndarray:
        return f["signal"].to_numpy() * 3

    result = permutation_importance(predict, frame, y, get_metric("rmse"), ["noise", "signal"])
    assert result[0][0] == "signal" and result[0][1] > 1 and result[1][1] == pytest.approx(0)
