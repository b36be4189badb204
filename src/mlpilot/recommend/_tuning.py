"""Tuning recommender families under a time budget, and blending the best of them.

The tuner is the project's one model-agnostic `mlpilot.tune.Tuner`: a family
is a model class with a ``search_space(trial)`` and a relative cost (its share
of the tuning time). Each family runs a deterministic sequence of trials (its
defaults first, then a seeded TPE sampler), so the budget decides only how far
along the sequence the search gets. With ``max_trials`` the work is fixed
instead (that many trials per family, the budget ignored), which makes runs
exactly repeatable whatever the machine's speed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from mlpilot.recommend._metrics import per_user_metrics, top_k
from mlpilot.recommend._models import (
    ALS,
    BPR,
    EASE,
    BaseRecommender,
    Blend,
    ItemKNN,
    MostPopular,
    RP3Beta,
    standardize_rows,
)
from mlpilot.tune import Budget
from mlpilot.tune._family import Family as TuneFamily
from mlpilot.tune._family import Space
from mlpilot.tune._tuner import Tuner, has_parameters

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Family(TuneFamily):
    """A recommender family: its class, default parameters and relative cost.

    ``cost`` is the family's share of the tuning time, relative to the other
    families tuned (what the earlier ones leave unused goes to the later ones).
    """

    name: str
    model: type[BaseRecommender]
    defaults: dict[str, Any]
    cost: float
    #: Points tried right after the defaults, before the sampler takes over.
    initial: tuple[dict[str, Any], ...] = ()
    requires: str | None = None

    @property
    def budget_share(self) -> float:
        """The former name of `cost`."""
        return self.cost

    def search_space(self) -> Space:
        return self.model.search_space


FAMILIES: tuple[Family, ...] = (
    Family("most_popular", MostPopular, {}, 0.0),
    Family("item_knn", ItemKNN, {"similarity": "bm25", "n_neighbors": 200, "shrink": 0.0}, 0.12),
    Family("rp3beta", RP3Beta, {"alpha": 0.8, "beta": 0.4, "n_neighbors": 200}, 0.13),
    Family("ease", EASE, {"l2": 150.0, "min_item_count": 2}, 0.2, ({"l2": 60.0}, {"l2": 400.0})),
    Family("als", ALS, {"factors": 64, "regularization": 0.05, "alpha": 10.0, "iterations": 15}, 0.35),
    Family("bpr", BPR, {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 100}, 0.2),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)


@dataclass
class TuningResult:
    """The best configuration found for one family, with its validation scores."""

    family: str
    params: dict[str, Any]
    score: float
    n_trials: int
    seconds: float
    error: str | None = None
    val_scores: np.ndarray | None = field(default=None, repr=False)


#: Random trials (after the defaults and initial points) before TPE models the scores.
STARTUP_TRIALS = 4

#: Validation ranks at most this many users (a seeded sample), which bounds the
#: memory of its dense score matrices on large data.
MAX_VALIDATION_USERS = 5000


class Validation:
    """A training matrix, the held-out relevant items and the users to rank for."""

    def __init__(
        self,
        train: sp.csr_matrix,
        relevant: sp.csr_matrix,
        *,
        k: int = 10,
        exclude: sp.csr_matrix | None = None,
        max_users: int = MAX_VALIDATION_USERS,
        random_state: int = 0,
    ) -> None:
        self.train = sp.csr_matrix(train)
        self.relevant = sp.csr_matrix(relevant)
        self.k = k
        self.users = np.flatnonzero(np.diff(self.relevant.indptr) > 0)
        if len(self.users) > max_users:
            rng = np.random.default_rng(random_state)
            self.users = np.sort(rng.choice(self.users, size=max_users, replace=False))
        base = self.train if exclude is None else sp.csr_matrix(exclude)
        self.exclude = base[self.users]
        self.relevant_users = self.relevant[self.users]
        #: Histories to score from, when they differ from the fitted matrix (recency weighting).
        self.history: sp.csr_matrix | None = None

    def subset(self, rows: np.ndarray) -> Validation:
        """The same validation restricted to ``rows`` of its users (score rows align)."""
        out = Validation.__new__(Validation)
        out.train, out.relevant, out.k = self.train, self.relevant, self.k
        out.users = self.users[rows]
        out.exclude = self.exclude[rows]
        out.relevant_users = self.relevant_users[rows]
        out.history = self.history
        return out

    def per_user_ndcg(self, scores: np.ndarray) -> np.ndarray:
        top = top_k(scores, self.k, exclude=self.exclude)
        return per_user_metrics(top, self.relevant_users, self.k)["ndcg"]

    def ndcg(self, scores: np.ndarray) -> float:
        return float(self.per_user_ndcg(scores).mean())

    @staticmethod
    def stack(parts: list[Validation]) -> Validation:
        """The validations one after the other (score matrices stacked by rows in the same order)."""
        out = Validation.__new__(Validation)
        out.train, out.relevant, out.k = parts[0].train, parts[0].relevant, parts[0].k
        out.users = np.concatenate([p.users for p in parts])
        out.exclude = sp.csr_matrix(sp.vstack([p.exclude for p in parts]))
        out.relevant_users = sp.csr_matrix(sp.vstack([p.relevant_users for p in parts]))
        out.history = None
        return out

    def scores(self, model: BaseRecommender, X: sp.csr_matrix) -> np.ndarray:
        H = X if self.history is None else self.history
        return model.score(H[self.users], self.users)


def tune_family(
    family: Family,
    X: sp.csr_matrix,
    validation: Validation,
    *,
    budget_s: float,
    max_trials: int | None = None,
    random_state: int = 0,
    fixed: dict[str, Any] | None = None,
    patience: int | None = None,
) -> TuningResult:
    """Search ``family``'s space for the best validation NDCG within ``budget_s`` seconds.

    With ``max_trials`` exactly that many trials run (fewer if the space is
    exhausted) and the budget is ignored, so the result does not depend on speed.
    Otherwise, with ``patience``, the search also stops after ``patience`` trials
    per searched parameter in a row without a better score (a small space is
    settled long before its budget is spent; the time left goes to the families
    tuned after it).
    """
    budget = Budget.start_now(budget_s, clock=time.perf_counter)
    start = time.perf_counter()
    fixed = dict(fixed or {})
    best = TuningResult(family.name, dict(family.defaults), -1.0, 0, 0.0)

    def evaluate(params: dict[str, Any]) -> float:
        model = family.model(**{**params, **fixed})
        model.fit(X)
        scores = validation.scores(model, X)
        value = validation.ndcg(scores)
        best.n_trials += 1
        if value > best.score:
            best.score, best.params, best.val_scores = value, dict(params), scores
        return value

    try:
        evaluate(dict(family.defaults))
    except Exception as exc:  # a family that cannot fit is reported, not fatal
        logger.warning("%s could not be fitted: %s", family.name, exc)
        best.error = f"{type(exc).__name__}: {exc}"
        best.seconds = time.perf_counter() - start
        return best
    space = family.search_space()
    limit = max_trials if max_trials is not None else 10_000
    if has_parameters(space):
        # the defaults come first again: the sampler learns their score without refitting them
        tuner = Tuner(space, random_state=random_state, initial=[dict(family.defaults), *family.initial],
                      n_startup_trials=STARTUP_TRIALS)
        pending_defaults = True
        attempts, since_best, best_so_far, stop_after = 1, 0, best.score, None
        while attempts < limit:
            # a trial starts only while one more of the mean trial's time fits what is left
            per_trial = budget.elapsed() / attempts
            if max_trials is None and (
                not budget.fits(per_trial) or (stop_after is not None and since_best >= stop_after)
            ):
                break
            trial, params = tuner.ask()
            if pending_defaults:  # the enqueued defaults were already evaluated above
                tuner.tell(trial, best.score)
                pending_defaults = False
                stop_after = None if patience is None else patience * max(len(params), 1)
                continue
            attempts += 1
            try:
                tuner.tell(trial, evaluate(params))
            except Exception as exc:
                logger.info("%s trial %s failed: %s", family.name, params, exc)
                tuner.tell(trial, None)
            since_best = 0 if best.score > best_so_far else since_best + 1
            best_so_far = best.score
    best.params = {**best.params, **fixed}
    best.seconds = time.perf_counter() - start
    logger.info(
        "%s: best validation ndcg@%d %.4f after %d trial(s) in %.1fs",
        family.name, validation.k, best.score, best.n_trials, best.seconds,
    )
    return best


def fit_blend_weights(
    candidates: dict[str, np.ndarray],
    validation: Validation,
    *,
    max_members: int = 4,
    grid: tuple[float, ...] = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0),
) -> tuple[dict[str, float], float]:
    """Greedy forward selection of standardised score matrices (Caruana et al., 2004).

    Starts from the best single candidate and adds the (candidate, weight)
    that most improves validation NDCG, until nothing improves it.
    """
    z = {name: standardize_rows(s) for name, s in candidates.items()}
    singles = {name: validation.ndcg(s) for name, s in z.items()}
    first = max(sorted(singles), key=lambda n: singles[n])
    weights = {first: 1.0}
    current, best = z[first].copy(), singles[first]
    for _ in range(max_members * 2):
        step: tuple[float, str, float] | None = None
        for name in sorted(z):
            for w in grid:
                value = validation.ndcg(current + np.float32(w) * z[name])
                if value > best + 1e-6 and (step is None or value > step[0]):
                    step = (value, name, w)
        if step is None:
            break
        best, name, w = step
        current += np.float32(w) * z[name]
        weights[name] = weights.get(name, 0.0) + w
        if len(weights) >= max_members:
            break
    return weights, best


def make_blend_scores(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The blend of score matrices, as `Blend.score` computes it."""
    names = [n for n in sorted(weights) if weights[n] > 0]
    total = np.zeros_like(scores[names[0]], dtype=np.float32)
    for name in names:
        total += np.float32(weights[name]) * standardize_rows(scores[name])
    return total


def make_model(family: str, params: dict[str, Any], random_state: int = 0) -> BaseRecommender:
    spec = next(f for f in FAMILIES if f.name == family)
    params = dict(params)
    if "random_state" in spec.model().get_params():
        params.setdefault("random_state", random_state)
    return spec.model(**params)


def make_blend(members: dict[str, BaseRecommender], weights: dict[str, float]) -> Blend:
    names = [n for n in sorted(weights) if weights[n] > 0]
    blend = Blend(members=[members[n] for n in names], weights=[float(weights[n]) for n in names])
    return blend


ScoreFn = Callable[[np.ndarray], np.ndarray]
