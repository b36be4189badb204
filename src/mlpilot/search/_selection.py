"""Ensemble selection: greedy weights over the candidates' out-of-fold predictions, then pruning.

Members that add all but nothing go, and, with a clock (or a predict limit),
members whose predict time is out of proportion to what they add; a blend
that wins on pooled out-of-fold rows but not fold by fold gives way to the
best single model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlpilot.search._candidates import CandidateResult
from mlpilot.search._ensemble import (
    blend_score,
    caruana_weights,
    prune_for_speed,
    prune_weights,
    selection_calls,
)
from mlpilot.tasks import Metric
from mlpilot.tune import Budget

logger = logging.getLogger(__name__)

# Share of the ensemble's out-of-fold gain over the dummy baseline that pruning
# members may give up: members that are all but redundant go, any that measurably
# help stay (on the benchmark tables, 1e-3 already cost test score).
PRUNE_TOLERANCE = 1e-4
# Share of that gain the ensemble may give up to drop members by what they cost at predict
# time, in proportion to the share of the ensemble's predict time each one takes (only with
# a clock: times are measured, so the choice would not be reproducible in deterministic mode).
SPEED_TOLERANCE = 2e-3
# Ensembles cheaper than this (seconds per row, learners only) are not worth much accuracy
# to make cheaper still: cost shares are taken of at least this much.
SPEED_FLOOR = 20e-6


@dataclass(frozen=True)
class EnsembleChoice:
    """The chosen weights (by candidate name) and the ensemble's predictions and fold scores."""

    weights: dict[str, float]
    oof: np.ndarray
    holdout: np.ndarray | None
    fold_scores: list[float]
    seconds: float


def select_ensemble(
    usable: list[CandidateResult],
    candidates: list[CandidateResult],
    y: np.ndarray,
    metric: Metric,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    with_holdout: bool,
    budget: Budget,
    metric_seconds: list[float],
    refit_reserve: Callable[[], float],
    predict_limit: float | None,
    notes: list[str],
) -> EnsembleChoice:
    """Weights over ``usable`` (greedy selection, pruning within tolerance, then for predict speed).

    ``candidates`` are all of the search's (the dummy baseline among them
    scales the tolerances); pruning is skipped, with a note, when its expected
    metric calls (``metric_seconds`` each) do not fit ``budget`` after
    ``refit_reserve()``. Notes are appended to ``notes``.
    """
    clock = budget.timed
    t_ensemble = time.perf_counter()
    predictions: list[np.ndarray] = [c.oof for c in usable]  # type: ignore[misc]
    weights_arr = caruana_weights(predictions, y, metric)
    dummy = next((c for c in candidates if c.family == "dummy" and c.usable), None)
    prune = dummy is not None and np.count_nonzero(weights_arr) > 1
    if prune and clock:
        members = int(np.count_nonzero(weights_arr))
        calls = selection_calls(len(usable), n_members=members) - selection_calls(len(usable), n_members=1)
        expected = float(np.median(metric_seconds)) * calls if metric_seconds else 0.0
        if not budget.fits(expected, keep=refit_reserve()):
            prune = False
            notes.append(
                f"ensemble pruning skipped: expected {expected:.2f}s ({calls} metric calls), "
                f"{max(budget.left() - refit_reserve(), 0.0):.2f}s left after {refit_reserve():.2f}s kept for the refit"
            )
    if prune and dummy is not None:
        gain = abs(blend_score(predictions, y, metric, weights_arr) - metric.score(y, dummy.oof))  # type: ignore[arg-type]
        pruned = prune_weights(predictions, y, metric, weights_arr, tolerance=PRUNE_TOLERANCE * gain)
        dropped = [c.name for c, w, p in zip(usable, weights_arr, pruned, strict=True) if w > 0 and p == 0]
        if dropped:
            logger.info("pruned ensemble members %s (out-of-fold loss within %.2g)", dropped, PRUNE_TOLERANCE * gain)
        weights_arr = pruned
        if clock or predict_limit is not None:
            costs = np.array([c.predict_cost for c in usable])
            faster = prune_for_speed(predictions, y, metric, weights_arr, costs,
                                     allowance=SPEED_TOLERANCE * gain if clock else 0.0, floor=SPEED_FLOOR,
                                     limit=predict_limit)
            dropped = [c.name for c, w, p in zip(usable, weights_arr, faster, strict=True) if w > 0 and p == 0]
            if dropped:

                def shown(w: np.ndarray) -> float:
                    value = blend_score(predictions, y, metric, w)
                    return value if metric.greater_is_better else -value

                notes.append(
                    f"Dropped ensemble member(s) {', '.join(dropped)} for predict speed: "
                    f"{costs[weights_arr > 0].sum() * 1e6:.0f} -> {costs[faster > 0].sum() * 1e6:.0f} ms "
                    f"per 1,000 rows (learners), out-of-fold {metric.name} "
                    f"{shown(weights_arr):.5g} -> {shown(faster):.5g}."
                )
            weights_arr = faster
    best_single = int(np.argmax([c.cv_mean for c in usable]))
    blend = sum(w * usable[i].oof for i, w in enumerate(weights_arr) if w > 0)  # type: ignore[operator]
    blend_cv = float(np.mean([metric.on(va).score(y[va], np.asarray(blend)[va]) for _tr, va in folds]))
    if blend_cv < usable[best_single].cv_mean:
        # the blend wins on pooled out-of-fold rows but not fold by fold: keep the single model
        weights_arr = np.zeros(len(usable))
        weights_arr[best_single] = 1.0
    weights = {c.name: float(w) for c, w in zip(usable, weights_arr, strict=True) if w > 0}
    ens_oof = sum(w * usable[i].oof for i, w in enumerate(weights_arr) if w > 0)  # type: ignore[operator]
    ens_hold = None
    if with_holdout:
        ens_hold = sum(w * usable[i].holdout for i, w in enumerate(weights_arr) if w > 0)  # type: ignore[operator]
    ens_fold_scores = [metric.on(va).score(y[va], np.asarray(ens_oof)[va]) for _tr, va in folds]
    ensemble_seconds = time.perf_counter() - t_ensemble
    return EnsembleChoice(weights, np.asarray(ens_oof), None if ens_hold is None else np.asarray(ens_hold),
                          ens_fold_scores, ensemble_seconds)
