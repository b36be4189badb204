"""Decision thresholds for binary classifiers: the rule, the choice and the labels.

A binary model predicts the positive class (the second of its classes) for a
row whose positive-class probability is at least the threshold, as
scikit-learn's ``FixedThresholdClassifier`` does. `choose_threshold` picks the
threshold a `ThresholdRule` prefers on out-of-fold probabilities; every
candidate lies halfway between two neighbouring distinct probabilities, so a
small change in a probability does not move a row across it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlpilot.exceptions import InvalidParameterError

THRESHOLD_METRICS = ("f1", "balanced_accuracy", "cost:R", "precision>=P", "recall>=R")
_COST = re.compile(r"^cost:(\d+(?:\.\d+)?)$")
_TARGET = re.compile(r"^(precision|recall)>=(0?\.\d+|1(?:\.0*)?|0)$")


@dataclass(frozen=True)
class ThresholdRule:
    """What a threshold is chosen to do.

    Attributes
    ----------
    kind : {"f1", "balanced_accuracy", "cost", "precision", "recall", "fixed"}
        ``cost``: the least ``ratio * FN + FP``; ``precision`` / ``recall``: the
        most of the other one among thresholds that reach ``value``; ``fixed``:
        ``value`` itself.
    value : float, optional
        The cost ratio (a false negative costs ``value`` false positives), the
        target precision or recall, or the fixed threshold.
    """

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> ThresholdRule:
        """A rule from its name: ``f1``, ``balanced_accuracy``, ``cost:5``, ``precision>=0.9``, ``recall>=0.8``.

        Examples
        --------
        >>> ThresholdRule.parse("cost:5"), ThresholdRule.parse(" Precision >= 0.9 ").describe()
        (ThresholdRule(kind='cost', value=5.0), 'precision>=0.9')
        """
        spec = re.sub(r"\s+", "", str(text)).lower()
        if spec in ("f1", "balanced_accuracy"):
            return cls(spec)
        cost = _COST.match(spec)
        if cost:
            ratio = float(cost.group(1))
            if ratio > 0:
                return cls("cost", ratio)
        target = _TARGET.match(spec)
        if target:
            goal = float(target.group(2))
            if 0 < goal <= 1:
                return cls(target.group(1), goal)
        raise InvalidParameterError(
            f"Unknown threshold metric {text!r}. Accepted: 'f1' (default), 'balanced_accuracy', 'cost:R' "
            "(a false negative costs R > 0 false positives, e.g. 'cost:5'), 'precision>=P' or 'recall>=R' "
            "(a target in (0, 1], e.g. 'precision>=0.9'); or fix the threshold with --threshold 0.3."
        )

    @classmethod
    def fixed(cls, threshold: float) -> ThresholdRule:
        """A threshold given by the user; refused outside (0, 1)."""
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < float(threshold) < 1:
            raise InvalidParameterError(
                f"The decision threshold must be a probability strictly between 0 and 1 (e.g. 0.3). Got {threshold!r}."
            )
        return cls("fixed", float(threshold))

    def describe(self) -> str:
        """The rule as it is written on the command line."""
        if self.kind == "cost":
            return f"cost:{self.value:g}"
        if self.kind in ("precision", "recall"):
            return f"{self.kind}>={self.value:g}"
        if self.kind == "fixed":
            return f"fixed {self.value:g}"
        return self.kind

    @property
    def measure(self) -> str:
        """The name of the number the rule optimises (what its evidence reports)."""
        return {"cost": "cost_per_row", "precision": "recall", "recall": "precision",
                "fixed": "f1"}.get(self.kind, self.kind)


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold with the numbers it was chosen on.

    ``at_threshold`` and ``at_half`` hold the rule's measure, precision, recall
    and F1 on the rows it was chosen on, at the threshold and at 0.5;
    ``reached`` is False when a precision or recall target was not met
    anywhere (``note`` says so).
    """

    threshold: float
    rule: ThresholdRule
    n_rows: int
    at_threshold: dict[str, float]
    at_half: dict[str, float]
    reached: bool = True
    note: str = ""
    measure: str = ""  # what was optimised (default: the rule's measure; ``f1_negative_class``, see `choose_threshold`)

    def __post_init__(self) -> None:
        if not self.measure:
            object.__setattr__(self, "measure", self.rule.measure)

    def to_dict(self) -> dict[str, Any]:
        """The choice as the model card and the registry record it (JSON-ready)."""
        return {"value": self.threshold, "rule": self.rule.describe(), "measure": self.measure,
                "reached": self.reached, "note": self.note,
                "oof": {"n_rows": self.n_rows, "at_threshold": self.at_threshold, "at_0.5": self.at_half}}


