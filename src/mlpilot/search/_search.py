"""Spending a time budget over candidate models, cross-validated, then ensembling.

The search sees only the development rows; holdout rows are predicted by
each fold model (never used to choose anything), so the evaluation stage can
score every candidate and the ensemble without refitting.

`run_search` is the scheduler: it decides which candidates to try (the dummy
baseline, the portfolio, tuner trials on the best boosted family, a fallback)
and in what order; `mlpilot.search._candidates` evaluates one candidate within
the budget, `mlpilot.search._selection` builds the ensemble. `fit_final`
refits the chosen members.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field, replace
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from mlpilot.exceptions import BudgetWarning, TrainingError
from mlpilot.features import TabularPreprocessor
from mlpilot.search._candidates import (
    PREPROCESS_PLANS,
    CandidateResult,
    CandidateRunner,
    family_allowed,
    has_text_features,
    preprocess_key,
    probe_preprocessing,
    probe_rows,
    refit_seconds,
    text_roles,
)
from mlpilot.search._learners import FAMILIES, Learner
from mlpilot.search._sample import (
    SearchSample,
    choose_sample,
    draw_rows,
    drawn_how,
    fallback_family,
    fallback_params,
    round_rows,
)
from mlpilot.search._selection import PRUNE_TOLERANCE, SPEED_FLOOR, SPEED_TOLERANCE, select_ensemble
from mlpilot.search._stack import FEATURE_MAX_COLUMNS, StackChoice, StackFeatures, consider_stack
from mlpilot.tasks import Metric
from mlpilot.tune import Budget
from mlpilot.tune._budget import (
    PREPROCESS_SHARE,
    REFIT_FLOOR_SHARE,
    REFIT_SAMPLE_SHARE,
    SAMPLE_LEAST_ROWS,
    STACK_RESERVE_SHARE,
    TRIAL_SHARE,
    UNINTERRUPTIBLE_SHARE,
)
from mlpilot.tune._executor import Executor, quiet
from mlpilot.tune._stats import _resolve_seed
from mlpilot.tune._tuner import Tuner

logger = logging.getLogger(__name__)

__all__ = [
    "PRUNE_TOLERANCE",
    "SPEED_FLOOR",
    "SPEED_TOLERANCE",
    "CandidateResult",
    "SearchConfig",
    "SearchResult",
    "choose_n_folds",
    "fit_final",
    "load_portfolio",
    "make_folds",
    "refit_seconds",
    "run_search",
    "text_first",
]

#: Families fit for TF-IDF features: they run first when the signal is in text (`text_first`).
TEXT_FAMILIES = ("linear", "naive_bayes")
#: Share of the feature columns that are text from which the signal is taken to be in text.
TEXT_FIRST_SHARE = 0.5


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
    random_state : int
        Seed of the folds, the tuner and the models.
    n_jobs : int
        Threads of the default local executor (folds fitted side by side on small tables).
    executor : Executor or None
        Where the folds of a candidate are fitted side by side; None: `LocalExecutor`
        with ``n_jobs`` threads. Its ``n_workers`` sizes the waves of folds.
    memory_limit : int or None
        Bytes a candidate may use; larger estimated ones are skipped.
    predict_limit : float or None
        Seconds per predicted row the ensemble's learners may take, as measured
        on the validation folds; slower candidates are left out of the ensemble.
    refit_share : float
        Size of the final refit data relative to the development rows.
    stacking : {"auto", "on", "force", "off"}
        Whether a stack (`mlpilot.search._stack`) is tried beside the greedy ensemble.
    stack_layer : {"auto", "linear", "features"}
        Which level-2 layers the stack tries: both (chosen by their nested
        out-of-fold scores), the linear layer, or the feature stack only.
    seed : int, optional
        Deprecated former name of ``random_state`` (warns with a `FutureWarning`).
    """

    budget: Budget = field(default_factory=lambda: Budget(None))
    n_trials: int = 10
    n_folds: int | None = None
    families: tuple[str, ...] | None = None
    random_state: int = 0
    n_jobs: int = 2
    executor: Executor | None = field(default=None, compare=False)
    memory_limit: int | None = None
    predict_limit: float | None = None
    refit_share: float = 1.25
    stacking: str = "auto"
    stack_layer: str = "auto"
    seed: InitVar[int | None] = None

    def __post_init__(self, seed: int | None) -> None:
        object.__setattr__(self, "random_state", _resolve_seed(self.random_state, seed, "SearchConfig"))


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
    # per (encoding, text only): the preprocessing plan the folds used (the refit uses it too) and
    # the expected seconds of the refit's preprocessing
    preprocess: dict[tuple[str, bool], dict[str, int]] = field(default_factory=dict)
    preprocess_refit: dict[tuple[str, bool], float] = field(default_factory=dict)
    stack: StackChoice | None = None  # the stack tried beside the greedy ensemble (registered if ``chosen``)
    # the sample of the development rows the search ran on (None: every row); ``folds``, the out-of-fold
    # predictions and the ensemble's are over those rows, in their order
    sample: SearchSample | None = None

    def rows(self, n_rows: int) -> np.ndarray:
        """Positions among the ``n_rows`` development rows that the out-of-fold predictions are for."""
        return np.arange(n_rows) if self.sample is None else self.sample.rows

    @property
    def stacked(self) -> bool:
        """Whether the ensemble is the stack (its weights are then each member's share of the layer)."""
        return self.stack is not None and self.stack.chosen

    def alternative(self) -> tuple[str, str, list[float], np.ndarray | None, str] | None:
        """The leaderboard row of the ensemble not chosen: (name, family, fold scores, holdout, note), or None."""
        if self.stack is None:
            return None
        if self.stack.chosen:
            return "greedy_ensemble", "ensemble", self.stack.greedy_fold_scores, self.stack.greedy_holdout, \
                f"not chosen: {self.stack.decision}"
        return "stack", "stack", self.stack.fold_scores, self.stack.holdout, f"not chosen: {self.stack.decision}"

    def ensemble_label(self) -> tuple[str, str]:
        """The ensemble row's family and note: the stack's layer, or the greedy weights."""
        if self.stack is not None and self.stack.chosen:
            return "stack", self.stack.decision
        return "ensemble", " + ".join(f"{w:.2f}×{m}" for m, w in self.weights.items())

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
        stack = self.stack
        if stack is not None and stack.chosen:
            if len(weights) >= 2:  # the layer refit over the members kept
                stack = stack.restricted(list(weights), {c.name: c for c in self.candidates}, y, self.folds, metric)
                return replace(self, stack=stack, weights=stack.stacker.importance(), ensemble_oof=stack.oof,
                               ensemble_holdout=stack.holdout, ensemble_fold_scores=stack.fold_scores)
            stack = replace(stack, chosen=False)  # one member left: it is the model
        total = sum(weights.values())
        kept = {name: w / total for name, w in weights.items()}
        oof = np.asarray(sum(w * self.candidate(n).oof for n, w in kept.items()))  # type: ignore[operator,misc]
        hold = None
        if self.ensemble_holdout is not None:
            hold = np.asarray(sum(w * self.candidate(n).holdout for n, w in kept.items()))  # type: ignore[operator,misc]
        scores = [metric.on(va).score(y[va], oof[va]) for _tr, va in self.folds]
        return replace(self, weights=kept, ensemble_oof=oof, ensemble_holdout=hold, ensemble_fold_scores=scores,
                       stack=stack)


