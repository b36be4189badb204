"""Spending a time budget over candidate models, cross-validated, then ensembling.

The search sees only the development rows; holdout rows are predicted by
each fold model (never used to choose anything), so the evaluation stage can
score every candidate and the ensemble without refitting.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from mlpilot.exceptions import BudgetWarning, TrainingError
from mlpilot.features import TabularPreprocessor
from mlpilot.search._ensemble import (
    blend_score,
    caruana_weights,
    prune_for_speed,
    prune_weights,
    selection_calls,
)
from mlpilot.search._learners import FAMILIES, Learner, guarded_by_caller
from mlpilot.search._tuner import Tuner
from mlpilot.tasks import Metric
from mlpilot.tune import Budget
from mlpilot.tune._budget import (
    BOOSTED_REFIT,
    BOOSTED_REFIT_CUT,
    FIRST_MODEL_SHARE,
    INTERRUPTIBLE_SHARE,
    REFIT_FLOOR_SHARE,
    RESERVE_GAP,
    RUNNER_UP_REFIT_SHARE,
    TRIAL_SHARE,
    UNINTERRUPTIBLE_SHARE,
)

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

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
class SearchConfig:
    """How the search spends its budget.

    Parameters
    ----------
    budget : Budget
        The search's share of the run's time: it ends (ensembling included)
        with time left for the refit it keeps back itself. A budget without a
        clock (the default) means deterministic mode.
    n_trials : int
        Tuner trials after the portfolio in deterministic mode.
    n_folds : int or None
        Cross-validation folds; chosen from the data size when None.
    families : tuple of str or None
        Families allowed (all when None).
    seed : int
    n_jobs : int
    memory_limit : int or None
        Bytes a candidate may use; larger estimated ones are skipped.
    predict_limit : float or None
        Seconds per predicted row the ensemble's learners may take, as measured
        on the validation folds; slower candidates are left out of the ensemble.
    refit_share : float
        Size of the final refit data relative to the development rows.
    """

    budget: Budget = field(default_factory=lambda: Budget(None))
    n_trials: int = 10
    n_folds: int | None = None
    families: tuple[str, ...] | None = None
    seed: int = 0
    n_jobs: int = 2
    memory_limit: int | None = None
    predict_limit: float | None = None
    refit_share: float = 1.25


@dataclass
class CandidateResult:
    """One candidate's cross-validation: scores, out-of-fold and holdout predictions."""

    name: str
    family: str
    params: dict[str, Any]
    status: str = "ok"  # ok, skipped, failed, timeout
    note: str = ""
    oof: np.ndarray | None = None
    holdout: np.ndarray | None = None
    fold_scores: list[float] = field(default_factory=list)
    fit_seconds: float = 0.0  # wall clock of the whole cross-validation
    work_seconds: float = 0.0  # the folds' own times added up: what one fit costs, n_folds times
    n_iterations: list[int] = field(default_factory=list)
    predict_seconds: float = 0.0  # measured on the validation folds
    predict_rows: int = 0
    cut_by_deadline: bool = False  # a fold's fit was stopped at its deadline, not by early stopping
    workers: int = 1  # folds fitted side by side

    def fold_seconds(self) -> float:
        """Seconds one fold's fit would take alone, from the cross-validation's schedule.

        Folds fitted side by side share the cores (and, on a busy machine, wait
        for them), so each one's own time overstates a fit that runs alone, like
        the refit: the wall time of a wave of side-by-side folds bounds it too.
        """
        n_folds = max(len(self.n_iterations), 1)
        own = self.work_seconds / n_folds
        if self.workers <= 1:
            return own
        waves = math.ceil(n_folds / self.workers)
        return min(own, self.fit_seconds / waves)

    @property
    def predict_cost(self) -> float:
        """Measured seconds per predicted row (preprocessing excluded: members share it)."""
        return self.predict_seconds / self.predict_rows if self.predict_rows else 0.0

    @property
    def usable(self) -> bool:
        return self.status == "ok" and self.oof is not None

    @property
    def cv_mean(self) -> float:
        return float(np.mean(self.fold_scores)) if self.fold_scores else float("nan")

    @property
    def cv_std(self) -> float:
        return float(np.std(self.fold_scores, ddof=1)) if len(self.fold_scores) > 1 else 0.0

    def refit_params(self) -> dict[str, Any]:
        """Parameters for the final fit: boosting rounds from early stopping."""
        params = dict(self.params)
        if FAMILIES[self.family].boosted and self.n_iterations:
            params["n_estimators"] = max(10, math.ceil(float(np.mean(self.n_iterations)) * 1.1))
        return params


