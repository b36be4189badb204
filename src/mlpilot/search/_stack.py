"""Stacking: a level-2 linear model over the candidates' out-of-fold predictions.

The greedy ensemble (`mlpilot.search._ensemble.caruana_weights`) averages its
members with weights that add up to one. A stacker learns a linear layer over
the members' outputs instead: non-negative least squares with an intercept
for regression (Breiman's *stacked regressions*), an L2-regularised logistic
regression over the members' log-odds for classifiers. The level-1 features
are the out-of-fold predictions the search already has for every candidate;
the stacker's own score is out of fold too (nested: fitted on k-1 folds of
that matrix, scored on the k-th), so it is compared fairly with the greedy
ensemble's, fold by fold. The registered model keeps the members refit on all
rows (as the greedy ensemble does) and the stacker fitted on the whole
out-of-fold matrix, as scikit-learn's ``StackingClassifier`` does: predicting
costs the members once, not once per fold. See docs/stacking.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlpilot.search._candidates import CandidateResult, refit_seconds
from mlpilot.tasks import Metric
from mlpilot.tune import Budget
from mlpilot.tune._budget import STACK_SHARE
from mlpilot.tune._executor import quiet

if TYPE_CHECKING:
    from mlpilot.search._selection import EnsembleChoice

#: What `TrainConfig.stacking` accepts: ``auto`` tries a stack in timed runs when the budget
#: allows it; ``on`` in every run (deterministic ones too); ``force`` registers it even where it
#: loses to the greedy ensemble (for experiments and tests; the decision says so); ``off`` never.
StackMode = Literal["auto", "on", "force", "off"]
STACK_MODES: tuple[str, ...] = ("auto", "on", "force", "off")
#: Most members a stack has: every member is refit on all rows and run at predict time.
STACK_MAX_MEMBERS = 4
#: Share of the greedy ensemble's out-of-fold gain over the dummy baseline that the stack's
#: nested out-of-fold score must add to it to be chosen: it costs more members at predict time.
STACK_MARGIN = 1e-3
#: L2 strength of the logistic stacker (scikit-learn's ``C``): log-odds inputs are on one scale.
STACK_C = 1.0
#: Probabilities are clipped to [STACK_CLIP, 1 - STACK_CLIP] before their logarithm.
STACK_CLIP = 1e-6


class LinearStacker:
    """A fitted level-2 linear layer over the members' outputs, in the order of ``names``.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    names : list of str
        The members whose outputs it reads, in the order `combine` takes them.
    coef : ndarray
        Regression: ``(n_members,)``. Classifiers: ``(n_outputs, n_inputs)`` over `features`.
    intercept : ndarray
    n_classes : int
        Classifiers: the class codes' count; probabilities have that many columns.
    classes : ndarray, optional
        Classifiers: the class codes the layer's outputs stand for (all of them, usually).
    """

    def __init__(self, task: str, names: list[str], coef: np.ndarray, intercept: np.ndarray, *,
                 n_classes: int = 1, classes: np.ndarray | None = None) -> None:
        self.task = task
        self.names = list(names)
        self.coef = np.asarray(coef, dtype=float)
        self.intercept = np.asarray(intercept, dtype=float)
        self.n_classes = n_classes
        self.classes = None if classes is None else np.asarray(classes, dtype=np.int64)

    def __repr__(self) -> str:
        return f"LinearStacker({self.task!r}, {self.names!r})"

    @staticmethod
    def features(task: str, values: list[np.ndarray]) -> np.ndarray:
        """The level-1 matrix: member values (regression), log-odds of the second class (binary), log-probabilities."""
        if task == "regression":
            return np.column_stack([np.asarray(v, dtype=float) for v in values])
        clipped = [np.clip(np.asarray(v, dtype=float), STACK_CLIP, 1.0 - STACK_CLIP) for v in values]
        if task == "binary":
            return np.column_stack([np.log(p[:, 1]) - np.log(p[:, 0]) for p in clipped])
        return np.hstack([np.log(p) for p in clipped])

    def combine(self, values: list[np.ndarray]) -> np.ndarray:
        """The stack's output from its members' values (in `names` order): values, or probabilities.

        Both prediction paths (the estimator's and the runtime's compiled one)
        call this, so they agree exactly.
        """
        Z = self.features(self.task, values)
        if self.task == "regression":
            return np.asarray(Z @ self.coef + float(self.intercept), dtype=float)
        scores = Z @ self.coef.T + self.intercept
        out = np.zeros((Z.shape[0], self.n_classes))
        classes = self.classes if self.classes is not None else np.arange(self.n_classes)
        if scores.shape[1] == 1:  # two classes: the logistic of one score
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            out[:, classes[0]], out[:, classes[1]] = 1.0 - positive, positive
            return out
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        out[:, classes] = exp / exp.sum(axis=1, keepdims=True)
        return out

    def importance(self) -> dict[str, float]:
        """Each member's share of the layer's absolute coefficients (what the leaderboard shows as its weight)."""
        n = len(self.names)
        magnitude = np.abs(self.coef)
        per_member = magnitude if self.task == "regression" else magnitude.reshape(magnitude.shape[0], n, -1).sum(axis=(0, 2))
        total = float(per_member.sum())
        if total <= 0:
            return {n: 1.0 / len(self.names) for n in self.names}
        return {n: float(v / total) for n, v in zip(self.names, per_member, strict=True)}

    def describe(self) -> str:
        """One line: the layer's kind and its members."""
        kind = "non-negative least squares" if self.task == "regression" else "L2 logistic regression on log-odds"
        return f"{kind} over {', '.join(self.names)}"