def load_portfolio(task: str) -> list[dict[str, Any]]:
    """The known-good configurations for ``task``, in the order they are tried."""
    text = resources.files("mlpilot.search").joinpath("portfolio.json").read_text()
    key = "regression" if task == "regression" else "classification"
    return list(json.loads(text)[key])


def text_first(roles: dict[str, str]) -> str | None:
    """Why the text-suited families (`TEXT_FAMILIES`) run first on these columns, or None.

    The rule is cheap and read from the columns alone: the text columns are at
    least `TEXT_FIRST_SHARE` of the features, so the signal is mostly in text,
    where a linear model or naive Bayes over TF-IDF is fast and strong and the
    boosting families, given the text only as a few SVD components, are slow
    and weaker (a 30 s train on food reviews scored AUC 0.81 when they ran
    first and took the time, 0.86 for TF-IDF + logistic regression alone).

    Examples
    --------
    >>> text_first({"review": "text"})
    'text columns are 1 of 1 features (>= 50%): the text-suited families (linear, naive_bayes) run first'
    >>> text_first({"review": "text", "x": "numeric", "y": "numeric"}) is None
    True
    """
    n_text = sum(1 for r in roles.values() if r == "text")
    if not n_text or n_text < TEXT_FIRST_SHARE * len(roles):
        return None
    return (f"text columns are {n_text} of {len(roles)} features (>= {TEXT_FIRST_SHARE:.0%}): the text-suited "
            f"families ({', '.join(TEXT_FAMILIES)}) run first")