def _counts(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The weight of true and of false positives at each threshold (positive where ``p >= t``)."""
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    total = np.concatenate([[0.0], np.cumsum(w[order])])
    positive = np.concatenate([[0.0], np.cumsum(np.where(y[order] == 1, w[order], 0.0))])
    below = np.searchsorted(ranked, thresholds, side="left")  # rows under each threshold
    tp = positive[-1] - positive[below]
    return tp, (total[-1] - total[below]) - tp


def _ratio(top: np.ndarray | float, bottom: np.ndarray | float) -> np.ndarray:
    """``top / bottom``, 0 where ``bottom`` is 0."""
    top, bottom = np.broadcast_arrays(np.asarray(top, dtype=float), np.asarray(bottom, dtype=float))
    return np.divide(top, bottom, out=np.zeros(top.shape), where=bottom > 0)


def _measures(tp: np.ndarray, fp: np.ndarray, n_pos: float, n_neg: float, rule: ThresholdRule) -> dict[str, np.ndarray]:
    fn = n_pos - tp
    tn = n_neg - fp
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, n_pos)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    balanced = (recall + _ratio(tn, n_neg)) / 2
    out = {"precision": precision, "recall": recall, "f1": f1, "balanced_accuracy": balanced,
           "f1_negative_class": _ratio(2 * tn, 2 * tn + fn + fp)}  # F1 with the labels swapped
    if rule.kind == "cost":
        out["cost_per_row"] = _ratio(float(rule.value or 0) * fn + fp, n_pos + n_neg)
    return out


def _at(measures: dict[str, np.ndarray], i: int, measure: str) -> dict[str, float]:
    keys = dict.fromkeys([measure, "precision", "recall", "f1"])
    return {k: round(float(measures[k][i]), 6) for k in keys}


def choose_threshold(y: Any, p: Any, rule: ThresholdRule, *, sample_weight: Any = None) -> ThresholdChoice:
    """The threshold ``rule`` prefers for labels ``y`` (0/1) and positive-class probabilities ``p``.

    Candidates are 0 (every row positive) and the midpoints between
    neighbouring distinct values of ``p``; ties go to the highest candidate.
    With ``sample_weight`` every count (true and false positives, the cost)
    is a sum of the rows' weights, as the weighted metrics count them, and
    rows of weight zero are left out.
    ``f1`` is the F1 of the rarer class: of the negative class (labels
    swapped, ``measure`` ``f1_negative_class``) where positive rows weigh
    more than negative ones. A precision or recall target no candidate reaches gives the candidate
    closest to it, with ``reached=False``. Deterministic: the same rows give
    the same threshold.

    Examples
    --------
    >>> y = np.array([0, 0, 1, 0, 1, 1])
    >>> p = np.array([0.1, 0.3, 0.35, 0.4, 0.7, 0.9])
    >>> choice = choose_threshold(y, p, ThresholdRule("f1"))
    >>> round(choice.threshold, 3), choice.at_threshold["f1"], choice.at_half["f1"]
    (0.325, 0.857143, 0.8)
    >>> majority = choose_threshold(1 - y[:5], 1 - p[:5], ThresholdRule("f1"))  # 3 positives of 5
    >>> majority.measure, round(majority.threshold, 3), majority.at_threshold["f1_negative_class"]
    ('f1_negative_class', 0.675, 0.8)
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    if len(y) != len(p) or not len(y):
        raise InvalidParameterError(f"choose_threshold needs one probability per label; got {len(p)} and {len(y)}.")
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    if len(w) != len(y):
        raise InvalidParameterError(f"choose_threshold needs one weight per label; got {len(w)} and {len(y)}.")
    if sample_weight is not None:  # a row of weight zero is a row left out: its probability is no candidate
        counted = w > 0
        if not counted.any():
            raise InvalidParameterError("choose_threshold got only rows of weight zero; at least one row must count.")
        y, p, w = y[counted], p[counted], w[counted]
    n_pos = float(w[y == 1].sum())
    n_neg = float(w.sum()) - n_pos
    values = np.unique(p)
    candidates = np.concatenate([[0.0], (values[:-1] + values[1:]) / 2])[::-1]  # highest first
    if rule.kind == "fixed":
        candidates = np.array([float(rule.value or 0.5)])
    tp, fp = _counts(y, p, np.concatenate([candidates, [0.5]]), w)
    measures = _measures(tp, fp, n_pos, n_neg, rule)
    # F1 is the rarer class's: where the positive class is the majority (``good`` of ``bad``/``good``),
    # its own F1 is highest with every row positive, and the labels would tell nothing
    measure = "f1_negative_class" if rule.kind == "f1" and n_pos > n_neg else rule.measure
    half = len(candidates)
    chosen = {k: v[:half] for k, v in measures.items()}
    reached, note = True, ""
    if rule.kind == "fixed":
        best = 0
    elif rule.kind == "cost":
        best = int(np.argmin(chosen["cost_per_row"]))
    elif rule.kind in ("precision", "recall"):
        target, other = rule.kind, rule.measure
        ok = chosen[target] >= float(rule.value or 0) - 1e-12
        if ok.any():
            best = int(np.argmax(np.where(ok, chosen[other], -1.0)))
        else:
            reached = False
            best = int(np.lexsort((-chosen[other], -chosen[target]))[0])
            note = (f"no threshold reaches {rule.describe()} on these {len(y)} rows: the highest {target} is "
                    f"{chosen[target][best]:.4g}; the threshold with it was chosen")
    else:
        best = int(np.argmax(chosen[measure]))
    return ThresholdChoice(
        threshold=round(float(candidates[best]), 12), rule=rule, n_rows=len(y), measure=measure,
        at_threshold=_at(measures, best, measure), at_half=_at(measures, half, measure), reached=reached, note=note,
    )


def labels_at(classes: Any, proba: Any, threshold: float | None) -> np.ndarray:
    """Labels from class probabilities: the positive class where its probability is at least ``threshold``.

    ``threshold=None``, or more than two classes, gives the class of highest
    probability (the first of ties), as before thresholds existed.

    Examples
    --------
    >>> labels_at(np.array(["no", "yes"]), np.array([[0.7, 0.3], [0.6, 0.4]]), 0.35).tolist()
    ['no', 'yes']
    """
    classes = np.asarray(classes)
    proba = np.asarray(proba)
    if threshold is None or proba.ndim != 2 or proba.shape[1] != 2:
        return classes[np.argmax(proba, axis=1)]
    return classes[(proba[:, 1] >= threshold).astype(int)]


def holdout_summary(y: Any, p: Any, threshold: float) -> dict[str, Any]:
    """The confusion matrix, precision, recall and F1 of ``p >= threshold`` against ``y`` (0/1)."""
    y = np.asarray(y).astype(int)
    predicted = np.asarray(p, dtype=float) >= threshold
    tp = int((predicted & (y == 1)).sum())
    fp = int((predicted & (y == 0)).sum())
    fn = int((~predicted & (y == 1)).sum())
    tn = int((~predicted & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"threshold": threshold, "n_rows": len(y), "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
            "precision": round(precision, 6), "recall": round(recall, 6), "f1": round(f1, 6)}