def fit_stacker(task: str, names: list[str], values: list[np.ndarray], y: np.ndarray, *, n_classes: int,
                random_state: int, sample_weight: np.ndarray | None = None) -> LinearStacker:
    """Fit the level-2 layer on the members' ``values`` (their out-of-fold predictions) and ``y``.

    Rows count by ``sample_weight`` when given (a weighted run), as in the members' fits.
    Deterministic: the same inputs give the same coefficients (lbfgs, NNLS).
    One BLAS thread: the problem is small, and a pool of threads on a busy
    machine made each lbfgs step cost 14 ms instead of microseconds.
    """
    Z = LinearStacker.features(task, values)
    if task == "regression":
        from sklearn.linear_model import LinearRegression

        with quiet(1):
            reg = LinearRegression(positive=True).fit(Z, y.astype(float), sample_weight=sample_weight)
        return LinearStacker(task, names, reg.coef_, np.asarray(reg.intercept_))
    from sklearn.linear_model import LogisticRegression

    with quiet(1):
        clf = LogisticRegression(C=STACK_C, max_iter=1000, random_state=random_state).fit(
            Z, y, sample_weight=sample_weight)
    return LinearStacker(task, names, clf.coef_, clf.intercept_, n_classes=n_classes,
                         classes=np.asarray(clf.classes_, dtype=np.int64))


def nested_oof(task: str, names: list[str], values: list[np.ndarray], y: np.ndarray,
               folds: list[tuple[np.ndarray, np.ndarray]], *, n_classes: int, random_state: int,
               on_fold: Callable[[int], bool] | None = None,
               sample_weight: np.ndarray | None = None) -> np.ndarray | None:
    """The stack's out-of-fold predictions: for each fold, a stacker fitted on the other folds' rows.

    ``on_fold(i)`` is asked after fold ``i``; when it returns False the work
    stops and None is returned (the budget ran out). ``sample_weight``: each
    row's weight in the stackers' fits.
    """
    out: np.ndarray | None = None
    for i, (tr, va) in enumerate(folds):
        stacker = fit_stacker(task, names, [v[tr] for v in values], y[tr], n_classes=n_classes, random_state=random_state,
                              sample_weight=None if sample_weight is None else sample_weight[tr])
        pred = stacker.combine([v[va] for v in values])
        if out is None:
            out = np.zeros((len(y), *pred.shape[1:]))
        out[va] = pred
        if on_fold is not None and not on_fold(i):
            return None
    return out


