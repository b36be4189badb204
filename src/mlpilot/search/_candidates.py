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
from mlpilot.features._preprocess import looks_like_titles
from mlpilot.search._ensemble import selection_calls
from mlpilot.search._learners import FAMILIES, Learner
from mlpilot.tasks import Metric
from mlpilot.tune import Budget
from mlpilot.tune._budget import (
    BOOSTED_REFIT,
    BOOSTED_REFIT_CUT,
    FIRST_MODEL_SHARE,
    INTERRUPTIBLE_SHARE,
    PREPROCESS_SHARE,
    RESERVE_GAP,
    RUNNER_UP_REFIT_SHARE,
    SAVE_SECONDS_PER_BYTE,
    STACK_RESERVE_SHARE,
    UNINTERRUPTIBLE_SHARE,
)
from mlpilot.tune._executor import LocalExecutor, quiet

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
    state_bytes: int = 0  # the largest fold model's large arrays (`Family.state_bytes`): what saving it costs

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


#: Preprocessing plans of the text columns, richest first (TF-IDF vocabulary per analyzer, SVD
#: components): a timed search uses the small one when the full one's projected cost does not fit
#: `PREPROCESS_SHARE`. On food reviews (modeldata/training_data) TF-IDF + logistic regression scored
#: holdout AUC 0.879 with 20,000 features, 0.877 with 5,000 and 0.870 with 2,000, in about the same time
#: for the two smaller (counting the vocabulary is most of it): 5,000 is the small plan.
PREPROCESS_PLANS: tuple[dict[str, int], ...] = (
    {"text_features": 20000, "text_components": 30},
    {"text_features": 5000, "text_components": 10},
)
#: Training rows of the cost probe (a seeded sample of the first fold's): a plan's cost is the
#: probe's times scaled by rows (TF-IDF, SVD and the linear models grow about linearly with them).
PROBE_ROWS = 400

Prepared = tuple[Any, Any, Any, tuple[int, ...]]


def preprocess_key(encoding: str, text_only: bool, roles: dict[str, str]) -> tuple[str, bool]:
    """Which preprocessing an encoding is: a text-only encoding of a table with only text columns is the full one."""
    return encoding, text_only and any(r != "text" for r in roles.values())


def text_roles(roles: dict[str, str]) -> dict[str, str]:
    """The columns a text-only family sees: the text ones."""
    return {c: r for c, r in roles.items() if r == "text"}


def has_text_features(X: pd.DataFrame, roles: dict[str, str]) -> bool:
    """Whether these columns get text features: a text column, or a categorical one read as titles."""
    least = TabularPreprocessor().target_encoding_min
    for col, role in roles.items():
        if role == "text":
            return True
        if role == "categorical" and col in X.columns:
            present = X[col].dropna().astype(str)
            n_unique = present.nunique()
            if n_unique >= least and looks_like_titles(present, n_unique):
                return True
    return False


def probe_preprocessing(X: pd.DataFrame, y: np.ndarray, rows: np.ndarray, *, encoding: str, roles: dict[str, str],
                        plan: dict[str, int], random_state: int, timer: Callable[[], float], threads: int) -> tuple[float, float]:
    """Seconds per row to fit (with the target) and to transform, measured on ``rows`` on ``timer``."""
    with quiet(threads):
        t0 = timer()
        pre = TabularPreprocessor(encoding=encoding, roles=roles, random_state=random_state, **plan)
        pre.fit_transform(X.iloc[rows], y[rows])
        t1 = timer()
        pre.transform(X.iloc[rows])
        t2 = timer()
    return (t1 - t0) / len(rows), (t2 - t1) / len(rows)


def probe_rows(n_rows: int, random_state: int) -> np.ndarray:
    """The seeded sample of `PROBE_ROWS` row positions (of ``n_rows``) a cost probe fits on."""
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n_rows, size=min(n_rows, PROBE_ROWS), replace=False))


class PreprocessTimeout(Exception):
    """The search's deadline came while the folds of an encoding were being preprocessed."""


