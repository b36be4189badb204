"""Model search for one training split: tune every family, blend, refit, score."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from mlpilot.exceptions import InvalidParameterError, TrainingError
from mlpilot.recommend._data import Interactions
from mlpilot.recommend._models import BaseRecommender
from mlpilot.recommend._split import split_interactions
from mlpilot.recommend._tuning import (
    FAMILIES,
    FAMILY_NAMES,
    TuningResult,
    Validation,
    fit_blend_weights,
    make_blend,
    make_blend_scores,
    make_model,
    tune_family,
)

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


WEIGHTINGS = ("binary", "soft", "rating")


def input_matrix(data: Interactions, weighting: str = "binary") -> sp.csr_matrix:
    """The matrix models learn from.

    Explicit ratings: ``"binary"`` keeps positives at 1 and drops the rest;
    ``"soft"`` adds the other rated items at 0.3 (having watched something is
    a signal even when it was not liked); ``"rating"`` weighs every rated item
    by its rating, ``clip((r - m) / (max - m), 0.05, 1)`` with ``m`` a fifth of
    the way up the scale. Implicit feedback weighs an interaction ``1 + log(count)``.
    """
    if weighting not in WEIGHTINGS:
        raise InvalidParameterError(
            f"The input weighting must be one of {WEIGHTINGS}. Got {weighting!r} instead."
        )
    if not data.explicit:
        weights = 1.0 + np.log(np.maximum(data.rating, 1.0))
    elif weighting == "binary":
        weights = data.positive.astype(np.float64)
    elif weighting == "soft":
        weights = np.where(data.positive, 1.0, 0.3)
    else:
        lo, hi = float(data.rating.min()), float(data.rating.max())
        mid = lo + 0.2 * (hi - lo)
        weights = np.clip((data.rating - mid) / max(hi - mid, 1e-9), 0.05, 1.0)
    keep = weights != 0
    mat = sp.csr_matrix(
        (weights[keep].astype(np.float32), (data.user_idx[keep], data.item_idx[keep])),
        shape=(data.n_users, data.n_items),
    )
    mat.sum_duplicates()
    return mat


RECENCY = (None, 0.5, 0.25)


def recency_weights(data: Interactions, half_life: float | None) -> np.ndarray:
    """Per-interaction weights ``0.5 ** (p / half_life)``, ``p`` the share of the user's
    history that came after the interaction (0 for the latest, near 1 for the oldest)."""
    if half_life is None or data.timestamp is None:
        return np.ones(len(data))
    order = np.lexsort((-data.timestamp, data.user_idx))
    counts = np.bincount(data.user_idx, minlength=data.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.empty(len(data))
    position[order] = np.arange(len(data)) - starts[data.user_idx[order]]
    return np.power(0.5, position / counts[data.user_idx] / half_life)


def scoring_matrix(data: Interactions, weighting: str, half_life: float | None) -> sp.csr_matrix:
    """The histories models score from: the input weights, recent interactions emphasised."""
    X = input_matrix(data, weighting)
    if half_life is None or data.timestamp is None:
        return X
    decay = sp.csr_matrix(
        (recency_weights(data, half_life).astype(np.float32), (data.user_idx, data.item_idx)), shape=X.shape
    )
    decay.sum_duplicates()
    out = sp.csr_matrix(X.multiply(decay))
    out.eliminate_zeros()
    return out


def seen_matrix(data: Interactions) -> sp.csr_matrix:
    """Every interaction, positive or not: what a user has already seen."""
    return data.matrix()


@dataclass
class SearchResult:
    """The outcome of a search on one training set."""

    champion: str
    models: dict[str, BaseRecommender]
    tuning: dict[str, TuningResult]
    blend_weights: dict[str, float]
    blend_validation: float
    weighting: str
    seconds: float
    recency: float | None = None
    timings: dict[str, float] = field(default_factory=dict)


def search(
    data: Interactions,
    *,
    split: str = "random",
    time_budget: float = 60.0,
    families: tuple[str, ...] | None = None,
    max_trials: int | None = None,
    k: int = 10,
    random_state: int = 0,
    blend: bool = True,
    model_params: dict[str, dict[str, Any]] | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Tune each family on a validation split carved from ``data``, blend, refit on all of ``data``.

    Parameters
    ----------
    data : Interactions
        The training interactions (the test set is not in it).
    split : {"random", "temporal", "time_cut"}
        How the validation set is carved out, normally the same as the test split.
    time_budget : float
        Seconds for tuning and blending; refitting the chosen models comes on top
        and is typically a tenth of it.
    families : tuple of str, optional
        Families to consider; default all (see ``FAMILY_NAMES``).
    max_trials : int, optional
        Exactly this many trials per family, the budget ignored (repeatable runs).
    model_params : dict, optional
        Fixed parameters per family, e.g. ``{"ease": {"max_items": 5000}}``.
    """
    start = time.perf_counter()
    say = progress or (lambda message: None)
    chosen = tuple(families) if families else FAMILY_NAMES
    unknown = [f for f in chosen if f not in FAMILY_NAMES]
    if unknown:
        raise InvalidParameterError(
            f"Unknown model families {unknown}. Accepted: {list(FAMILY_NAMES)}."
        )
    if time_budget <= 0:
        raise InvalidParameterError(
            f"The 'time_budget' parameter must be a positive number of seconds. Got {time_budget!r}."
        )
    fit_mask, val_mask = split_interactions(data, method=split, test_size=0.2, random_state=random_state + 1)
    fit_data, val_data = data.subset(fit_mask), data.subset(val_mask)
    relevant = val_data.matrix(positives_only=True)
    if relevant.nnz == 0:
        raise TrainingError(
            "The validation split has no positive interaction to rank; there is too little data "
            f"({len(data)} interactions, {int(data.positive.sum())} positives). Add data or lower "
            "the positive threshold."
        )
    seen = seen_matrix(fit_data)
    validation = Validation(seen, relevant, k=k, exclude=seen)

    # Choose how ratings weigh the input (explicit feedback) and whether recent
    # interactions count more when scoring (with timestamps), with one probe model.
    weighting = "binary"
    recency: float | None = None
    timings: dict[str, float] = {}
    probes = [f for f in ("ease", "item_knn") if f in chosen]
    first: tuple[dict[str, Any], float, np.ndarray] | None = None
    if probes and (data.explicit or data.timestamp is not None):
        t0 = time.perf_counter()
        family = next(f for f in FAMILIES if f.name == probes[0])
        params = {**family.defaults, **(model_params or {}).get(family.name, {})}
        options = WEIGHTINGS if data.explicit else ("binary",)
        found: dict[tuple[str, float | None], tuple[float, np.ndarray]] = {}
        for option in options:
            X = input_matrix(fit_data, option)
            try:
                model = make_model(family.name, params, random_state).fit(X)
            except Exception as exc:  # the family's own tuning reports the problem
                logger.info("input weighting probe with %s failed: %s", family.name, exc)
                break
            for half_life in RECENCY if fit_data.timestamp is not None else (None,):
                validation.history = scoring_matrix(fit_data, option, half_life)
                scores = validation.scores(model, X)
                found[(option, half_life)] = (validation.ndcg(scores), scores)
        validation.history = None
        if found:
            weighting, recency = max(found, key=lambda key: found[key][0])
            first = (params, *found[(weighting, recency)])
            logger.info(
                "input weighting %s, recency half-life %s (validation ndcg %s with %s)", weighting, recency,
                {f"{w}/{h}": round(v[0], 4) for (w, h), v in found.items()}, family.name,
            )
        timings["input_weighting"] = time.perf_counter() - t0
    X_fit = input_matrix(fit_data, weighting)
    validation.history = scoring_matrix(fit_data, weighting, recency) if recency is not None else None

    tuned_families = [f for f in FAMILIES if f.name in chosen]
    total_share = sum(f.budget_share for f in tuned_families) or 1.0
    remaining = time_budget * 0.85 - (time.perf_counter() - start)
    tuning: dict[str, TuningResult] = {}
    for family in tuned_families:
        budget = max(remaining * family.budget_share / total_share, 0.0)
        say(f"tuning {family.name} ({budget:.0f}s)")
        tuning[family.name] = tune_family(
            family, X_fit, validation, budget_s=budget, max_trials=max_trials, random_state=random_state,
            fixed=(model_params or {}).get(family.name),
            first=first if first is not None and family.name == probes[0] else None,
        )
    ok = {name: r for name, r in tuning.items() if r.error is None and r.val_scores is not None}
    if not ok:
        errors = "; ".join(f"{n}: {r.error}" for n, r in tuning.items())
        raise TrainingError(f"No recommender could be fitted. {errors}")
    timings["tuning"] = time.perf_counter() - start

    weights: dict[str, float] = {}
    blend_score = -1.0
    best_single = max(sorted(ok), key=lambda n: ok[n].score)
    use_blend = False
    if blend and len(ok) > 1:
        say("blending")
        # Weights are learned on half of the validation users and the blend is kept
        # only if it also wins on the other half: the members were tuned on these
        # users, so a gain measured where the weights were fitted is optimistic.
        order = np.random.default_rng(random_state + 2).permutation(len(validation.users))
        half_a, half_b = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
        val_a, val_b = validation.subset(half_a), validation.subset(half_b)
        member_scores = {n: r.val_scores for n, r in ok.items() if r.val_scores is not None}
        weights, _ = fit_blend_weights({n: s[half_a] for n, s in member_scores.items()}, val_a)
        if len([w for w in weights.values() if w > 0]) > 1:
            single_a = max(sorted(member_scores), key=lambda n: val_a.ndcg(member_scores[n][half_a]))
            blended = make_blend_scores(member_scores, weights)
            blend_b = val_b.ndcg(blended[half_b])
            single_b = val_b.ndcg(member_scores[single_a][half_b])
            blend_score = validation.ndcg(blended)
            use_blend = blend_b > single_b * 1.005
            logger.info(
                "blend %s: held-out half ndcg %.4f vs %s %.4f -> %s", weights, blend_b, single_a, single_b,
                "kept" if use_blend else "dropped",
            )
    for result in tuning.values():
        result.val_scores = None  # large; not needed any more
    timings["blending"] = time.perf_counter() - start - timings["tuning"]

    say("refitting on all training data")
    X_all = input_matrix(data, weighting)
    models: dict[str, BaseRecommender] = {}
    for name, result in ok.items():
        models[name] = make_model(name, result.params, random_state).fit(X_all)
    if use_blend:
        models["blend"] = make_blend(models, weights)
        models["blend"].X_ = X_all
        models["blend"].n_items_ = X_all.shape[1]
    champion = "blend" if use_blend else best_single
    timings["refit"] = time.perf_counter() - start - timings["tuning"] - timings["blending"]
    return SearchResult(
        champion=champion,
        models=models,
        tuning=tuning,
        blend_weights=weights if use_blend else {},
        blend_validation=blend_score,
        weighting=weighting,
        recency=recency,
        seconds=time.perf_counter() - start,
        timings=timings,
    )


def describe_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))
