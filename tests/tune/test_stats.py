"""The one set of per-row statistics: intervals and paired tests on values, predictions and folds."""

from __future__ import annotations

import numpy as np
import pytest

import mlpilot.evaluate
import mlpilot.recommend
from mlpilot.tasks import get_metric
from mlpilot.tune import PairedTest, bootstrap_ci, paired_bootstrap, paired_test


def test_every_stage_shares_one_set() -> None:
    for name in ("PairedTest", "bootstrap_ci", "paired_test"):
        assert getattr(mlpilot.recommend, name) is getattr(mlpilot.evaluate, name)
    assert mlpilot.evaluate.paired_bootstrap is paired_bootstrap


def test_values_and_predictions_give_the_same_interval_of_the_same_quantity() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=800)
    pred = y + rng.normal(scale=0.5, size=800)
    errors = np.abs(y - pred)  # MAE is the mean of per-row absolute errors
    by_values = bootstrap_ci(errors, n_boot=400)
    by_predictions = bootstrap_ci(y, pred, get_metric("mae"), n_boot=400)
    assert by_values[0] < errors.mean() < by_values[1]
    assert by_values == pytest.approx(by_predictions, abs=0.01)
    assert bootstrap_ci(errors, n_boot=400, random_state=3) == bootstrap_ci(errors, n_boot=400, random_state=3)
    assert bootstrap_ci(np.array([])) != bootstrap_ci(np.array([]))  # NaN: no rows, no interval


def test_per_row_and_per_prediction_tests_agree_on_the_direction() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=400)
    good, bad = y + rng.normal(scale=0.3, size=400), y + rng.normal(scale=0.6, size=400)
    # per-row values, greater is better: negative absolute errors
    rows = paired_test(-np.abs(y - good), -np.abs(y - bad), metric="neg_abs_error")
    predictions = paired_bootstrap(y, good, bad, get_metric("mae"), n_boot=300)
    assert rows.significant and predictions.significant
    assert rows.difference > 0 and predictions.difference > 0
    assert rows.ci_low > 0 and rows.n_rows == 400 and rows.mean_difference == rows.difference
    assert predictions.difference == pytest.approx(rows.difference)  # the same mean difference
    same = paired_test(-np.abs(y - good), -np.abs(y - good))
    assert same.p_value == 1.0 and not same.significant


def test_records_keep_their_shapes() -> None:
    test = PairedTest("m", 0.5, 0.01, True, "ndcg@10", 0.1, 0.9, 7)
    assert test.to_dict() == {"method": "m", "difference": 0.5, "p_value": 0.01, "significant": True}
    assert test.as_dict() == {"metric": "ndcg@10", "mean_difference": 0.5, "ci_low": 0.1, "ci_high": 0.9,
                              "p_value": 0.01, "n_users": 7}


def test_bad_calls_are_refused() -> None:
    y = np.arange(10.0)
    with pytest.raises(TypeError, match="either per-row values alone"):
        bootstrap_ci(y, y)
    with pytest.warns(FutureWarning, match="random_state"):
        old = bootstrap_ci(y, y + 1, get_metric("mae"), n_boot=20, seed=4)
    assert old == bootstrap_ci(y, y + 1, get_metric("mae"), n_boot=20, random_state=4)