def text_folds(X: pd.DataFrame, y: np.ndarray, roles: dict[str, str], n_folds: int, *, encoding: str,
               holdout: pd.DataFrame | None, config: SearchConfig, probes: dict[tuple[str, bool], tuple[float, float]],
               notes: list[str]) -> int:
    """Folds (at most ``n_folds``, at least 2) whose text preprocessing fits `PREPROCESS_SHARE` of the budget.

    Every fold fits the text features (TF-IDF, SVD, a cross-fitted linear
    model) once per encoding, and they cannot be interrupted: a probe on a
    sample (`probe_preprocessing`, kept in ``probes`` for the search) gives
    their cost per row, projected for ``encoding``'s folds and the refit.
    Fewer folds are chosen, and the choice noted with its numbers, only when
    the full count's projection does not fit.
    """
    budget = config.budget
    rows = probe_rows(len(y), config.random_state)
    fit_row, transform_row = probes[(encoding, False)] = probe_preprocessing(
        X, y, rows, encoding=encoding, roles=roles, plan=PREPROCESS_PLANS[0], random_state=config.random_state, timer=budget.clock,
        threads=1)
    n_hold = 0 if holdout is None else len(holdout)

    def cost(k: int) -> float:
        return fit_row * len(y) * (k - 1 + config.refit_share) + transform_row * (len(y) + k * n_hold)

    allowed = budget.cap(PREPROCESS_SHARE)
    chosen = n_folds
    while chosen > 2 and cost(chosen) > allowed:
        chosen -= 1 if chosen <= 3 else 2
    if chosen < n_folds:
        notes.append(
            f"{chosen} folds instead of {n_folds}: preprocessing the text ({encoding} encoding) is expected to take "
            f"{cost(n_folds):.2f}s for {n_folds} folds and the refit, {cost(chosen):.2f}s for {chosen} (probe on "
            f"{len(rows)} rows: {fit_row * 1e3:.2f} ms a row to fit, {transform_row * 1e3:.2f} ms to transform), and "
            f"may take {PREPROCESS_SHARE:.0%} of the {max(budget.left(), 0.0):.2f}s left ({allowed:.2f}s)"
        )
    return chosen