class PreparedFolds:
    """Per-fold preprocessed matrices, shared by every candidate of an encoding.

    Each encoding's folds are preprocessed once, the first time a candidate
    needs them. In a timed search their cost is charged to the budget before
    it starts: a probe on a sample (`probe_preprocessing`) projects the cost
    of the full plan (`PREPROCESS_PLANS`) for the folds and the refit; when
    that exceeds `PREPROCESS_SHARE` of what is left, the small plan is used
    and the choice recorded in ``notes`` with its numbers. Between folds the
    deadline is checked.
    """

    def __init__(self, X: pd.DataFrame, y: np.ndarray, holdout: pd.DataFrame | None, roles: dict[str, str],
                 folds: list[tuple[np.ndarray, np.ndarray]], random_state: int, *, budget: Budget | None = None,
                 timer: Callable[[], float] = time.perf_counter, threads: int = 1, refit_share: float = 1.0,
                 notes: list[str] | None = None, probes: dict[tuple[str, bool], tuple[float, float]] | None = None,
                 ) -> None:
        self.X, self.y, self.holdout, self.roles, self.folds, self.random_state = X, y, holdout, roles, folds, random_state
        self.budget = budget or Budget(None)
        self.timer, self.threads, self.refit_share = timer, threads, refit_share
        self.notes = notes if notes is not None else []
        self._cache: dict[tuple[str, bool], list[Prepared]] = {}
        self.plans: dict[tuple[str, bool], dict[str, int]] = {}  # the plan each encoding uses
        self.expected: dict[tuple[str, bool], float] = {}  # projected seconds: the folds and the refit
        self.fold_seconds: dict[tuple[str, bool], float] = {}  # measured seconds per fold
        self.fit_seconds: dict[tuple[str, bool], float] = {}  # ... of which fitting (the refit's part)
        # per key: seconds per row to fit and to transform, from `probe_preprocessing`
        self.probes: dict[tuple[str, bool], tuple[float, float]] = dict(probes or {})

    def roles_for(self, text_only: bool) -> dict[str, str]:
        return text_roles(self.roles) if text_only else self.roles

    def has(self, encoding: str, text_only: bool) -> bool:
        return self.key(encoding, text_only) in self._cache

    def _preprocessor(self, encoding: str, text_only: bool, plan: dict[str, int]) -> TabularPreprocessor:
        return TabularPreprocessor(encoding=encoding, roles=self.roles_for(text_only), random_state=self.random_state, **plan)

    def cost(self, encoding: str, text_only: bool, keep: float = 0.0) -> float:
        """Expected seconds to preprocess this encoding's folds and its refit (0 once done or untimed).

        Chooses the encoding's plan the first time it is asked (see the class docstring).
        """
        key = self.key(encoding, text_only)
        if key in self._cache:
            return 0.0
        if key not in self.plans:
            self._choose(key, keep)
        if key in self.expected:
            return self.expected[key]
        # no text: about what another encoding's folds took, when one was measured
        return max((seconds * len(self.folds) for seconds in self.fold_seconds.values()), default=0.0)

    def refit_seconds(self, encoding: str, text_only: bool) -> float:
        """Expected seconds of the refit's preprocessing, from the folds' measured time (0 before)."""
        n_folds = len(self.folds)
        per_fold = self.fit_seconds.get(self.key(encoding, text_only), 0.0)
        return per_fold * n_folds / max(n_folds - 1, 1) * self.refit_share

    def key(self, encoding: str, text_only: bool) -> tuple[str, bool]:
        """The cache key (`preprocess_key`)."""
        return preprocess_key(encoding, text_only, self.roles)

    def _choose(self, key: tuple[str, bool], keep: float) -> None:
        encoding, text_only = key
        roles = self.roles_for(text_only)
        if not self.budget.timed or not has_text_features(self.X, roles):
            self.plans[key] = dict(PREPROCESS_PLANS[0])  # numbers, dates and categories cost little
            return
        allowed = self.budget.cap(PREPROCESS_SHARE, keep=keep)
        rows = probe_rows(len(self.y), self.random_state)
        if key not in self.probes:
            self.probes[key] = probe_preprocessing(self.X, self.y, rows, encoding=encoding, roles=roles,
                                                   plan=PREPROCESS_PLANS[0], random_state=self.random_state, timer=self.timer,
                                                   threads=self.threads)
        n_predict = sum(len(va) for _, va in self.folds) + len(self.folds) * (
            0 if self.holdout is None else len(self.holdout))
        n_fit = sum(len(tr) for tr, _ in self.folds) + len(self.y) * self.refit_share

        def expected(probe: tuple[float, float]) -> float:
            return probe[0] * n_fit + probe[1] * n_predict

        rich = expected(self.probes[key])
        plan, cost = PREPROCESS_PLANS[0], rich
        if rich > allowed:  # the small plan, probed in turn
            plan = PREPROCESS_PLANS[-1]
            cost = expected(probe_preprocessing(self.X, self.y, rows, encoding=encoding, roles=roles, plan=plan,
                                                random_state=self.random_state, timer=self.timer, threads=self.threads))
            described = ", ".join(f"{k}={v}" for k, v in PREPROCESS_PLANS[0].items())
            self.notes.append(
                f"preprocessing ({encoding} encoding) with {described} is expected to take {rich:.2f}s for "
                f"{len(self.folds)} folds and the refit (probe on {len(rows)} rows), more than the "
                f"{PREPROCESS_SHARE:.0%} of the {max(self.budget.left() - keep, 0.0):.2f}s left after {keep:.2f}s "
                f"kept that it may take ({allowed:.2f}s): used {', '.join(f'{k}={v}' for k, v in plan.items())}, "
                f"expected {cost:.2f}s"
            )
        self.plans[key], self.expected[key] = dict(plan), cost

    def get(self, encoding: str, text_only: bool, keep: float = 0.0, *, stop: bool = True) -> list[Prepared]:
        """The folds' (train, validation, holdout) matrices and categorical indices for an encoding.

        Raises `PreprocessTimeout` when the budget's deadline passes between two
        folds, unless ``stop`` is False (a candidate that must run whatever the time).
        """
        key = self.key(encoding, text_only)
        if key not in self._cache:
            self.cost(encoding, text_only, keep)
            plan = self.plans[key]
            out: list[Prepared] = []
            started = self.timer()
            fitting = 0.0
            for i, (tr, va) in enumerate(self.folds):
                if stop and i and self.budget.left() <= 0:
                    raise PreprocessTimeout(
                        f"preprocessing the {encoding} folds stopped after {i} of {len(self.folds)}: the "
                        f"search's time ran out ({self.timer() - started:.2f}s spent on them)"
                    )
                pre = self._preprocessor(encoding, text_only, plan)
                with quiet(self.threads):
                    t_fit = self.timer()
                    Xtr = pre.fit_transform(self.X.iloc[tr], self.y[tr])
                    fitting += self.timer() - t_fit
                    Xva = pre.transform(self.X.iloc[va])
                    Xho = pre.transform(self.holdout) if self.holdout is not None else None
                out.append((Xtr, Xva, Xho, tuple(pre.categorical_indices_)))
            self.fold_seconds[key] = (self.timer() - started) / len(self.folds)
            self.fit_seconds[key] = fitting / len(self.folds)
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