@dataclass
class SearchResult:
    """Everything the search learned, for evaluation and the final refit."""

    candidates: list[CandidateResult]
    folds: list[tuple[np.ndarray, np.ndarray]]
    weights: dict[str, float]
    ensemble_oof: np.ndarray
    ensemble_holdout: np.ndarray | None
    ensemble_fold_scores: list[float]
    notes: list[str]
    seconds: float
    ensemble_seconds: float = 0.0  # ensemble selection and pruning, within ``seconds``
    refit_reserve: float = 0.0  # seconds the search kept back for the final refit (clock mode)
    refused: list[str] = field(default_factory=list)  # candidates not started to keep the budget

    def budget_summary(self) -> str | None:
        """One line for the candidates refused to keep the budget: how many, and the rule (None if none).

        Each refusal's own numbers stay in its candidate's note and the run's notes.
        """
        if not self.refused:
            return None
        shown = ", ".join(self.refused[:3]) + (f" and {len(self.refused) - 3} more" if len(self.refused) > 3 else "")
        return (
            f"{len(self.refused)} candidate(s) were not started to keep the time budget ({shown}): a candidate "
            "starts only while its expected time fits what is left once the refit and ensemble selection are "
            f"provided for (all of it if it stops itself at a deadline, {UNINTERRUPTIBLE_SHARE:.0%} if it cannot "
            "be interrupted); each one's numbers are in its leaderboard note."
        )

    def candidate(self, name: str) -> CandidateResult:
        return next(c for c in self.candidates if c.name == name)

    def with_weights(self, weights: dict[str, float], y: np.ndarray, metric: Metric) -> SearchResult:
        """This search with its ensemble reduced to ``weights`` (renormalised) and re-scored.

        What the final refit keeps is what gets scored: when it drops a member,
        the ensemble's out-of-fold and holdout predictions and fold scores are
        those of the members left.
        """
        total = sum(weights.values())
        kept = {name: w / total for name, w in weights.items()}
        oof = np.asarray(sum(w * self.candidate(n).oof for n, w in kept.items()))  # type: ignore[operator,misc]
        hold = None
        if self.ensemble_holdout is not None:
            hold = np.asarray(sum(w * self.candidate(n).holdout for n, w in kept.items()))  # type: ignore[operator,misc]
        scores = [metric.score(y[va], oof[va]) for _tr, va in self.folds]
        return replace(self, weights=kept, ensemble_oof=oof, ensemble_holdout=hold, ensemble_fold_scores=scores)


def load_portfolio(task: str) -> list[dict[str, Any]]:
    """The known-good configurations for ``task``, in the order they are tried."""
    text = resources.files("mlpilot.search").joinpath("portfolio.json").read_text()
    key = "regression" if task == "regression" else "classification"
    return list(json.loads(text)[key])


