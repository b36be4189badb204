"""Choosing the champion on validation folds that took no part in tuning.

Every family is tuned on validation fold 0, so its fold-0 score is the best of
many tries on one set of users: optimistic, the more so the more trials it had
(the winner's curse). The best few families by fold-0 score are therefore
refitted on fresh folds (`validation_folds`) and the champion is the one with
the best mean NDCG there.

Their blend (of the families within ``BLEND_MIN_SHARE`` of the best) is
cross-fitted on the same folds: its weights are learned on the other fresh
folds and scored on each one in turn. It must beat its best member there, paired
over the same users, with a one-sided p-value below ``BLEND_MAX_P``. A blend's
edge also tends to shrink as its best member learns from more data, and every
validation model learns from less data than the final one (at most 80% of the
training set): so the blend's members are also refitted on a subsample
(``SUBSAMPLE``) of each fold's training part, and the blend is kept only if
its edge, extended along the learning curve to the final training size
(``g + (g - g_sub) * log(n_final / n_fold) / log(n_fold / n_sub)`` per user),
still passes the same test. The extension is a veto, never a reason to blend:
single models' learning curves are too curved to extend reliably, so they are
compared as measured.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from mlpilot.recommend._data import Interactions
from mlpilot.recommend._inputs import input_matrix, scoring_matrix
from mlpilot.recommend._metrics import paired_test
from mlpilot.recommend._models import BaseRecommender
from mlpilot.recommend._split import split_interactions
from mlpilot.recommend._tuning import (
    TuningResult,
    Validation,
    fit_blend_weights,
    make_blend_scores,
    make_model,
)
from mlpilot.tune._budget import SELECTION_FOLD_MARGIN

logger = logging.getLogger(__name__)

#: Families carried to the fresh folds (the best by fold-0 score), and blended.
CANDIDATES = 4
#: Share of a fold's training part the learning-curve fit sees.
SUBSAMPLE = 0.7
BLEND_GRID = (0.1, 0.25, 0.5, 1.0)
BLEND_MAX_MEMBERS = 3
#: The blend is kept when it beats its best member with a one-sided paired
#: p-value below this: within noise the single model is preferred, as it is
#: simpler, cheaper to serve and generalises at least as well.
BLEND_MAX_P = 0.1
#: Only families scoring at least this share of the best one's fresh-fold NDCG
#: are blended: what a clearly weaker member adds on validation is small and
#: the first thing lost at another data size or period.
BLEND_MIN_SHARE = 0.95


@dataclass
class Fold:
    """One fresh validation fold: model inputs at two sizes and the users to rank."""

    X: sp.csr_matrix
    history: sp.csr_matrix
    validation: Validation
    #: Input of the learning-curve fit; its models score the same histories.
    X_sub: sp.csr_matrix
    #: ``log(n_final / n_fold) / log(n_fold / n_sub)``: how far to extend the slope.
    growth: float

    def scores(self, model: BaseRecommender) -> np.ndarray:
        users = self.validation.users
        return model.score(self.history[users], users)


def make_fold(
    data: Interactions,
    fit_mask: np.ndarray,
    val_mask: np.ndarray,
    *,
    method: str,
    weighting: str,
    recency: float | None,
    k: int,
    random_state: int,
) -> Fold | None:
    """The fresh fold of ``data`` (the whole training set), or None when it has nothing to rank."""
    fit, val = data.subset(fit_mask), data.subset(val_mask)
    relevant = val.matrix(positives_only=True)
    if relevant.nnz == 0:
        return None
    # the subsample keeps the latest interactions in time-based splits, so it ends where the fold does
    if method == "random":
        keep, _ = split_interactions(fit, method=method, test_size=1.0 - SUBSAMPLE, random_state=random_state)
    else:
        _, keep = split_interactions(fit, method=method, test_size=SUBSAMPLE, random_state=random_state)
    sub = fit.subset(keep)
    if not 0 < len(sub) < len(fit) < len(data):
        return None
    seen = fit.matrix()
    validation = Validation(seen, relevant, k=k, exclude=seen, random_state=random_state)
    return Fold(
        X=input_matrix(fit, weighting),
        history=scoring_matrix(fit, weighting, recency),
        validation=validation,
        X_sub=input_matrix(sub, weighting),
        growth=math.log(len(data) / len(fit)) / math.log(len(fit) / len(sub)),
    )


@dataclass
class Selection:
    """The champion and the evidence for it."""

    champion: str
    #: Mean NDCG per candidate on the fresh folds (fold 0 when there was no time for one).
    scores: dict[str, float]
    blend_weights: dict[str, float] = field(default_factory=dict)
    #: One-sided paired p-value of the blend against its best member (None: not tried);
    #: the learning-curve check's when it ran.
    blend_p_value: float | None = None
    #: Fresh folds used (0: chosen on fold 0).
    n_folds: int = 0
    #: The blend's edge over its best member extended to the final training size (None: not checked).
    blend_extended_gain: float | None = None


def score_on_folds(
    candidates: dict[str, TuningResult],
    folds: list[Fold],
    *,
    sub: bool,
    deadline: float | None,
    random_state: int,
) -> tuple[dict[str, list[np.ndarray]], int]:
    """Score matrices of each candidate on each fold, folds run while time allows.

    A fold is started only if the candidates' fit time (one tuning trial each,
    then the last fold's actual time) fits before ``deadline``; None: no limit.
    """
    scores: dict[str, list[np.ndarray]] = {name: [] for name in candidates}
    cost = sum(r.seconds / max(r.n_trials, 1) for r in candidates.values()) * (SUBSAMPLE if sub else 1.0)
    done = 0
    for fold in folds:
        if deadline is not None and time.perf_counter() + SELECTION_FOLD_MARGIN * cost > deadline:
            logger.info("no time for another selection fold (about %.0fs needed)", cost)
            break
        t0 = time.perf_counter()
        for name, result in candidates.items():
            if name not in scores:
                continue
            try:
                model = make_model(name, result.params, random_state).fit(fold.X_sub if sub else fold.X)
                scores[name].append(fold.scores(model))
            except Exception as exc:  # scored on every fold or not at all
                logger.info("%s could not be refitted on a selection fold: %s", name, exc)
                del scores[name]
        cost = time.perf_counter() - t0
        done += 1
    return {n: s for n, s in scores.items() if len(s) == done}, done


def select(
    tuning: dict[str, TuningResult],
    fold0: Validation,
    folds: list[Fold],
    *,
    blend: bool,
    deadline: float | None,
    random_state: int,
) -> Selection:
    """Choose the champion among the tuned families and their blend (see the module docstring).

    Without time for a fresh fold the choice falls back to fold 0, and the
    blend's weights are learned on half of its users and checked on the other half.
    """
    ok = {n: r for n, r in tuning.items() if r.error is None and r.val_scores is not None}
    ranked = sorted(ok, key=lambda n: (-ok[n].score, n))[:CANDIDATES]
    full, n_folds = score_on_folds({n: ok[n] for n in ranked}, folds, sub=False, deadline=deadline, random_state=random_state)
    if not n_folds or not full:
        return _select_on_fold0(ok, fold0, blend=blend, random_state=random_state)
    used = folds[:n_folds]
    names = sorted(full)
    per_user = {n: [f.validation.per_user_ndcg(s) for f, s in zip(used, full[n], strict=True)] for n in names}
    scores = {n: float(np.mean([u.mean() for u in per_user[n]])) for n in names}
    best = max(names, key=lambda n: scores[n])
    selection = Selection(best, scores, n_folds=n_folds)
    pool = {n: full[n] for n in names if scores[n] >= BLEND_MIN_SHARE * scores[best]}
    if not blend or len(pool) < 2 or n_folds < 2:
        return selection
    # cross-fitting: weights from the other folds, scored on this one
    fold_weights = [_fit_weights(pool, used, [i for i in range(n_folds) if i != j]) for j in range(n_folds)]
    blended = [
        used[j].validation.per_user_ndcg(make_blend_scores({n: full[n][j] for n in w}, w))
        for j, w in enumerate(fold_weights)
    ]
    final = _fit_weights(pool, used, list(range(n_folds)))
    if not _blend_wins(selection, final, np.concatenate(blended), np.concatenate(per_user[best])):
        return selection
    # the veto: does the edge hold up as the members learn from more data?
    members = sorted({n for w in fold_weights for n in w} | {best})
    sub, n_sub = score_on_folds({n: ok[n] for n in members}, used, sub=True, deadline=deadline, random_state=random_state)
    if n_sub < n_folds or set(sub) != set(members):
        logger.info("no time to check the blend along the learning curve; not blending")
        return selection
    extended = []
    for j, (fold, w) in enumerate(zip(used, fold_weights, strict=True)):
        gain = blended[j] - per_user[best][j]
        gain_sub = fold.validation.per_user_ndcg(make_blend_scores({n: sub[n][j] for n in w}, w)) - (
            fold.validation.per_user_ndcg(sub[best][j])
        )
        extended.append(gain + fold.growth * (gain - gain_sub))
    gains = np.concatenate(extended)
    selection.blend_extended_gain = float(gains.mean())
    if _blend_wins(selection, final, gains, np.zeros_like(gains), label="extended to the final size"):
        selection.champion = "blend"
        selection.blend_weights = {n: float(w) for n, w in final.items() if w > 0}
    return selection


def _fit_weights(scores: dict[str, list[np.ndarray]], folds: list[Fold], rows: list[int]) -> dict[str, float]:
    """Blend weights learned on some folds at once (score matrices stacked by rows)."""
    stacked = {n: np.concatenate([s[j] for j in rows]) if len(rows) > 1 else s[rows[0]] for n, s in scores.items()}
    target = Validation.stack([folds[j].validation for j in rows]) if len(rows) > 1 else folds[rows[0]].validation
    weights, _ = fit_blend_weights(stacked, target, max_members=BLEND_MAX_MEMBERS, grid=BLEND_GRID)
    return {n: w for n, w in weights.items() if w > 0}


def _blend_wins(
    selection: Selection, weights: dict[str, float], blended: np.ndarray, member: np.ndarray, *, label: str = "measured"
) -> bool:
    """Whether the blend beats its best member (one-sided paired test); records the evidence."""
    if len(weights) < 2:
        return False
    test = paired_test(blended, member, metric="ndcg")
    p_value = test.p_value / 2 if test.mean_difference > 0 else 1.0 - test.p_value / 2
    if label == "measured":
        selection.scores["blend"] = float(blended.mean())
    selection.blend_p_value = p_value
    wins = test.mean_difference > 0 and p_value < BLEND_MAX_P
    logger.info(
        "blend %s, %s: %+.4f ndcg over %s (one-sided p %.3f) -> %s",
        {n: round(w, 2) for n, w in weights.items()}, label, test.mean_difference, selection.champion, p_value,
        "wins" if wins else "loses",
    )
    return wins


def _select_on_fold0(ok: dict[str, TuningResult], fold0: Validation, *, blend: bool, random_state: int) -> Selection:
    scores = {n: r.score for n, r in sorted(ok.items())}
    selection = Selection(max(sorted(scores), key=lambda n: scores[n]), scores)
    base = {n: r.val_scores for n, r in ok.items() if r.val_scores is not None}
    if not blend or len(base) < 2:
        return selection
    order = np.random.default_rng(random_state + 2).permutation(len(fold0.users))
    half_a, half_b = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
    sub_a, sub_b = fold0.subset(half_a), fold0.subset(half_b)
    weights, _ = fit_blend_weights({n: s[half_a] for n, s in base.items()}, sub_a, max_members=BLEND_MAX_MEMBERS)
    weights = {n: w for n, w in weights.items() if w > 0}
    best_a = max(sorted(base), key=lambda n: sub_a.ndcg(base[n][half_a]))
    blended = sub_b.per_user_ndcg(make_blend_scores({n: s[half_b] for n, s in base.items()}, weights))
    if _blend_wins(selection, weights, blended, sub_b.per_user_ndcg(base[best_a][half_b])):
        selection.champion = "blend"
        selection.blend_weights = weights
    return selection