def save_seconds(candidate: CandidateResult, n_folds: int, share: float) -> float:
    """Expected seconds to serialise ``candidate`` refit on ``share`` times the development rows.

    From its largest fold model's arrays (`Family.state_bytes`), scaled to the
    refit's rows; 0 for the families whose models stay small.

    Examples
    --------
    >>> c = CandidateResult("extra_trees", "extra_trees", {}, state_bytes=200_000_000)
    >>> round(save_seconds(c, 5, 1.25), 2)
    7.81
    """
    return candidate.state_bytes * n_folds / max(n_folds - 1, 1) * share * SAVE_SECONDS_PER_BYTE


def family_allowed(family: str, config: SearchConfig, task: str, *, weighted: bool, has_text: bool) -> bool:
    """Whether the search may try ``family``: chosen by the user, fit for the task, installed, able to weight rows."""
    fam = FAMILIES[family]
    if config.families is not None and family not in config.families and family != "dummy":
        return False
    if task not in fam.tasks or not fam.installed:
        return False
    if weighted and not fam.weighted:
        return False
    return not (fam.text_only and not has_text)


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
    probes : dict, optional
        Preprocessing cost probes already measured (see `PreparedFolds`).
    sample_weight : ndarray, optional
        Each row's weight: every fold's fit weighs its rows by it (the scores
        by ``metric``, weighted by the caller); families that cannot weight
        rows are not `allowed`.
    """

    def __init__(self, X: pd.DataFrame, y: np.ndarray, *, task: str, metric: Metric, roles: dict[str, str],
                 n_classes: int, holdout: pd.DataFrame | None, config: SearchConfig,
                 folds: list[tuple[np.ndarray, np.ndarray]], start: float,
                 on_progress: Callable[[dict[str, Any]], None] | None = None,
                 probes: dict[tuple[str, bool], tuple[float, float]] | None = None,
                 sample_weight: np.ndarray | None = None) -> None:
        self.X, self.y, self.task, self.metric, self.n_classes = X, y, task, metric, n_classes
        self.sample_weight = sample_weight
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
        self.has_text = any(r == "text" for r in roles.values())
        self.notes: list[str] = []
        self.refused: list[str] = []
        self.candidates: list[CandidateResult] = []
        self.unit_seconds: list[float] = []  # observed seconds per unit of family cost
        # OpenMP threads cost more than they give on small tables (and on busy machines)
        self.threads = 1 if len(y) * max(X.shape[1], 1) < 1_000_000 else config.n_jobs
        self.prepared = PreparedFolds(X, y, holdout, roles, self.folds, config.random_state, budget=budget, timer=self.timer,
                                      threads=self.threads, refit_share=config.refit_share, notes=self.notes,
                                      probes=probes)
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
        return self.refit_reserve() + self.ensemble_reserve() + self.stack_reserve()

    def stack_reserve(self) -> float:
        """Seconds kept back for trying a stack after the greedy ensemble (`STACK_RESERVE_SHARE`; 0 when off)."""
        if not self.clock or self.config.stacking == "off":
            return 0.0
        return STACK_RESERVE_SHARE * (self.budget.seconds or 0.0)

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
        learners = sum(refit_seconds(c, self.n_folds, self.config.refit_share) * (1.0 if i == 0 else RUNNER_UP_REFIT_SHARE)
                       for i, c in enumerate(usable))
        # and saving them once refit: trees grow with the rows (a fold model saw (k-1)/k of them)
        saves = sum(save_seconds(c, self.n_folds, self.config.refit_share) for c in usable)
        # and the refit's preprocessing, once per encoding (members share it)
        encodings = {self.prepared.key(FAMILIES[c.family].encoding, FAMILIES[c.family].text_only) for c in usable}
        return learners + saves + sum(self.prepared.refit_seconds(*key) for key in encodings)

    def expected_seconds(self, family: str) -> float | None:
        # the family's own last cross-validation here, else the data's measured cost per unit, plus
        # preprocessing the folds for an encoding not used yet (`PreparedFolds.cost`)
        fam = FAMILIES[family]
        preprocess = self.prepared.cost(fam.encoding, fam.text_only, self.keep())
        own = [c.fit_seconds for c in self.candidates if c.family == family and c.status == "ok"]
        if own:
            return own[-1] + preprocess
        if not self.unit_seconds:
            return preprocess or None
        return float(np.median(self.unit_seconds)) * fam.cost + preprocess

    def allowed(self, family: str) -> bool:
        return family_allowed(family, self.config, self.task, weighted=self.sample_weight is not None,
                              has_text=self.has_text)

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
        remote = getattr(self.executor, "remote", False)  # a cluster's tasks do not share this machine's cores
        if (self.threads > 1 and not remote) or self.executor.n_workers < 2 or self.n_folds < 2 or family == "dummy":
            return 1
        if remote:
            return min(self.executor.n_workers, self.n_folds)
        workers = min(self.executor.n_workers, self.n_folds)
        need = estimated_bytes(family, len(self.y), self.X.shape[1], self.n_classes) * workers
        if self.config.memory_limit is not None and need > self.config.memory_limit:
            return 1  # folds side by side hold their models at once
        return workers

    def cap(self, family: str, share: float | None = None) -> float:
        """Seconds the cross-validation of ``family`` may take from now, its own refit provided for.

        ``share`` of the time left after the later phases' reserve (default: the family's, by
        whether it can be interrupted and whether it is the first model).
        """
        fam = FAMILIES[family]
        # were it to win, its own refit must fit too: one fold alone (the wall time of a wave of
        # side-by-side folds) on the refit's rows, k / (k - 1) times a fold's, times the rows share
        n_waves = math.ceil(self.n_folds / self.fold_workers(family))
        own_refit = self.n_folds / ((self.n_folds - 1) * n_waves) * self.config.refit_share
        if fam.boosted:
            own_refit *= BOOSTED_REFIT_CUT  # capped, its folds may be cut at their deadline
        if share is None:
            first_model = not any(c.usable and c.family != "dummy" for c in self.candidates)
            share = UNINTERRUPTIBLE_SHARE
            if fam.interruptible:
                share = FIRST_MODEL_SHARE if first_model else INTERRUPTIBLE_SHARE
        return self.budget.cap(share, keep=self.keep()) / (1.0 + own_refit)

    def _empty_folds(self) -> list[Prepared]:
        """Column-less matrices for the dummy baseline, which reads only the number of rows."""
        n_hold = None if self.prepared.holdout is None else len(self.prepared.holdout)
        return [(np.zeros((len(tr), 0)), np.zeros((len(va), 0)), None if n_hold is None else np.zeros((n_hold, 0)), ())
                for tr, va in self.folds]

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
        if self.clock and not force:
            refusal = self.budget.refusal(self.expected_seconds(family), interruptible=fam.interruptible,
                                          keep=self.keep(), kept_for="the refit and ensemble selection")
            if refusal is not None:
                result.status, result.note = "skipped", refusal
                self.notes.append(f"{name}: {refusal}")
                self.refused.append(name)
                return result
        try:  # the encoding's folds, preprocessed once for every candidate (the dummy needs none)
            folds_data = self._empty_folds() if family == "dummy" else self.prepared.get(
                fam.encoding, fam.text_only, self.keep() if self.clock else 0.0, stop=not force)
        except PreprocessTimeout as exc:
            result.status, result.note = "timeout", str(exc)
            self.notes.append(f"{name}: {result.note}")
            return result
        except Exception as exc:  # a preprocessing failing must not end the search
            logger.warning("preprocessing for %s failed: %s", name, exc)
            result.status, result.note = "failed", f"{type(exc).__name__}: {exc}"[:300]
            return result
        if fam.text_only and all(d[0].shape[1] == 0 for d in folds_data):
            result.status, result.note = "skipped", "no text features"
            return result
        cap = self.cap(family) if self.clock and not force else math.inf
        t0 = self.timer()
        oof = np.zeros((len(self.y), self.n_classes)) if self.task != "regression" else np.zeros(len(self.y))
        try:
            # what a fold's fit reads, bound here: the closure a remote executor ships carries these, not the runner
            folds, y, sample_weight, timer = self.folds, self.y, self.sample_weight, self.timer
            task, n_classes, seed, threads, timed = self.task, self.n_classes, self.config.random_state, self.threads, self.clock

            def fit_fold(i: int, stop_at: float | None, share: float,
                         latest: float) -> tuple[np.ndarray, np.ndarray | None, float, int, float, bool, int]:
                (tr, va), (Xtr, Xva, Xho, cats) = folds[i], folds_data[i]
                started = timer()
                late = False
                if stop_at is not None and started > stop_at:
                    late = True
                    # a fold that starts late (the wave before it predicted past its share) still gets a
                    # wave's share to fit in, up to what the search may give this candidate less its validation predictions
                    # (as long as the folds' before it); it leaves the holdout to the folds before it, whose
                    # mean predicts it. Cut to a round or two, it would spoil the cross-validation (seen on a
                    # 330k-row table: folds of 2,847, 2,999 and 1 rounds)
                    stop_at = max(stop_at, min(started + share, latest - max(validated, default=0.0)))
                learner = Learner(
                    family=family, task=task, params=params, categorical_indices=cats,
                    n_classes=n_classes, random_state=seed, n_jobs=threads, deterministic=not timed,
                )
                weights = None if sample_weight is None else sample_weight[tr]
                learner.fit(Xtr, y[tr], X_val=Xva, y_val=y[va], stop_at=stop_at, clock=timer,
                            sample_weight=weights, val_weight=None if sample_weight is None else sample_weight[va])
                t_predict = timer()
                values = learner.predict_values(Xva)
                predict_seconds = timer() - t_predict
                validated.append(predict_seconds)
                # the first fold predicts the holdout even when late: side by side on a busy machine,
                # every fold can start late, and a candidate needs one fold's holdout predictions
                held = None if Xho is None or (late and i > 0) else learner.predict_values(Xho)
                cut = stop_at is not None and t_predict >= stop_at
                return values, held, predict_seconds, learner.n_iterations_, timer() - started, cut, learner.state_bytes()

            validated: list[float] = []  # each finished fold's seconds predicting its validation rows

            # folds run side by side on small tables, where each model uses one thread; a family
            # that cannot be interrupted first runs one fold alone, to project the whole cost
            workers = self.fold_workers(family)
            result.workers = workers
            probe = self.clock and not force and not fam.interruptible
            first = 1 if probe and workers > 1 else 0
            # fold i's share of the time cap ends with its wave of side-by-side folds
            waves = [0] * first + [first + j // workers for j in range(self.n_folds - first)]
            stop_ats = [None if cap == math.inf else t0 + cap * (w + 1) / (waves[-1] + 1) for w in waves]
            share = 0.0 if cap == math.inf else cap / (waves[-1] + 1)
            # (all the search may use less this candidate's own refit, were it to win: a refit squeezed to a
            # few rows would undo what the fold gained; a remote executor's folds do not see each other's
            # predictions: there the bound is this alone)
            latest = math.inf if cap == math.inf else t0 + self.cap(family, share=1.0)
            outputs: list[tuple[np.ndarray, np.ndarray | None, float, int, float, bool, int]] = []
            for i in range(self.n_folds if workers == 1 else first):
                outputs.append(fit_fold(i, stop_ats[i], share, latest))
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
                outputs += self.executor.map(lambda i: fit_fold(i, stop_ats[i], share, latest),
                                             list(range(first, self.n_folds)))
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
        n_held = 0
        for i, (_tr, va) in enumerate(self.folds):  # in fold order: the same sums however folds were scheduled
            values, held, predict_seconds, n_iterations, seconds, cut, state_bytes = outputs[i]
            result.state_bytes = max(result.state_bytes, state_bytes)
            result.cut_by_deadline |= cut
            oof[va] = values
            if held is not None:
                hold_sum = held if hold_sum is None else hold_sum + held
                n_held += 1
            result.predict_seconds += predict_seconds
            result.predict_rows += len(va)
            result.n_iterations.append(n_iterations)
            result.work_seconds += seconds
        result.oof = oof
        result.holdout = None if hold_sum is None else hold_sum / n_held  # a late fold left it to the others
        result.fold_scores = [self.metric.on(va).score(self.y[va], oof[va]) for _tr, va in self.folds]
        if family != "dummy":
            self.unit_seconds.append(result.fit_seconds / fam.cost)
        if self.clock:
            t_score = self.timer()
            self.metric.score(self.y, oof)
            self.metric_seconds.append(self.timer() - t_score)
        logger.info("candidate %s: cv %s=%.5f (%.1fs)", name, self.metric.name, result.cv_mean, result.fit_seconds)
        return result