def choose_n_folds(n_rows: int, y: np.ndarray, task: str, requested: int | None) -> int:
    k = requested or (5 if n_rows <= 10000 else 3)
    if task != "regression":
        k = min(k, int(np.bincount(y.astype(int)).min()))
    return max(2, min(k, n_rows // 2))


def make_folds(y: np.ndarray, task: str, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    splitter: Any
    if task == "regression":
        splitter = KFold(n_folds, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in splitter.split(np.zeros(len(y)), y)]


class _Prepared:
    """Per-fold preprocessed matrices, shared by every candidate of an encoding."""

    def __init__(self, X: pd.DataFrame, y: np.ndarray, holdout: pd.DataFrame | None, roles: dict[str, str],
                 folds: list[tuple[np.ndarray, np.ndarray]], seed: int) -> None:
        self.X, self.y, self.holdout, self.roles, self.folds, self.seed = X, y, holdout, roles, folds, seed
        self._cache: dict[tuple[str, bool], list[tuple[Any, Any, Any, tuple[int, ...]]]] = {}

    def roles_for(self, text_only: bool) -> dict[str, str]:
        if not text_only:
            return self.roles
        return {c: r for c, r in self.roles.items() if r == "text"}

    def has(self, encoding: str, text_only: bool) -> bool:
        return (encoding, text_only) in self._cache

    def get(self, encoding: str, text_only: bool) -> list[tuple[Any, Any, Any, tuple[int, ...]]]:
        key = (encoding, text_only)
        if key not in self._cache:
            out = []
            for tr, va in self.folds:
                pre = TabularPreprocessor(encoding=encoding, roles=self.roles_for(text_only), random_state=self.seed)
                Xtr = pre.fit_transform(self.X.iloc[tr], self.y[tr])
                Xva = pre.transform(self.X.iloc[va])
                Xho = pre.transform(self.holdout) if self.holdout is not None else None
                out.append((Xtr, Xva, Xho, tuple(pre.categorical_indices_)))
            self._cache[key] = out
        return self._cache[key]


def run_parallel(
    fit_fold: Callable[[int, float | None], _T], folds: list[int], stop_ats: list[float | None], workers: int
) -> list[_T]:
    """``fit_fold(i, stop_at)`` for each of ``folds`` on ``workers`` threads, results in ``folds`` order.

    The libraries release the GIL while they fit. Warnings are silenced and BLAS
    pools capped here, once around the threads, which then leave both alone
    (process-wide state that threads cannot each save and restore); OpenMP's
    limit is per thread, so each thread sets its own.
    """
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    def task(i: int, stop_at: float | None) -> _T:
        with guarded_by_caller(), threadpool_limits(limits=1, user_api="openmp"):
            return fit_fold(i, stop_at)

    with warnings.catch_warnings(), threadpool_limits(limits=1), ThreadPoolExecutor(workers) as pool:
        warnings.simplefilter("ignore")
        return list(pool.map(task, folds, stop_ats))


def _estimated_bytes(family: str, n_rows: int, n_features: int, n_classes: int) -> int:
    if family in ("extra_trees", "random_forest"):
        leaves = 2 * n_rows * 200 * max(1, n_classes if n_classes > 2 else 1)
        return leaves * 48
    if family == "knn":
        return n_rows * n_features * 8 * 3
    return n_rows * n_features * 8 * 4


def run_search(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    task: str,
    metric: Metric,
    roles: dict[str, str],
    n_classes: int,
    holdout: pd.DataFrame | None,
    config: SearchConfig,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> SearchResult:
    """Cross-validate the portfolio, tune within the budget and pick ensemble weights.

    Parameters
    ----------
    X : DataFrame
        Development rows, raw feature columns.
    y : ndarray
        Encoded target of ``X``.
    task, metric, roles, n_classes
        From the task stage and the schema.
    holdout : DataFrame or None
        Rows the search predicts but never scores.
    config : SearchConfig

    Returns
    -------
    SearchResult

    Raises
    ------
    TrainingError
        If no candidate could be trained at all.
    """
    start = time.perf_counter()
    budget = config.budget
    clock = budget.timed
    # every time a decision rests on (fit and predict costs, deadlines, the metric's cost) is read
    # on the budget's clock, which tests fake; without a clock the costs are only shown (and the
    # predict limit checked), so they are read on the real one and the budget's is never read
    timer = budget.clock if clock else time.perf_counter
    n_folds = choose_n_folds(len(y), y, task, config.n_folds)
    folds = make_folds(y, task, n_folds, config.seed)
    prepared = _Prepared(X, y, holdout, roles, folds, config.seed)
    has_text = any(r == "text" for r in roles.values())
    notes: list[str] = []
    refused: list[str] = []
    candidates: list[CandidateResult] = []
    unit_seconds: list[float] = []  # observed seconds per unit of family cost
    # OpenMP threads cost more than they give on small tables (and on busy machines)
    threads = 1 if len(y) * max(X.shape[1], 1) < 1_000_000 else config.n_jobs
    big = len(y) * max(n_classes if task == "multiclass" else 1, 1) > 100_000

    metric_seconds: list[float] = []  # one metric call on the development rows (clock mode)

    def ensemble_reserve(extra: int = 1) -> float:
        # ensemble selection re-scores blends of every usable candidate (and ``extra`` to come);
        # pruning is reserved for as two members, the usual case (more are pruned only if they fit)
        if not metric_seconds:
            return 0.0
        n_models = sum(1 for c in candidates if c.usable and c.family != "dummy") + extra
        return float(np.median(metric_seconds)) * selection_calls(n_models, n_members=2)

    def keep() -> float:
        return refit_reserve() + ensemble_reserve()

    def refit_reserve() -> float:
        usable = sorted((c for c in candidates if c.usable and c.family != "dummy"),
                        key=lambda c: -c.cv_mean)[:3]
        dummy = next((c for c in candidates if c.family == "dummy" and c.usable), None)
        if usable and dummy is not None:
            # time is kept for the runners-up only when they are close enough to join the ensemble
            gain = abs(usable[0].cv_mean - dummy.cv_mean)
            usable = usable[:1] + [c for c in usable[1:] if usable[0].cv_mean - c.cv_mean <= RESERVE_GAP * gain]
        # a refit skips early stopping's extra rounds and the validation predictions; the
        # best model must be refit, later members are dropped by fit_final if time runs out
        return sum(refit_seconds(c, n_folds, config.refit_share) * (1.0 if i == 0 else RUNNER_UP_REFIT_SHARE)
                   for i, c in enumerate(usable))

    def expected_seconds(family: str) -> float | None:
        # the family's own last cross-validation here, else the data's measured cost per unit, plus
        # preprocessing the folds for an encoding not used yet (about what the dummy's took: its
        # own fit costs nothing)
        fam = FAMILIES[family]
        own = [c.fit_seconds for c in candidates if c.family == family and c.status == "ok"]
        if own:
            return own[-1]
        if not unit_seconds:
            return None
        expected = float(np.median(unit_seconds)) * fam.cost
        if not prepared.has(fam.encoding, fam.text_only):
            expected += next((c.fit_seconds for c in candidates if c.family == "dummy" and c.usable), 0.0)
        return expected

    def allowed(family: str) -> bool:
        fam = FAMILIES[family]
        if config.families is not None and family not in config.families and family != "dummy":
            return False
        if task not in fam.tasks or not fam.installed:
            return False
        return not (fam.text_only and not has_text)

    def report(current: str) -> None:
        if on_progress is None:
            return
        best = max((c for c in candidates if c.usable and c.family != "dummy"),
                   key=lambda c: c.cv_mean, default=None)
        on_progress({
            "elapsed": time.perf_counter() - start,
            "n_trials": len(candidates),
            "best_score": None if best is None else (best.cv_mean if metric.greater_is_better else -best.cv_mean),
            "best_name": None if best is None else best.name,
            "current": current,
        })

    def fold_workers(family: str) -> int:
        if threads > 1 or config.n_jobs < 2 or n_folds < 2 or family == "dummy":
            return 1
        workers = min(config.n_jobs, n_folds)
        need = _estimated_bytes(family, len(y), X.shape[1], n_classes) * workers
        if config.memory_limit is not None and need > config.memory_limit:
            return 1  # folds side by side hold their models at once
        return workers

    def evaluate(name: str, family: str, params: dict[str, Any], *, force: bool = False) -> CandidateResult:
        params = dict(params)
        if big and "learning_rate" in params:
            params["learning_rate"] = max(params["learning_rate"], 0.1)  # fewer rounds on big tables
        result = CandidateResult(name, family, dict(params))
        fam = FAMILIES[family]
        report(name)
        if config.memory_limit is not None:
            need = _estimated_bytes(family, len(y), X.shape[1], n_classes)
            if need > config.memory_limit:
                result.status, result.note = "skipped", (
                    f"estimated memory {need / 2**30:.1f} GiB exceeds the cap "
                    f"{config.memory_limit / 2**30:.1f} GiB"
                )
                notes.append(f"{name}: {result.note}")
                return result
        cap = math.inf
        if clock and not force:
            kept = keep()
            refusal = budget.refusal(expected_seconds(family), interruptible=fam.interruptible, keep=kept,
                                     kept_for="the refit and ensemble selection")
            if refusal is not None:
                result.status, result.note = "skipped", refusal
                notes.append(f"{name}: {refusal}")
                refused.append(name)
                return result
            # were it to win, its own refit must fit too: one fold alone (the wall time of a wave of
            # side-by-side folds) on the refit's rows, k / (k - 1) times a fold's, times the rows share
            n_waves = math.ceil(n_folds / fold_workers(family))
            own_refit = n_folds / ((n_folds - 1) * n_waves) * config.refit_share
            if fam.boosted:
                own_refit *= BOOSTED_REFIT_CUT  # capped, its folds may be cut at their deadline
            first_model = not any(c.usable and c.family != "dummy" for c in candidates)
            share = UNINTERRUPTIBLE_SHARE
            if fam.interruptible:
                share = FIRST_MODEL_SHARE if first_model else INTERRUPTIBLE_SHARE
            cap = budget.cap(share, keep=kept) / (1.0 + own_refit)
        t0 = timer()
        oof = np.zeros((len(y), n_classes)) if task != "regression" else np.zeros(len(y))
        try:
            folds_data = prepared.get(fam.encoding, fam.text_only)
            if fam.text_only and all(d[0].shape[1] == 0 for d in folds_data):
                result.status, result.note = "skipped", "no text features"
                return result

            def fit_fold(i: int, stop_at: float | None) -> tuple[np.ndarray, np.ndarray | None, float, int, float, bool]:
                (tr, va), (Xtr, Xva, Xho, cats) = folds[i], folds_data[i]
                started = timer()
                learner = Learner(
                    family=family, task=task, params=params, categorical_indices=cats,
                    n_classes=n_classes, random_state=config.seed, n_jobs=threads,
                    deterministic=not clock,
                )
                learner.fit(Xtr, y[tr], X_val=Xva, y_val=y[va], stop_at=stop_at, clock=timer)
                t_predict = timer()
                values = learner.predict_values(Xva)
                predict_seconds = timer() - t_predict
                held = None if Xho is None else learner.predict_values(Xho)
                cut = stop_at is not None and t_predict >= stop_at
                return values, held, predict_seconds, learner.n_iterations_, timer() - started, cut

            # folds run side by side on small tables, where each model uses one thread; a family
            # that cannot be interrupted first runs one fold alone, to project the whole cost
            workers = fold_workers(family)
            result.workers = workers
            probe = clock and not force and not fam.interruptible
            first = 1 if probe and workers > 1 else 0
            # fold i's share of the time cap ends with its wave of side-by-side folds
            waves = [0] * first + [first + j // workers for j in range(n_folds - first)]
            stop_ats = [None if cap == math.inf else t0 + cap * (w + 1) / (waves[-1] + 1) for w in waves]
            outputs: list[tuple[np.ndarray, np.ndarray | None, float, int, float, bool]] = []
            for i in range(n_folds if workers == 1 else first):
                outputs.append(fit_fold(i, stop_ats[i]))
                if probe and i == 0:
                    projected = (timer() - t0) * (waves[-1] + 1)
                    if projected > cap:
                        result.status, result.note = "timeout", (
                            f"stopped after one fold: the {n_folds} folds would take {projected:.2f}s, "
                            f"more than the {cap:.2f}s it may use"
                        )
                        notes.append(f"{name}: {result.note}")
                        return result
            if len(outputs) < n_folds:
                outputs += run_parallel(fit_fold, list(range(first, n_folds)), stop_ats[first:], workers)
        except MemoryError:
            result.status, result.note = "skipped", "out of memory"
            notes.append(f"{name}: ran out of memory and was skipped")
            return result
        except Exception as exc:  # a family failing must not end the search
            logger.warning("candidate %s failed: %s", name, exc)
            result.status, result.note = "failed", f"{type(exc).__name__}: {exc}"[:300]
            return result
        finally:
            result.fit_seconds = timer() - t0
        hold_sum: np.ndarray | None = None
        for i, (_tr, va) in enumerate(folds):  # in fold order: the same sums however folds were scheduled
            values, held, predict_seconds, n_iterations, seconds, cut = outputs[i]
            result.cut_by_deadline |= cut
            oof[va] = values
            if held is not None:
                hold_sum = held if hold_sum is None else hold_sum + held
            result.predict_seconds += predict_seconds
            result.predict_rows += len(va)
            result.n_iterations.append(n_iterations)
            result.work_seconds += seconds
        result.oof = oof
        result.holdout = None if hold_sum is None else hold_sum / n_folds
        result.fold_scores = [metric.score(y[va], oof[va]) for _tr, va in folds]
        if family != "dummy":
            unit_seconds.append(result.fit_seconds / fam.cost)
        if clock:
            t_score = timer()
            metric.score(y, oof)
            metric_seconds.append(timer() - t_score)
        logger.info("candidate %s: cv %s=%.5f (%.1fs)", name, metric.name, result.cv_mean, result.fit_seconds)
        return result

    # 1. dummy baseline, then the portfolio in order
    candidates.append(evaluate("dummy", "dummy", {}, force=True))
    for entry in load_portfolio(task):
        if not allowed(entry["family"]):
            continue
        if clock and budget.left() - keep() <= 0:
            notes.append(
                f"the time budget ended before {entry['name']} and later configurations: "
                f"{max(budget.left(), 0.0):.2f}s left, {keep():.2f}s kept for the refit and ensemble selection"
            )
            break
        candidates.append(evaluate(entry["name"], entry["family"], entry["params"]))

    # 2. the tuner, on the best boosted family, while time (or trials) remain
    boosted = [c for c in candidates if c.usable and FAMILIES[c.family].boosted and FAMILIES[c.family].space]
    if boosted:
        best_family = max(boosted, key=lambda c: c.cv_mean).family
        space = FAMILIES[best_family].space
        tuner = Tuner(space, seed=config.seed)
        trial_no = 0
        while True:
            if clock:
                last = max((c.fit_seconds for c in candidates if c.family == best_family), default=1.0)
                if budget.left() - keep() < TRIAL_SHARE * last:
                    notes.append(
                        f"tuning {best_family} stopped after {trial_no} trial(s): "
                        f"{max(budget.left() - keep(), 0.0):.2f}s left after {keep():.2f}s kept for the refit "
                        f"and ensemble selection, less than {TRIAL_SHARE:.0%} of its last fit ({last:.2f}s)"
                    )
                    break
            elif trial_no >= config.n_trials:
                break
            trial, params = tuner.ask()
            trial_no += 1
            result = evaluate(f"{best_family}_tuned_{trial_no}", best_family, params)
            candidates.append(result)
            tuner.tell(trial, result.cv_mean if result.usable else None)
            if result.status == "skipped":
                break

    # 3. a fallback when the budget allowed nothing but the baseline
    if not any(c.usable and c.family != "dummy" for c in candidates):
        fallback = "linear" if allowed("linear") else next(
            (f for f in ("lightgbm", "hist_gradient_boosting") if allowed(f)), "lightgbm")
        params = {"n_estimators": 100, "learning_rate": 0.1} if FAMILIES[fallback].boosted else {}
        message = (
            f"The time budget was too small to cross-validate any model; trained the fastest "
            f"sensible one ({fallback}) instead. Give a larger --time-budget for a better model."
        )
        warnings.warn(message, BudgetWarning, stacklevel=3)
        notes.append(message)
        candidates.append(evaluate(f"{fallback}_fallback", fallback, params, force=True))
    usable = [c for c in candidates if c.usable and c.family != "dummy"]
    if not usable:
        failures = "; ".join(f"{c.name}: {c.note}" for c in candidates if c.note)
        raise TrainingError(f"No model could be trained on this data. {failures}")
    if config.predict_limit is not None:
        fast = [c for c in usable if c.predict_cost <= config.predict_limit]
        if not fast:
            fast = [min(usable, key=lambda c: c.predict_cost)]
            notes.append(
                f"No model predicts within {config.predict_limit * 1e6:g} ms per 1,000 rows; kept the fastest, "
                f"{fast[0].name} ({fast[0].predict_cost * 1e6:.1f} ms)."
            )
        elif len(fast) < len(usable):
            slow = ", ".join(c.name for c in usable if c.predict_cost > config.predict_limit)
            notes.append(f"Left out of the ensemble, slower than {config.predict_limit * 1e6:g} ms per 1,000 rows: {slow}.")
        usable = fast

    # 4. greedy ensemble selection on the out-of-fold predictions, then fewer members where they add ~nothing
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
        if clock or config.predict_limit is not None:
            costs = np.array([c.predict_cost for c in usable])
            faster = prune_for_speed(predictions, y, metric, weights_arr, costs,
                                     allowance=SPEED_TOLERANCE * gain if clock else 0.0, floor=SPEED_FLOOR,
                                     limit=config.predict_limit)
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
    blend_cv = float(np.mean([metric.score(y[va], np.asarray(blend)[va]) for _tr, va in folds]))
    if blend_cv < usable[best_single].cv_mean:
        # the blend wins on pooled out-of-fold rows but not fold by fold: keep the single model
        weights_arr = np.zeros(len(usable))
        weights_arr[best_single] = 1.0
    weights = {c.name: float(w) for c, w in zip(usable, weights_arr, strict=True) if w > 0}
    ens_oof = sum(w * usable[i].oof for i, w in enumerate(weights_arr) if w > 0)  # type: ignore[operator]
    ens_hold = None
    if holdout is not None:
        ens_hold = sum(w * usable[i].holdout for i, w in enumerate(weights_arr) if w > 0)  # type: ignore[operator]
    ens_fold_scores = [metric.score(y[va], np.asarray(ens_oof)[va]) for _tr, va in folds]
    ensemble_seconds = time.perf_counter() - t_ensemble
    report("ensemble")
    return SearchResult(
        candidates=candidates,
        folds=folds,
        weights=weights,
        ensemble_oof=np.asarray(ens_oof),
        ensemble_holdout=None if ens_hold is None else np.asarray(ens_hold),
        ensemble_fold_scores=ens_fold_scores,
        notes=notes,
        seconds=time.perf_counter() - start,
        ensemble_seconds=ensemble_seconds,
        refit_reserve=refit_reserve() if clock else 0.0,
        refused=refused,
    )


def refit_seconds(candidate: CandidateResult, n_folds: int, share: float) -> float:
    """Expected seconds to refit ``candidate`` on ``share`` times the development rows.

    One fold's fit alone (`CandidateResult.fold_seconds`: folds run side by
    side overstate it), scaled to the refit's rows; a boosted refit takes
    `BOOSTED_REFIT` of that (`BOOSTED_REFIT_CUT` when folds were stopped at
    their deadline), as it skips the rounds past the best and the validation set.
    """
    per_fold = candidate.fold_seconds() * n_folds / (n_folds - 1) * share
    if FAMILIES[candidate.family].boosted:
        return per_fold * (BOOSTED_REFIT_CUT if candidate.cut_by_deadline else BOOSTED_REFIT)
    return per_fold


def fit_final(
    X: pd.DataFrame,
    y: np.ndarray,
    result: SearchResult,
    *,
    task: str,
    roles: dict[str, str],
    n_classes: int,
    seed: int,
    n_jobs: int,
    deterministic: bool,
    budget: Budget | None = None,
) -> tuple[list[tuple[Any, Any]], list[str], list[float], list[str]]:
    """Refit the ensemble members on ``X, y``; return members, names, weights, notes.

    Members are refit in order of weight; a member after the first whose
    expected refit time (from its cross-validation) does not fit what is left
    of ``budget`` is not started: it is dropped and the weights renormalised.
    Re-score the search with `SearchResult.with_weights` before reporting.
    """
    budget = budget or Budget(None)
    notes: list[str] = []
    n_jobs = 1 if len(y) * max(X.shape[1], 1) < 1_000_000 else n_jobs
    order = sorted(result.weights.items(), key=lambda kv: -kv[1])
    has_text = any(r == "text" for r in roles.values())
    members: list[tuple[Any, Any]] = []
    names: list[str] = []
    weights: list[float] = []
    n_folds = len(result.folds)
    shared: dict[tuple[str, bool], Any] = {}  # one fitted preprocessor per encoding, shared by members
    for name, weight in order:
        cand = result.candidate(name)
        fam = FAMILIES[cand.family]
        if budget.timed and members:
            estimate = refit_seconds(cand, n_folds, len(y) / max(len(result.ensemble_oof), 1))
            if not budget.fits(estimate):
                notes.append(
                    f"dropped ensemble member {name} (weight {weight:.2f}) to keep the time budget: its refit "
                    f"is expected to take {estimate:.2f}s, {max(budget.left(), 0.0):.2f}s were left; "
                    "the scores reported are those of the members kept"
                )
                continue
        text_only = fam.text_only and has_text
        key = (fam.encoding, text_only)
        if key not in shared:
            sub_roles = {c: r for c, r in roles.items() if r == "text"} if text_only else roles
            pre = TabularPreprocessor(encoding=fam.encoding, roles=sub_roles, random_state=seed)
            shared[key] = (pre, pre.fit_transform(X, y))
        pre, Xt = shared[key]
        params = cand.refit_params()
        stop_at = None
        if budget.timed and fam.interruptible:
            # a boosted refit stops itself at the deadline; the best model gets at least a share of
            # its expected time even when the search left it less, or it would be no model at all
            allowed = budget.left()
            if not members:
                allowed = max(allowed, REFIT_FLOOR_SHARE * refit_seconds(cand, n_folds, len(y) / max(len(result.ensemble_oof), 1)))
            stop_at = budget.clock() + max(allowed, 0.0)
        learner = Learner(
            family=cand.family, task=task, params=params,
            categorical_indices=tuple(pre.categorical_indices_), n_classes=n_classes,
            random_state=seed, n_jobs=n_jobs, deterministic=deterministic,
        )
        learner.fit(Xt, y, stop_at=stop_at, clock=budget.clock)
        planned = params.get("n_estimators")
        if stop_at is not None and planned and learner.n_iterations_ < planned and budget.clock() >= stop_at:
            notes.append(
                f"the refit of {name} stopped at its deadline after {learner.n_iterations_} of {planned} "
                "boosting rounds to keep the time budget"
            )
        members.append((pre, learner))
        names.append(name)
        weights.append(weight)
    total = sum(weights)
    return members, names, [w / total for w in weights], notes
