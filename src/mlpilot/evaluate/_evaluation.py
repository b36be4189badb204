"""Scoring the search on the holdout: leaderboard, intervals and paired tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.evaluate._stats import (
    PairedTest,
    bootstrap_ci,
    corrected_ttest,
    metric_value,
    paired_bootstrap,
    paired_verdict,
)
from mlpilot.search import SearchResult
from mlpilot.tasks import Metric, get_metric, metric_names
from mlpilot.tune._stats import _resolve_seed

ENSEMBLE = "ensemble"


@dataclass
class Evaluation:
    """What the holdout says about the search's candidates and its ensemble.

    ``leaderboard`` rows are plain dicts (JSON-ready), best first; ``tests``
    compares the champion with the runner-up and with the dummy baseline.
    """

    metric: str
    greater_is_better: bool
    champion: str
    leaderboard: list[dict[str, Any]]
    tests: dict[str, dict[str, Any]]
    metrics: dict[str, Any]
    holdout_prediction: np.ndarray | None = None
    importance: list[tuple[str, float, float]] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.leaderboard)


def _value(metric: Metric, score: float) -> float:
    return score if metric.greater_is_better else -score


def evaluate_search(
    result: SearchResult,
    y_dev: np.ndarray,
    y_holdout: np.ndarray | None,
    *,
    task: str,
    metric: Metric,
    random_state: int = 0,
    n_boot: int = 1000,
    n_boot_others: int = 100,
    seed: int | None = None,
    threshold: float | None = None,
    stop: Callable[[], bool] | None = None,
) -> Evaluation:
    """Build the leaderboard and the champion's tests from a `SearchResult`.

    The champion is the ensemble (or the single model it reduces to). Its CV
    fold scores are compared with the runner-up's and the dummy's by the
    corrected resampled t-test, and its holdout predictions by a paired bootstrap.
    ``n_boot`` resamples give the champion's interval and tests, ``n_boot_others``
    every other candidate's interval (the caller scales both to the time left).
    ``random_state`` seeds the resamples (``seed`` is its deprecated former name).
    ``threshold``: the registered binary model's decision threshold; the champion's
    holdout label metrics (accuracy, F1, ...) score the labels it serves at it, and
    the other candidates, which have none, label at 0.5. Cross-validated scores stay
    at 0.5: the threshold is chosen on those out-of-fold predictions.
    ``stop`` (the time budget) is asked by every bootstrap between resamples: once
    it says True, each interval and test keeps the resamples it has (at least
    `mlpilot.tune._stats.MIN_BOOT_ROUNDS`).
    """
    seed = _resolve_seed(random_state, seed, "evaluate_search")
    n = len(y_dev)
    k = len(result.folds)
    n_test = n // k
    n_train = n - n_test
    rows: list[dict[str, Any]] = []
    members = result.weights
    single = len(members) == 1
    champion = next(iter(members)) if single else ENSEMBLE
    candidates = {c.name: c for c in result.candidates}

    def row(name: str, family: str, fold_scores: list[float], holdout: np.ndarray | None,
            status: str, seconds: float, note: str, boot: int) -> dict[str, Any]:
        scored = metric.at(threshold) if name == champion else metric
        entry: dict[str, Any] = {
            "name": name,
            "family": family,
            "status": status,
            f"cv_{metric.name}": _value(metric, float(np.mean(fold_scores))) if fold_scores else None,
            "cv_std": float(np.std(fold_scores, ddof=1)) if len(fold_scores) > 1 else None,
            f"holdout_{metric.name}": None,
            "holdout_ci": None,
            "weight": float(members.get(name, 1.0 if name == ENSEMBLE else 0.0)),
            "fit_seconds": round(seconds, 2),
            "note": note,
        }
        if holdout is not None and y_holdout is not None and len(y_holdout):
            entry[f"holdout_{metric.name}"] = scored(y_holdout, holdout)
            lo, hi = bootstrap_ci(y_holdout, holdout, scored, n_boot=boot, random_state=seed, stop=stop)
            entry["holdout_ci"] = [lo, hi]
        return entry

    if not single:
        family, note = result.ensemble_label()
        rows.append(row(ENSEMBLE, family, result.ensemble_fold_scores, result.ensemble_holdout, "ok",
                        sum(candidates[m].fit_seconds for m in members), note, n_boot))
    alternative = result.alternative()  # the stack or greedy ensemble not chosen, with the decision
    if alternative is not None:
        name, family, scores, hold, note = alternative
        rows.append(row(name, family, scores, hold, "not chosen", 0.0, note, n_boot_others))
    for c in result.candidates:
        boot = n_boot if c.name == champion else n_boot_others
        rows.append(row(c.name, c.family, c.fold_scores, c.holdout, c.status, c.fit_seconds, c.note, boot))
    key = f"cv_{metric.name}"

    def order(r: dict[str, Any]) -> tuple[int, float]:
        v = r[key]
        if v is None or not np.isfinite(v):
            return (1, 0.0)
        return (0, -v if metric.greater_is_better else v)

    rows.sort(key=order)
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
        r["champion"] = r["name"] == champion

    # the champion's predictions and fold scores
    if single:
        champ = candidates[champion]
        champ_folds, champ_hold = champ.fold_scores, champ.holdout
    else:
        champ_folds, champ_hold = result.ensemble_fold_scores, result.ensemble_holdout
    runner = max(
        (c for c in result.candidates if c.usable and c.family != "dummy" and c.name != champion),
        key=lambda c: c.cv_mean, default=None,
    )
    dummy = candidates.get("dummy")
    tests: dict[str, dict[str, Any]] = {}
    for label, other in (("runner_up", runner), ("dummy", dummy)):
        if other is None or not other.fold_scores:
            continue
        entry: dict[str, Any] = {"against": other.name}
        cv: PairedTest = corrected_ttest(champ_folds, other.fold_scores, n_train=n_train, n_test=n_test)
        entry["cv"] = cv.to_dict()
        if champ_hold is not None and other.holdout is not None and y_holdout is not None:
            entry["holdout"] = paired_bootstrap(  # each model's labels at its own threshold
                y_holdout, metric.decided(champ_hold, threshold), metric.decided(other.holdout, None), metric,
                n_boot=n_boot, random_state=seed, stop=stop,
            ).to_dict()
        entry["significant"], entry["verdict"] = paired_verdict(entry)
        tests[label] = entry

    metrics: dict[str, Any] = {f"cv_{metric.name}": _value(metric, float(np.mean(champ_folds))),
                               f"cv_{metric.name}_std": float(np.std(champ_folds, ddof=1)) if k > 1 else 0.0}
    if champ_hold is not None and y_holdout is not None:
        champ_row = next(r for r in rows if r["name"] == champion)
        metrics[f"holdout_{metric.name}"] = champ_row[f"holdout_{metric.name}"]
        metrics[f"holdout_{metric.name}_ci"] = champ_row["holdout_ci"]
        for name in metric_names(task):
            if name == metric.name:
                continue
            other_metric = get_metric(name).at(threshold)
            try:
                metrics[f"holdout_{name}"] = other_metric(y_holdout, champ_hold)
            except ValueError:
                continue
    metrics = {k2: (None if isinstance(v, float) and not np.isfinite(v) else v) for k2, v in metrics.items()}
    return Evaluation(
        metric=metric.name,
        greater_is_better=metric.greater_is_better,
        champion=champion,
        leaderboard=rows,
        tests=tests,
        metrics=metrics,
        holdout_prediction=champ_hold,
    )


def bootstrap_call_seconds(metric: Metric, y: np.ndarray, task: str, n_classes: int, *,
                           clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of one bootstrap resample's metric call on ``y``-sized predictions (fastest of three).

    The evaluation's cost is this times its resamples, so the caller can
    scale the resamples to the time it has. Timed on ``clock``: the run's
    budget clock, so that the scaling is decided on the clock of the deadline.
    """
    if not len(y):
        return 0.0
    rng = np.random.default_rng(0)
    if task == "regression":
        pred: np.ndarray = rng.normal(size=len(y))
    else:
        pred = rng.random((len(y), n_classes))
        pred /= pred.sum(axis=1, keepdims=True)
    times = []
    for _ in range(3):  # the first call may pay for lazy imports
        t0 = clock()
        try:
            metric_value(metric, y, pred)
        except ValueError:
            return 0.0
        times.append(clock() - t0)
    return min(times)