@dataclass(frozen=True)
class StackChoice:
    """A stack the search tried: its members, layer, nested out-of-fold scores and the decision.

    ``chosen`` says whether it is the model to register; ``decision`` is the
    recorded sentence with both scores.
    """

    names: list[str]
    stacker: LinearStacker
    oof: np.ndarray
    holdout: np.ndarray | None
    fold_scores: list[float]
    greedy_cv: float
    stack_cv: float
    margin: float
    chosen: bool
    forced: bool
    seconds: float
    decision: str
    greedy_fold_scores: list[float]
    greedy_holdout: np.ndarray | None
    random_state: int = 0

    def to_dict(self, metric: Metric) -> dict[str, Any]:
        """The decision's evidence, in the metric's own sign (the registry event, the model card)."""
        def shown(v: float) -> float:
            return v if metric.greater_is_better else -v

        return {"metric": metric.name, "greedy_cv": shown(self.greedy_cv), "stack_cv": shown(self.stack_cv),
                "margin": self.margin, "winner": "stack" if self.chosen else "greedy", "forced": self.forced,
                "members": list(self.names), "stacker": self.stacker.describe(),
                "stack_fold_scores": [shown(s) for s in self.fold_scores], "seconds": round(self.seconds, 3),
                "decision": self.decision}

    def restricted(self, names: list[str], candidates: dict[str, CandidateResult], y: np.ndarray,
                   folds: list[tuple[np.ndarray, np.ndarray]], metric: Metric) -> StackChoice:
        """This stack over ``names`` only (the refit dropped a member): the layer refit, rescored out of fold."""
        kept = [n for n in self.names if n in names]
        oof, hold, stacker, scores = _stack_over(kept, candidates, y, folds, metric, task=self.stacker.task,
                                                 n_classes=self.stacker.n_classes, random_state=self.random_state)
        assert oof is not None
        return replace(self, names=kept, stacker=stacker, oof=oof, holdout=hold, fold_scores=scores,
                       stack_cv=float(np.mean(scores)))


def stack_members(usable: list[CandidateResult], greedy: dict[str, float], *,
                  predict_limit: float | None = None) -> list[CandidateResult]:
    """The stack's members: the greedy ensemble's, then the best candidate of each other family, by score.

    At most `STACK_MAX_MEMBERS`; with a ``predict_limit`` (seconds per row) a
    candidate joins only while the members' summed predict cost stays within it.
    """
    ranked = sorted(usable, key=lambda c: (c.name not in greedy, -c.cv_mean))
    chosen: list[CandidateResult] = []
    families: set[str] = set()
    for c in ranked:
        if len(chosen) >= STACK_MAX_MEMBERS:
            break
        if c.name not in greedy and c.family in families:
            continue
        if predict_limit is not None and sum(m.predict_cost for m in chosen) + c.predict_cost > predict_limit:
            continue
        chosen.append(c)
        families.add(c.family)
    return chosen


def _stack_over(names: list[str], candidates: dict[str, CandidateResult], y: np.ndarray,
                folds: list[tuple[np.ndarray, np.ndarray]], metric: Metric, *, task: str, n_classes: int, random_state: int,
                on_fold: Callable[[int], bool] | None = None,
                ) -> tuple[np.ndarray | None, np.ndarray | None, LinearStacker, list[float]]:
    oofs = [np.asarray(candidates[n].oof) for n in names]
    weights = metric.sample_weight  # a weighted run's metric carries the rows' weights: the stacker fits with them
    oof = nested_oof(task, names, oofs, y, folds, n_classes=n_classes, random_state=random_state, on_fold=on_fold,
                     sample_weight=weights)
    stacker = fit_stacker(task, names, oofs, y, n_classes=n_classes, random_state=random_state, sample_weight=weights)
    holds = [candidates[n].holdout for n in names]
    hold = None if any(h is None for h in holds) else stacker.combine([np.asarray(h) for h in holds])
    scores = [] if oof is None else [metric.on(va).score(y[va], oof[va]) for _tr, va in folds]
    return oof, hold, stacker, scores


