"""Candidate evaluation: one configuration cross-validated within what the budget allows.

`CandidateRunner` holds what the candidates of one search share (the folds and
their preprocessed matrices, the measured costs, the notes) and evaluates one
candidate at a time: it refuses one whose expected time does not fit, caps the
time of one that may start, fits its folds (side by side through the search's
`Executor` on small tables) and records out-of-fold and holdout predictions.
The scheduler (`mlpilot.search._search.run_search`) decides which candidates
to try; `mlpilot.search._selection` builds the ensemble from them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot.features import TabularPreprocessor
from mlpilot.search._ensemble import selection_calls
from mlpilot.search._learners import FAMILIES, Learner
from mlpilot.tasks import Metric
from mlpilot.tune._budget import (
    BOOSTED_REFIT,
    BOOSTED_REFIT_CUT,
    FIRST_MODEL_SHARE,
    INTERRUPTIBLE_SHARE,
    RESERVE_GAP,
    RUNNER_UP_REFIT_SHARE,
    UNINTERRUPTIBLE_SHARE,
)
from mlpilot.tune._executor import LocalExecutor

if TYPE_CHECKING:
    from mlpilot.search._search import SearchConfig

logger = logging.getLogger(__name__)


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


class PreparedFolds:
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


def estimated_bytes(family: str, n_rows: int, n_features: int, n_classes: int) -> int:
    if family in ("extra_trees", "random_forest"):
        leaves = 2 * n_rows * 200 * max(1, n_classes if n_classes > 2 else 1)
        return leaves * 48
    if family == "knn":
        return n_rows * n_features * 8 * 3
    return n_rows * n_features * 8 * 4


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


class CandidateRunner:
    """Cross-validates candidates of one search on shared folds, within its budget.

    Parameters
    ----------
    X, y, task, metric, roles, n_classes, holdout
        As `run_search` takes them.
    config : SearchConfig
        The search's budget, executor, seed and limits.
    folds : list of (train, validation) index arrays
    start : float
        ``time.perf_counter()`` when the search began (progress reports).
    on_progress : callable, optional
        Called with a progress dict before each candidate.
    """

    def __init__(self, X: pd.DataFrame, y: np.ndarray, *, task: str, metric: Metric, roles: dict[str, str],
                 n_classes: int, holdout: pd.DataFrame | None, config: SearchConfig,
                 folds: list[tuple[np.ndarray, np.ndarray]], start: float,
                 on_progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.X, self.y, self.task, self.metric, self.n_classes = X, y, task, metric, n_classes
        self.config, self.start, self.on_progress = config, start, on_progress
        self.budget = budget = config.budget
        self.clock = clock = budget.timed
        # every time a decision rests on (fit and predict costs, deadlines, the metric's cost) is read
        # on the budget's clock, which tests fake; without a clock the costs are only shown (and the
        # predict limit checked), so they are read on the real one and the budget's is never read
        self.timer = budget.clock if clock else time.perf_counter
        self.executor = config.executor or LocalExecutor(config.n_jobs)
        self.folds = folds
        self.n_folds = len(folds)
        self.prepared = PreparedFolds(X, y, holdout, roles, self.folds, config.seed)
        self.has_text = any(r == "text" for r in roles.values())
        self.notes: list[str] = []
        self.refused: list[str] = []
        self.candidates: list[CandidateResult] = []
        self.unit_seconds: list[float] = []  # observed seconds per unit of family cost
        # OpenMP threads cost more than they give on small tables (and on busy machines)
        self.threads = 1 if len(y) * max(X.shape[1], 1) < 1_000_000 else config.n_jobs
        self.big = len(y) * max(n_classes if task == "multiclass" else 1, 1) > 100_000

        self.metric_seconds: list[float] = []  # one metric call on the development rows (clock mode)

    def ensemble_reserve(self, extra: int = 1) -> float:
        # ensemble selection re-scores blends of every usable candidate (and ``extra`` to come);
        # pruning is reserved for as two members, the usual case (more are pruned only if they fit)
        if not self.metric_seconds:
            return 0.0
        n_models = sum(1 for c in self.candidates if c.usable and c.family != "dummy") + extra
        return float(np.median(self.metric_seconds)) * selection_calls(n_models, n_members=2)

    def keep(self) -> float:
        return self.refit_reserve() + self.ensemble_reserve()

    def refit_reserve(self) -> float:
        usable = sorted((c for c in self.candidates if c.usable and c.family != "dummy"),
                        key=lambda c: -c.cv_mean)[:3]
        dummy = next((c for c in self.candidates if c.family == "dummy" and c.usable), None)
        if usable and dummy is not None:
            # time is kept for the runners-up only when they are close enough to join the ensemble
            gain = abs(usable[0].cv_mean - dummy.cv_mean)
            usable = usable[:1] + [c for c in usable[1:] if usable[0].cv_mean - c.cv_mean <= RESERVE_GAP * gain]
        # a refit skips early stopping's extra rounds and the validation predictions; the
        # best model must be refit, later members are dropped by fit_final if time runs out
        return sum(refit_seconds(c, self.n_folds, self.config.refit_share) * (1.0 if i == 0 else RUNNER_UP_REFIT_SHARE)
                   for i, c in enumerate(usable))

    def expected_seconds(self, family: str) -> float | None:
        # the family's own last cross-validation here, else the data's measured cost per unit, plus
        # preprocessing the folds for an encoding not used yet (about what the dummy's took: its
        # own fit costs nothing)
        fam = FAMILIES[family]
        own = [c.fit_seconds for c in self.candidates if c.family == family and c.status == "ok"]
        if own:
            return own[-1]
        if not self.unit_seconds:
            return None
        expected = float(np.median(self.unit_seconds)) * fam.cost
        if not self.prepared.has(fam.encoding, fam.text_only):
            expected += next((c.fit_seconds for c in self.candidates if c.family == "dummy" and c.usable), 0.0)
        return expected

    def allowed(self, family: str) -> bool:
        fam = FAMILIES[family]
        if self.config.families is not None and family not in self.config.families and family != "dummy":
            return False
        if self.task not in fam.tasks or not fam.installed:
            return False
        return not (fam.text_only and not self.has_text)

    def report(self, current: str) -> None:
        if self.on_progress is None:
            return
        best = max((c for c in self.candidates if c.usable and c.family != "dummy"),
                   key=lambda c: c.cv_mean, default=None)
        self.on_progress({
            "elapsed": time.perf_counter() - self.start,
            "n_trials": len(self.candidates),
            "best_score": None if best is None else (best.cv_mean if self.metric.greater_is_better else -best.cv_mean),
            "best_name": None if best is None else best.name,
            "current": current,
        })

    def fold_workers(self, family: str) -> int:
        if self.threads > 1 or self.executor.n_workers < 2 or self.n_folds < 2 or family == "dummy":
            return 1
        workers = min(self.executor.n_workers, self.n_folds)
        need = estimated_bytes(family, len(self.y), self.X.shape[1], self.n_classes) * workers
        if self.config.memory_limit is not None and need > self.config.memory_limit:
            return 1  # folds side by side hold their models at once
        return workers

    def evaluate(self, name: str, family: str, params: dict[str, Any], *, force: bool = False) -> CandidateResult:
        params = dict(params)
        if self.big and "learning_rate" in params:
            params["learning_rate"] = max(params["learning_rate"], 0.1)  # fewer rounds on big tables
        result = CandidateResult(name, family, dict(params))
        fam = FAMILIES[family]
        self.report(name)
        if self.config.memory_limit is not None:
            need = estimated_bytes(family, len(self.y), self.X.shape[1], self.n_classes)
            if need > self.config.memory_limit:
                result.status, result.note = "skipped", (
                    f"estimated memory {need / 2**30:.1f} GiB exceeds the cap "
                    f"{self.config.memory_limit / 2**30:.1f} GiB"
                )
                self.notes.append(f"{name}: {result.note}")
                return result
        cap = math.inf
        if self.clock and not force:
            kept = self.keep()
            refusal = self.budget.refusal(self.expected_seconds(family), interruptible=fam.interruptible, keep=kept,
                                     kept_for="the refit and ensemble selection")
            if refusal is not None:
                result.status, result.note = "skipped", refusal
                self.notes.append(f"{name}: {refusal}")
                self.refused.append(name)
                return result
            # were it to win, its own refit must fit too: one fold alone (the wall time of a wave of
            # side-by-side folds) on the refit's rows, k / (k - 1) times a fold's, times the rows share
            n_waves = math.ceil(self.n_folds / self.fold_workers(family))
            own_refit = self.n_folds / ((self.n_folds - 1) * n_waves) * self.config.refit_share
            if fam.boosted:
                own_refit *= BOOSTED_REFIT_CUT  # capped, its folds may be cut at their deadline
            first_model = not any(c.usable and c.family != "dummy" for c in self.candidates)
            share = UNINTERRUPTIBLE_SHARE
            if fam.interruptible:
                share = FIRST_MODEL_SHARE if first_model else INTERRUPTIBLE_SHARE
            cap = self.budget.cap(share, keep=kept) / (1.0 + own_refit)
        t0 = self.timer()
        oof = np.zeros((len(self.y), self.n_classes)) if self.task != "regression" else np.zeros(len(self.y))
        try:
            folds_data = self.prepared.get(fam.encoding, fam.text_only)
            if fam.text_only and all(d[0].shape[1] == 0 for d in folds_data):
                result.status, result.note = "skipped", "no text features"
                return result

            def fit_fold(i: int, stop_at: float | None) -> tuple[np.ndarray, np.ndarray | None, float, int, float, bool]:
                (tr, va), (Xtr, Xva, Xho, cats) = self.folds[i], folds_data[i]
                started = self.timer()
                learner = Learner(
                    family=family, task=self.task, params=params, categorical_indices=cats,
                    n_classes=self.n_classes, random_state=self.config.seed, n_jobs=self.threads,
                    deterministic=not self.clock,
                )
                learner.fit(Xtr, self.y[tr], X_val=Xva, y_val=self.y[va], stop_at=stop_at, clock=self.timer)
                t_predict = self.timer()
                values = learner.predict_values(Xva)
                predict_seconds = self.timer() - t_predict
                held = None if Xho is None else learner.predict_values(Xho)
                cut = stop_at is not None and t_predict >= stop_at
                return values, held, predict_seconds, learner.n_iterations_, self.timer() - started, cut

            # folds run side by side on small tables, where each model uses one thread; a family
            # that cannot be interrupted first runs one fold alone, to project the whole cost
            workers = self.fold_workers(family)
            result.workers = workers
            probe = self.clock and not force and not fam.interruptible
            first = 1 if probe and workers > 1 else 0
            # fold i's share of the time cap ends with its wave of side-by-side folds
            waves = [0] * first + [first + j // workers for j in range(self.n_folds - first)]
            stop_ats = [None if cap == math.inf else t0 + cap * (w + 1) / (waves[-1] + 1) for w in waves]
            outputs: list[tuple[np.ndarray, np.ndarray | None, float, int, float, bool]] = []
            for i in range(self.n_folds if workers == 1 else first):
                outputs.append(fit_fold(i, stop_ats[i]))
                if probe and i == 0:
                    projected = (self.timer() - t0) * (waves[-1] + 1)
                    if projected > cap:
                        result.status, result.note = "timeout", (
                            f"stopped after one fold: the {self.n_folds} folds would take {projected:.2f}s, "
                            f"more than the {cap:.2f}s it may use"
                        )
                        self.notes.append(f"{name}: {result.note}")
                        return result
            if len(outputs) < self.n_folds:
                outputs += self.executor.map(lambda i: fit_fold(i, stop_ats[i]), list(range(first, self.n_folds)))
        except MemoryError:
            result.status, result.note = "skipped", "out of memory"
            self.notes.append(f"{name}: ran out of memory and was skipped")
            return result
        except Exception as exc:  # a family failing must not end the search
            logger.warning("candidate %s failed: %s", name, exc)
            result.status, result.note = "failed", f"{type(exc).__name__}: {exc}"[:300]
            return result
        finally:
            result.fit_seconds = self.timer() - t0
        hold_sum: np.ndarray | None = None
        for i, (_tr, va) in enumerate(self.folds):  # in fold order: the same sums however folds were scheduled
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
        result.holdout = None if hold_sum is None else hold_sum / self.n_folds
        result.fold_scores = [self.metric.score(self.y[va], oof[va]) for _tr, va in self.folds]
        if family != "dummy":
            self.unit_seconds.append(result.fit_seconds / fam.cost)
        if self.clock:
            t_score = self.timer()
            self.metric.score(self.y, oof)
            self.metric_seconds.append(self.timer() - t_score)
        logger.info("candidate %s: cv %s=%.5f (%.1fs)", name, self.metric.name, result.cv_mean, result.fit_seconds)
        return result
