"""Choosing a binary decision threshold: the rules, checked against a brute-force search with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from mlpilot.exceptions import InvalidParameterError
from mlpilot.tasks import ThresholdRule, choose_threshold, labels_at


@pytest.fixture(scope="module")
def scores() -> tuple[np.ndarray, np.ndarray]:
    """An imbalanced problem (15% positives) with overlapping, tied probabilities."""
    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.15).astype(int)
    p = np.clip(0.12 + 0.25 * y + rng.normal(0, 0.12, 600), 0, 1).round(3)
    return y, p


def _every_cut(p: np.ndarray) -> np.ndarray:
    return np.unique(p)  # "p >= u" for each distinct u covers every distinct labelling


def _counts(y: np.ndarray, predicted: np.ndarray) -> tuple[int, int, int, int]:
    """(tn, fp, fn, tp) of boolean predictions, counted row by row."""
    return (int(np.sum(~predicted & (y == 0))), int(np.sum(predicted & (y == 0))),
            int(np.sum(~predicted & (y == 1))), int(np.sum(predicted & (y == 1))))


def f1_score(y: np.ndarray, predicted: np.ndarray) -> float:
    _tn, fp, fn, tp = _counts(y, predicted)
    return 2 * tp / (2 * tp + fp + fn)


def balanced_accuracy_score(y: np.ndarray, predicted: np.ndarray) -> float:
    tn, fp, fn, tp = _counts(y, predicted)
    return (tp / (tp + fn) + tn / (tn + fp)) / 2


def precision_score(y: np.ndarray, predicted: np.ndarray) -> float:
    _tn, fp, _fn, tp = _counts(y, predicted)
    return tp / (tp + fp) if tp + fp else 0.0


def recall_score(y: np.ndarray, predicted: np.ndarray) -> float:
    _tn, _fp, fn, tp = _counts(y, predicted)
    return tp / (tp + fn)


def test_f1_and_balanced_accuracy_are_maximised(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    for name, score in (("f1", f1_score), ("balanced_accuracy", balanced_accuracy_score)):
        choice = choose_threshold(y, p, ThresholdRule.parse(name))
        best = max(score(y, p >= u) for u in _every_cut(p))
        assert score(y, p >= choice.threshold) == pytest.approx(best, abs=1e-12)
        assert choice.at_threshold[name] == pytest.approx(best, abs=1e-6)
        assert choice.at_half[name] == pytest.approx(score(y, p >= 0.5), abs=1e-6)
    assert choose_threshold(y, p, ThresholdRule("f1")).threshold < 0.5  # rare positives: below 0.5


def test_cost_ratio_minimises_the_cost(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores

    def cost(t: float) -> float:
        _tn, fp, fn, _tp = _counts(y, p >= t)
        return 5 * fn + fp

    choice = choose_threshold(y, p, ThresholdRule.parse("cost:5"))
    assert cost(choice.threshold) == min(cost(u) for u in [*_every_cut(p), 1.01])
    cheap = choose_threshold(y, p, ThresholdRule.parse("cost:1"))
    assert choice.threshold <= cheap.threshold  # dearer misses: more rows called positive


def test_precision_and_recall_targets(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    for target, other, goal in ((precision_score, recall_score, 0.6), (recall_score, precision_score, 0.8)):
        name = "precision" if target is precision_score else "recall"
        choice = choose_threshold(y, p, ThresholdRule.parse(f"{name}>={goal}"))
        assert choice.reached and target(y, p >= choice.threshold) >= goal
        best = max(other(y, p >= u) for u in _every_cut(p) if target(y, p >= u) >= goal)
        assert other(y, p >= choice.threshold) == pytest.approx(best, abs=1e-12)


def test_a_target_no_threshold_reaches_is_said() -> None:
    y = np.array([0, 1, 1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.2])  # the most confident row is a negative
    choice = choose_threshold(y, p, ThresholdRule.parse("precision>=0.9"))
    assert not choice.reached and "no threshold reaches precision>=0.9" in choice.note
    assert "highest precision is 0.6667" in choice.note and choice.threshold == pytest.approx(0.65)  # the closest


def test_labels_at_a_threshold_and_without_one() -> None:
    proba = np.array([[0.7, 0.3], [0.55, 0.45], [0.4, 0.6]])
    assert labels_at(np.array(["no", "yes"]), proba, 0.4).tolist() == ["no", "yes", "yes"]
    assert labels_at(np.array(["no", "yes"]), proba, None).tolist() == ["no", "no", "yes"]


@pytest.mark.parametrize("bad", ["f2", "cost:0", "cost:-1", "precision>=1.5", "recall>=", "precision>0.9", ""])
def test_bad_rules_are_refused_with_the_accepted_forms(bad: str) -> None:
    with pytest.raises(InvalidParameterError, match=r"Accepted: 'f1'.*'cost:R'.*'precision>=P'"):
        ThresholdRule.parse(bad)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True])
def test_a_fixed_threshold_must_be_a_probability(bad: float) -> None:
    with pytest.raises(InvalidParameterError, match="strictly between 0 and 1"):
        ThresholdRule.fixed(bad)


def test_label_metrics_score_the_labels_at_the_metric_threshold() -> None:
    from sklearn import metrics as skm

    from mlpilot.tasks import get_metric

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p1 = np.clip(0.35 * y + rng.uniform(0, 0.6, 400), 0, 1)
    proba = np.column_stack([1 - p1, p1])
    for threshold in (0.2, 0.42, 0.7):
        labels = (p1 >= threshold).astype(int)
        assert get_metric("f1").at(threshold)(y, proba) == pytest.approx(skm.f1_score(y, labels), abs=1e-12)
        assert get_metric("accuracy").at(threshold)(y, proba) == pytest.approx(skm.accuracy_score(y, labels))
        assert get_metric("balanced_accuracy").at(threshold)(y, proba) == pytest.approx(
            skm.balanced_accuracy_score(y, labels))
        # one metric scores two models at their own thresholds: one-hot rows of their labels
        assert get_metric("f1")(y, get_metric("f1").decided(proba, threshold)) == pytest.approx(
            skm.f1_score(y, labels))
    assert get_metric("f1")(y, proba) == pytest.approx(skm.f1_score(y, (p1 > 0.5).astype(int)))  # no threshold
    assert get_metric("roc_auc").at(0.3) is get_metric("roc_auc")  # scores probabilities: no threshold
    assert get_metric("log_loss").decided(proba, 0.3) is not None and np.array_equal(
        get_metric("log_loss").decided(proba, 0.3), proba)


def test_the_label_free_estimate_labels_at_the_threshold() -> None:
    from mlpilot.monitor._performance import estimate_metric, expected_confusion

    proba = np.column_stack([np.full(1000, 0.6), np.full(1000, 0.4)])  # calibrated: 40% positives
    draws = {"n_simulations": 60}
    assert estimate_metric(proba, "accuracy", **draws).value == pytest.approx(0.6, abs=0.02)  # 0.5: all negative
    assert estimate_metric(proba, "accuracy", threshold=0.3, **draws).value == pytest.approx(0.4, abs=0.02)
    assert estimate_metric(proba, "f1", **draws).value == 0.0
    assert estimate_metric(proba, "f1", threshold=0.3, **draws).value == pytest.approx(0.8 / 1.4, abs=0.02)
    np.testing.assert_allclose(expected_confusion(proba, 0.3), [[0, 600], [0, 400]])