def permutation_importance(
    predict: Callable[[pd.DataFrame], np.ndarray],
    frame: pd.DataFrame,
    y: np.ndarray,
    metric: Metric,
    columns: list[str],
    *,
    n_repeats: int = 3,
    random_state: int = 0,
    max_rows: int = 1000,
    time_limit: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
    seed: int | None = None,
) -> list[tuple[str, float, float]]:
    """Drop in score when each raw column is shuffled: ``(column, mean, std)``, largest first.

    Stops early (returning the columns done so far) when ``time_limit`` seconds
    pass on ``clock`` (the run's budget clock; not read without a limit).
    ``random_state`` seeds the row sample and the shuffles (``seed``: its deprecated former name).
    A weighted ``metric`` (`Metric.weighted`, one weight per row of ``frame``)
    counts each row by its weight, on the sampled rows too.
    """
    start = clock() if time_limit is not None else 0.0
    rng = np.random.default_rng(_resolve_seed(random_state, seed, "permutation_importance"))
    if len(frame) > max_rows:
        idx = rng.choice(len(frame), max_rows, replace=False)
        frame, y, metric = frame.iloc[idx], y[idx], metric.on(idx)
    frame = frame.reset_index(drop=True)
    base = metric.score(y, predict(frame))
    out: list[tuple[str, float, float]] = []
    for col in columns:
        if time_limit is not None and clock() - start > time_limit:
            break
        drops = []
        for _ in range(n_repeats):
            shuffled = frame.copy()
            shuffled[col] = frame[col].to_numpy()[rng.permutation(len(frame))]
            drops.append(base - metric.score(y, predict(shuffled)))
        out.append((col, float(np.mean(drops)), float(np.std(drops))))
    return sorted(out, key=lambda t: -t[1])