def consider_stack(usable: list[CandidateResult], candidates: list[CandidateResult], choice: EnsembleChoice,
                   y: np.ndarray, metric: Metric, folds: list[tuple[np.ndarray, np.ndarray]], *, task: str,
                   n_classes: int, mode: str, budget: Budget, keep: Callable[[], float], refit_share: float,
                   predict_limit: float | None, random_state: int, notes: list[str]) -> StackChoice | None:
    """Try a stack over the best candidates; chosen only where it beats the greedy ensemble out of fold.

    ``choice`` is the greedy ensemble (`select_ensemble`). The stack is tried
    when ``mode`` asks for it (``auto``: timed runs only) and, with a clock,
    when its expected cost (the nested stacker fits, projected from the first,
    and the refit of members the greedy ensemble does not have) fits
    `STACK_SHARE` of what is left after ``keep()``. Every outcome (skipped,
    lost, won, forced) is a note with its numbers. Returns None when not tried.
    """
    if mode == "off" or (mode == "auto" and not budget.timed):
        return None
    members = stack_members(usable, choice.weights, predict_limit=predict_limit)
    clock = budget.clock if budget.timed else time.perf_counter
    extra_refit, left_out = 0.0, []
    for c in list(members):  # members the greedy ensemble lacks join while their refit fits
        if c.name in choice.weights:
            continue
        cost = refit_seconds(c, len(folds), refit_share)
        if budget.timed and not budget.fits(extra_refit + cost, share=STACK_SHARE, keep=keep()):
            members.remove(c)
            left_out.append(f"{c.name} ({cost:.2f}s)")
        else:
            extra_refit += cost
    if left_out:
        notes.append(
            f"stacking without {', '.join(left_out)}: refitting them is expected to take more than "
            f"{STACK_SHARE:.0%} of the {max(budget.left() - keep(), 0.0):.2f}s left after {keep():.2f}s kept for the refit"
        )
    if len(members) < 2:
        notes.append(f"stacking not tried: {len(members)} candidate(s) to stack within the budget (it needs two)")
        return None
    names = [c.name for c in members]
    by_name = {c.name: c for c in candidates}
    t0 = clock()
    skipped: list[str] = []

    def on_fold(i: int) -> bool:
        if not budget.timed:
            return True
        per_fold = (clock() - t0) / (i + 1)
        rest = per_fold * (len(folds) - i)  # the other folds and the full fit
        if budget.fits(rest + extra_refit, share=STACK_SHARE, keep=keep()):
            return True
        skipped.append(
            f"stacking stopped after {i + 1} of {len(folds)} nested folds to keep the time budget: the rest is "
            f"expected to take {rest:.2f}s ({per_fold:.3f}s a fold) and the extra refits {extra_refit:.2f}s, more "
            f"than {STACK_SHARE:.0%} of the {max(budget.left() - keep(), 0.0):.2f}s left after {keep():.2f}s kept"
        )
        return False

    oof, hold, stacker, scores = _stack_over(names, by_name, y, folds, metric, task=task, n_classes=n_classes,
                                             random_state=random_state, on_fold=on_fold)
    if oof is None:
        notes.extend(skipped)
        return None
    seconds = clock() - t0
    greedy_cv = float(np.mean(choice.fold_scores))
    stack_cv = float(np.mean(scores))
    dummy = next((c for c in candidates if c.family == "dummy" and c.usable), None)
    gain = abs(greedy_cv - dummy.cv_mean) if dummy is not None else 0.0
    margin = STACK_MARGIN * gain
    won = stack_cv > greedy_cv + margin
    chosen = won or mode == "force"
    sign = 1.0 if metric.greater_is_better else -1.0
    verdict = ("the stack is registered" if won else
               "the stack is registered anyway (stacking='force')" if chosen else "the greedy ensemble is kept")
    decision = (
        f"stacking ({stacker.describe()}): nested out-of-fold {metric.name} {sign * stack_cv:.5g} against the greedy "
        f"ensemble's {sign * greedy_cv:.5g} (mean over {len(folds)} folds; the stack must beat it by "
        f"{margin:.2g}): {verdict}"
    )
    notes.append(decision)
    return StackChoice(names=names, stacker=stacker, oof=oof, holdout=hold, fold_scores=scores, greedy_cv=greedy_cv,
                       stack_cv=stack_cv, margin=margin, chosen=chosen, forced=chosen and not won, seconds=seconds,
                       decision=decision, greedy_fold_scores=list(choice.fold_scores), greedy_holdout=choice.holdout,
                       random_state=random_state)