def choose_n_folds(n_rows: int, y: np.ndarray, task: str, requested: int | None) -> int:
    k = requested or (5 if n_rows <= 10000 else 3)
    if task != "regression":
        k = min(k, int(np.bincount(y.astype(int)).min()))
    return max(2, min(k, n_rows // 2))


def make_folds(y: np.ndarray, task: str, n_folds: int, random_state: int = 0, *,
               order: np.ndarray | None = None, seed: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds: shuffled (stratified for classification), or blocked in time.

    With ``order`` (each row's time; NaN: none, taken as the earliest) every validation fold is one
    contiguous stretch of time (`time_folds`). ``seed``: deprecated name of ``random_state``.
    """
    random_state = _resolve_seed(random_state, seed, "make_folds")
    if order is not None:
        return time_folds(order, n_folds)
    splitter: Any
    if task == "regression":
        splitter = KFold(n_folds, shuffle=True, random_state=random_state)
    else:
        splitter = StratifiedKFold(n_folds, shuffle=True, random_state=random_state)
    return [(tr, va) for tr, va in splitter.split(np.zeros(len(y)), y)]


def time_folds(order: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Blocked folds: the rows sorted by ``order`` (stable; NaN first) and cut into ``n_folds`` stretches.

    Each fold validates on one stretch of time and trains on the others, so no row is scored by a
    model that saw its neighbours in time, while every row still gets an out-of-fold prediction (the
    ensemble and the stack are chosen on those). Blocked rather than forward-only: the early stretches
    are predicted by models that saw later rows (a forward-only scheme leaves them without predictions).
    """
    times = np.asarray(order, dtype=float)
    ranked = np.argsort(np.where(np.isnan(times), -np.inf, times), kind="stable")
    every = np.arange(len(times))
    return [(np.setdiff1d(every, block), np.sort(block)) for block in np.array_split(ranked, n_folds)]


def _classes_in_every_fold(folds: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray) -> bool:
    """Whether each fold's validation rows (hence each training part) hold every class of ``y``."""
    n = len(np.unique(y))
    return all(len(np.unique(y[va])) == n for _tr, va in folds)


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
    sample_weight: np.ndarray | None = None,
    time_order: np.ndarray | None = None,
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
    sample_weight : ndarray, optional
        Each development row's weight: the folds' fits, their scores, the
        ensemble's weights and its scores weigh the rows by it; a family that
        cannot weight rows (none of the built-in ones) is left out, with a note.
    time_order : ndarray, optional
        Each development row's time (NaN: none): the folds are then stretches
        of time (`time_folds`) instead of shuffled, unless a class would be
        missing from a fold (then stratified, with a note).

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
    n_folds = choose_n_folds(len(y), y, task, config.n_folds)
    early_notes: list[str] = []
    probes: dict[tuple[str, bool], tuple[float, float]] = {}
    first_text = text_first(roles)
    if clock and config.n_folds is None and has_text_features(X, roles):
        n_folds = text_folds(X, y, roles, n_folds, encoding="onehot" if first_text else "ordinal",
                             holdout=holdout, config=config, probes=probes, notes=early_notes)
    sample = None
    if clock:  # a large table: the search runs on a sample when a probe says every row would not fit
        has_text = any(r == "text" for r in roles.values())

        def probing() -> None:
            if on_progress is not None:
                on_progress({"elapsed": time.perf_counter() - start, "n_trials": 0, "best_score": None,
                             "best_name": None, "current": "cost probe"})

        family = fallback_family(lambda f: family_allowed(f, config, task, weighted=sample_weight is not None,
                                                          has_text=has_text))
        sample = choose_sample(
            X, y, task=task, roles=roles, n_classes=n_classes, n_folds=n_folds, family=family, budget=budget,
            refit_share=config.refit_share, random_state=config.random_state,
            threads=1,  # a fit of a few thousand rows; OpenMP threads on a busy machine made it 35x slower
            keep=0.0 if config.stacking == "off" else STACK_RESERVE_SHARE * (budget.seconds or 0.0),
            sample_weight=sample_weight, on_probe=probing)
        if sample is not None:
            early_notes.insert(0, sample.describe())
            X, y = X.iloc[sample.rows], y[sample.rows]
            sample_weight = None if sample_weight is None else sample_weight[sample.rows]
            time_order = None if time_order is None else time_order[sample.rows]
            n_folds = choose_n_folds(len(y), y, task, n_folds)
    folds = make_folds(y, task, n_folds, config.random_state, order=time_order)
    if time_order is not None:
        if task == "regression" or _classes_in_every_fold(folds, y):
            early_notes.append(
                f"cross-validation: {n_folds} folds, each one stretch of time (blocked, not shuffled), so a row is "
                "never scored by a model that saw its neighbours in time"
            )
        else:
            folds = make_folds(y, task, n_folds, config.random_state)
            early_notes.append(
                f"cross-validation: shuffled stratified folds, not stretches of time: some class has no row in one "
                f"of {n_folds} stretches, so a fold could not score it (the holdout is still the latest rows)"
            )
    if sample_weight is not None:
        metric = metric.weighted(sample_weight)
    runner = CandidateRunner(X, y, task=task, metric=metric, roles=roles, n_classes=n_classes, holdout=holdout,
                             config=config, folds=folds, start=start, on_progress=on_progress, probes=probes,
                             sample_weight=sample_weight)
    candidates, notes, refused = runner.candidates, runner.notes, runner.refused
    notes.extend(early_notes)
    if sample_weight is not None:
        unweighted = [f for f, fam in FAMILIES.items() if not fam.weighted
                      and (config.families is None or f in config.families)]
        if unweighted:
            notes.append(f"left out {', '.join(unweighted)}: sample weights were given and they cannot weight rows")
    evaluate, keep, allowed = runner.evaluate, runner.keep, runner.allowed

    # 1. dummy baseline, then the portfolio in order
    candidates.append(evaluate("dummy", "dummy", {}, force=True))
    portfolio = load_portfolio(task)
    if first_text is not None:
        notes.append(first_text)
        portfolio.sort(key=lambda entry: entry["family"] not in TEXT_FAMILIES)  # stable: the rest keep their order
    for entry in portfolio:
        if not allowed(entry["family"]):
            continue
        if clock and budget.left() - keep() <= 0:
            notes.append(
                f"the time budget ended before {entry['name']} and later configurations: "
                f"{max(budget.left(), 0.0):.2f}s left, {keep():.2f}s kept for the refit and ensemble selection"
            )
            break
        # when the signal is in text, the first linear model runs whatever its expected time: were it
        # refused, the fallback would train that same model after the others had spent the time
        force = (first_text is not None and entry["family"] == "linear"
                 and not any(c.usable and c.family != "dummy" for c in candidates))
        if force and clock:
            notes.append(f"{entry['name']} runs first whatever its expected time: the text carries the signal and it "
                         "is the model the search would fall back to")
        candidates.append(evaluate(entry["name"], entry["family"], entry["params"], force=force))

    # 2. the tuner, on the best boosted family, while time (or trials) remain
    boosted = [c for c in candidates if c.usable and FAMILIES[c.family].boosted and FAMILIES[c.family].space]
    if boosted:
        best_family = max(boosted, key=lambda c: c.cv_mean).family
        space = FAMILIES[best_family].search_space()
        tuner = Tuner(space, random_state=config.random_state)
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
        # on a sampled table its cost was probed and the sample sized for it: bounded by the deadline too
        fallback = fallback_family(allowed)
        params = fallback_params(fallback)
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
    choice = select_ensemble(usable, candidates, y, metric, folds, with_holdout=holdout is not None, budget=budget,
                             metric_seconds=runner.metric_seconds, refit_reserve=runner.refit_reserve,
                             predict_limit=config.predict_limit, notes=notes)
    # 5. a stack over the best candidates, registered only where it beats the greedy ensemble out of fold
    stack = consider_stack(usable, candidates, choice, y, metric, folds, task=task, n_classes=n_classes,
                           mode=config.stacking, budget=budget, keep=runner.refit_reserve,
                           refit_share=config.refit_share, predict_limit=config.predict_limit, random_state=config.random_state,
                           notes=notes, layer=config.stack_layer,
                           features=lambda members: stack_features(runner, members, len(y)))
    if stack is not None and stack.chosen:
        choice = replace(choice, weights=stack.stacker.importance(), oof=stack.oof, holdout=stack.holdout,
                         fold_scores=stack.fold_scores)
    runner.report("ensemble")
    return SearchResult(
        candidates=candidates,
        folds=folds,
        weights=choice.weights,
        ensemble_oof=choice.oof,
        ensemble_holdout=choice.holdout,
        ensemble_fold_scores=choice.fold_scores,
        stack=stack,
        notes=notes,
        seconds=time.perf_counter() - start,
        ensemble_seconds=choice.seconds,
        refit_reserve=runner.refit_reserve() if clock else 0.0,
        refused=refused,
        sample=sample,
        preprocess=dict(runner.prepared.plans),
        preprocess_refit={key: runner.prepared.refit_seconds(*key) for key in runner.prepared.fit_seconds},
    )


def stack_features(runner: CandidateRunner, members: list[CandidateResult], n_rows: int) -> StackFeatures | str:
    """The encoded features the feature stack reads: a member's folds' validation matrices, out of fold.

    The member is the first (in the stack's order) whose encoding covers the
    whole table (not a text-only one), preferring the ordinal encoding (a
    column per feature, what trees read best); its folds' preprocessed
    matrices are already cached, so nothing is encoded again. Returns why
    not, as a sentence, when no member's features can be used (sparse, wider
    than `FEATURE_MAX_COLUMNS`).
    """
    import scipy.sparse as sp

    whole = [c for c in members if not runner.prepared.key(FAMILIES[c.family].encoding, FAMILIES[c.family].text_only)[1]]
    whole.sort(key=lambda c: FAMILIES[c.family].encoding != "ordinal")  # stable: the stack's order otherwise
    reasons = []
    for c in whole:
        fam = FAMILIES[c.family]
        if not runner.prepared.has(fam.encoding, fam.text_only):
            reasons.append(f"{c.name}'s folds were not preprocessed")
            continue
        prepared = runner.prepared.get(fam.encoding, fam.text_only)
        matrices = [p[1] for p in prepared]
        if any(sp.issparse(m) for m in matrices):
            reasons.append(f"{c.name}'s {fam.encoding} encoding is sparse")
            continue
        widths = {np.asarray(m).shape[1] for m in matrices}
        if len(widths) != 1 or next(iter(widths)) > FEATURE_MAX_COLUMNS:
            reasons.append(f"{c.name}'s {fam.encoding} encoding has {sorted(widths)} columns "
                           f"(one width, at most {FEATURE_MAX_COLUMNS}, is needed)")
            continue
        oof = np.zeros((n_rows, next(iter(widths))))
        for (_tr, va), m in zip(runner.folds, matrices, strict=True):
            oof[va] = np.asarray(m, dtype=float)
        holds = [p[2] for p in prepared]
        holdout = None if any(h is None or sp.issparse(h) for h in holds) else [np.asarray(h, dtype=float) for h in holds]
        return StackFeatures(member=c.name, oof=oof, holdout=holdout)
    if not whole:
        return "every member reads text-only features"
    return "; ".join(reasons)


def fit_final(
    X: pd.DataFrame,
    y: np.ndarray,
    result: SearchResult,
    *,
    task: str,
    roles: dict[str, str],
    n_classes: int,
    random_state: int = 0,
    n_jobs: int,
    deterministic: bool,
    budget: Budget | None = None,
    sample_weight: np.ndarray | None = None,
    seed: int | None = None,
) -> tuple[list[tuple[Any, Any]], list[str], list[float], list[str]]:
    """Refit the ensemble members on ``X, y`` (rows weighted by ``sample_weight``); return members, names, weights, notes.

    Members are refit in order of weight; a member after the first whose
    expected refit time (from its cross-validation) does not fit what is left
    of ``budget`` is not started: it is dropped and the weights renormalised.
    With a clock the first is the member of the best cross-validation score
    (where members may be dropped, the one kept alone is the best single one).
    Re-score the search with `SearchResult.with_weights` before reporting.
    ``seed`` is the deprecated former name of ``random_state``.
    """
    random_state = _resolve_seed(random_state, seed, "fit_final")
    budget = budget or Budget(None)
    notes: list[str] = []
    n_jobs = 1 if len(y) * max(X.shape[1], 1) < 1_000_000 else n_jobs
    order = sorted(result.weights.items(), key=lambda kv: -kv[1])
    if budget.timed and len(order) > 1:
        # by weight, the member kept when no other fits could be worse alone than another member
        # (medicaldata/covid_testing, 20 s: mlp 0.62 + lightgbm 0.38; lightgbm dropped, mlp alone
        # scored log loss 0.082 on the holdout against lightgbm's 0.062)
        best = max(order, key=lambda kv: np.nan_to_num(result.candidate(kv[0]).cv_mean, nan=-np.inf))
        order = [best] + [kv for kv in order if kv is not best]
    has_text = any(r == "text" for r in roles.values())
    members: list[tuple[Any, Any]] = []
    names: list[str] = []
    weights: list[float] = []
    n_folds = len(result.folds)
    if budget.timed and order:
        X, y, sample_weight = _refit_sample(X, y, result, order[0][0], task=task, roles=roles, budget=budget,
                                            random_state=random_state, sample_weight=sample_weight, notes=notes)
    shared: dict[tuple[str, bool], Any] = {}  # one fitted preprocessor per encoding, shared by members
    for name, weight in order:
        cand = result.candidate(name)
        fam = FAMILIES[cand.family]
        # a text-only encoding of a table with only text columns is the full one (as in the search)
        text_only = fam.text_only and has_text and any(r != "text" for r in roles.values())
        key = (fam.encoding, text_only)
        if budget.timed and members:
            estimate = refit_seconds(cand, n_folds, len(y) / max(len(result.ensemble_oof), 1))
            if key not in shared:  # and its preprocessing, unless an earlier member's is shared
                estimate += result.preprocess_refit.get(key, 0.0)
            if not budget.fits(estimate):
                notes.append(
                    f"dropped ensemble member {name} (weight {weight:.2f}) to keep the time budget: its refit "
                    f"is expected to take {estimate:.2f}s, {max(budget.left(), 0.0):.2f}s were left; "
                    "the scores reported are those of the members kept"
                )
                continue
        if key not in shared:
            sub_roles = text_roles(roles) if text_only else roles
            # the plan the folds were scored with (fewer text features when the budget asked for it)
            pre = TabularPreprocessor(encoding=fam.encoding, roles=sub_roles, random_state=random_state,
                                      **result.preprocess.get(key, {}))
            with quiet(n_jobs):
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
            random_state=random_state, n_jobs=n_jobs, deterministic=deterministic,
        )
        learner.fit(Xt, y, stop_at=stop_at, clock=budget.clock, sample_weight=sample_weight)
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


def _refit_sample(X: pd.DataFrame, y: np.ndarray, result: SearchResult, best: str, *, task: str,
                  roles: dict[str, str], budget: Budget, random_state: int, sample_weight: np.ndarray | None,
                  notes: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """The refit's rows: all of them when the best member's refit is expected to fit, else the largest sample that does.

    The expected time is the member's cross-validated fit and its encoding's
    preprocessing, per row, times the rows (grown as the search's probe
    measured, for its family); a sample is expected to take
    `REFIT_SAMPLE_SHARE` of the refit's time left, never fewer than
    `SAMPLE_LEAST_ROWS` rows, drawn as the search's is and noted with its numbers.
    """
    cand = result.candidate(best)
    n_search = max(len(result.ensemble_oof), 1)
    learner = refit_seconds(cand, len(result.folds), len(y) / n_search)
    # the preprocessing's expected time was measured for the refit the search planned (its rows or a bit more)
    preprocess = result.preprocess_refit.get(
        preprocess_key(FAMILIES[cand.family].encoding, FAMILIES[cand.family].text_only, roles), 0.0) * len(y) / n_search
    expected = learner + preprocess
    share = REFIT_SAMPLE_SHARE
    allowed = budget.cap(share)
    # the search's probe measured how the fallback family's time grows with the rows: faster than in proportion
    # for a linear model's solver (more iterations on more rows); other families are taken as proportional
    sample = result.sample
    exponent = sample.exponent if sample is not None and sample.family == cand.family else 1.0
    expected *= (len(y) / n_search) ** (exponent - 1.0)
    if expected <= allowed or len(y) <= SAMPLE_LEAST_ROWS:
        return X, y, sample_weight
    # expected(rows) = expected * (rows / len(y)) ** exponent: the most rows expected to take ``allowed``
    size = round_rows(len(y) * (allowed / expected) ** (1.0 / exponent), len(y))
    if size >= len(y):
        return X, y, sample_weight
    rows = draw_rows(y, task, size, random_state)
    notes.append(
        f"the members were refit on a sample of {size:,} of the {len(y):,} rows ({drawn_how(task)}, "
        f"seed {random_state}) to keep the time budget: the refit of {best} on every row was expected to take "
        f"{expected:.2f}s ({learner:.2f}s its fit and {preprocess:.2f}s preprocessing at its cross-validation's cost "
        f"a row on {n_search:,} rows, grown as rows^{exponent:.2f}), and it may be expected to take {share:.0%} of the "
        f"{max(budget.left(), 0.0):.2f}s left ({allowed:.2f}s)"
    )
    return X.iloc[rows], y[rows], None if sample_weight is None else sample_weight[rows]
