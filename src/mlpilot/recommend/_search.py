"""Model search for one training split: input weighting, tuning, selection on fresh folds, refit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpilot.exceptions import InvalidParameterError, TrainingError
from mlpilot.recommend._data import Interactions
from mlpilot.recommend._inputs import (
    RECENCY,
    WEIGHTINGS,
    input_matrix,
    positive_weight,
    scoring_matrix,
    seen_matrix,
)
from mlpilot.recommend._models import BaseRecommender
from mlpilot.recommend._select import make_fold, select
from mlpilot.recommend._split import validation_folds
from mlpilot.recommend._tuning import (
    FAMILIES,
    FAMILY_NAMES,
    TuningResult,
    Validation,
    make_blend,
    make_model,
    tune_family,
)
from mlpilot.tune import Budget
from mlpilot.tune._budget import RECOMMEND_TUNING_SHARE
from mlpilot.tune._executor import Executor, LocalExecutor

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


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
    #: Mean NDCG per candidate on the fresh selection folds (fold 0 when there was no time for one).
    selection_scores: dict[str, float] = field(default_factory=dict)
    #: Fresh validation folds the champion was chosen on (0: chosen on the tuning fold).
    selection_folds: int = 0
    #: One-sided paired p-value of the blend against its best member on those folds.
    blend_p_value: float | None = None
    #: The blend's mean edge over its best member extended to the full training size (None: not checked).
    blend_extended_gain: float | None = None


#: Fresh validation folds the champion is chosen on (when time allows).
SELECTION_FOLDS = 3
#: Trials per searched parameter without improvement after which a family's tuning stops.
PATIENCE = 8
FACTOR_FAMILIES = ("als", "bpr")


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
    executor: Executor | None = None,
) -> SearchResult:
    """Tune each family on a validation split carved from ``data``, choose on fresh folds, refit.

    1. On validation fold 0 (``split``, 20% of each user's interactions), choose
       how ratings weigh the input and the recency half-life with one probe
       model, then tune every family (seeded TPE, the budget shared by family).
    2. Refit each family's tuned configuration on up to ``SELECTION_FOLDS`` fresh
       folds (`validation_folds`) and choose the champion there, so that many
       trials on fold 0 do not buy a family an optimistic score; the blend of the
       best families is cross-fitted on the same folds and kept only if it beats
       its best member (see ``mlpilot.recommend._select``).
    3. Refit the families (and the blend) on all of ``data``.

    Parameters
    ----------
    data : Interactions
        The training interactions (the test set is not in it).
    split : {"random", "temporal", "time_cut"}
        How the validation sets are carved out, normally the same as the test split.
    time_budget : float
        Seconds for steps 1 and 2; refitting the chosen models comes on top
        and is typically a tenth of it.
    families : tuple of str, optional
        Families to consider; default all (see ``FAMILY_NAMES``).
    max_trials : int, optional
        Exactly this many trials per family and all selection folds, the budget
        ignored (repeatable runs).
    model_params : dict, optional
        Fixed parameters per family, e.g. ``{"ease": {"max_items": 5000}}``.
    executor : Executor, optional
        Where the families are tuned; default one after the other in this
        thread (`LocalExecutor` ``(1)``), each taking its share of what the
        earlier ones left. With several workers the families are tuned side
        by side, each given its share of the tuning time times the workers.
    """
    start = time.perf_counter()
    budget = Budget(time_budget, start, time.perf_counter)
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
    folds = validation_folds(data, method=split, n_folds=1 + SELECTION_FOLDS, random_state=random_state + 1)
    fit_data, val_data = data.subset(folds[0][0]), data.subset(folds[0][1])
    relevant = val_data.matrix(positives_only=True)
    if relevant.nnz == 0:
        raise TrainingError(
            "The validation split has no positive interaction to rank; there is too little data "
            f"({len(data)} interactions, {int(data.positive.sum())} positives). Add data or lower "
            "the positive threshold."
        )
    seen = seen_matrix(fit_data)
    validation = Validation(seen, relevant, k=k, exclude=seen, random_state=random_state)
    timings: dict[str, float] = {}
    weighting, recency = "binary", None
    probes = [f for f in ("ease", "item_knn") if f in chosen]
    if probes and (data.explicit or data.timestamp is not None):
        t0 = time.perf_counter()
        weighting, recency = choose_weighting(
            fit_data, validation, probes[0], (model_params or {}).get(probes[0], {}), random_state
        )
        timings["input_weighting"] = time.perf_counter() - t0
    X_fit = input_matrix(fit_data, weighting)
    validation.history = scoring_matrix(fit_data, weighting, recency) if recency is not None else None

    # factor models learn from the positives only, as implicit-feedback models do, while
    # the item-based ones also use the weaker interactions: the families then disagree
    # more, which is what a blend feeds on
    fixed = {f: dict((model_params or {}).get(f, {})) for f in chosen}
    for name in FACTOR_FAMILIES:
        if name in fixed:
            fixed[name].setdefault("min_weight", positive_weight(fit_data, weighting))
    tuned_families = [f for f in FAMILIES if f.name in chosen]
    tuning_budget = budget.share(RECOMMEND_TUNING_SHARE)
    executor = executor or LocalExecutor(1)
    side_by_side = min(executor.n_workers, len(tuned_families))

    def tune(i: int) -> TuningResult:
        family = tuned_families[i]
        if side_by_side > 1:
            shares = sum(f.cost for f in tuned_families) / side_by_side or 1.0
        else:  # what earlier families left unused goes to the later ones
            shares = sum(f.cost for f in tuned_families[i:]) or 1.0
        seconds = tuning_budget.cap(min(family.cost / shares, 1.0))
        say(f"tuning {family.name} ({seconds:.0f}s)")
        return tune_family(
            family, X_fit, validation, budget_s=seconds, max_trials=max_trials, random_state=random_state,
            fixed=fixed[family.name], patience=PATIENCE,
        )

    results = executor.map(tune, list(range(len(tuned_families))))
    tuning: dict[str, TuningResult] = {f.name: r for f, r in zip(tuned_families, results, strict=True)}
    ok = {name: r for name, r in tuning.items() if r.error is None and r.val_scores is not None}
    if not ok:
        errors = "; ".join(f"{n}: {r.error}" for n, r in tuning.items())
        raise TrainingError(f"No recommender could be fitted. {errors}")
    timings["tuning"] = time.perf_counter() - start - timings.get("input_weighting", 0.0)

    say("choosing on fresh validation folds")
    t0 = time.perf_counter()
    fresh = []
    for j, (fit_mask, val_mask) in enumerate(folds[1:], start=1):
        fold = make_fold(
            data, fit_mask, val_mask, method=split, weighting=weighting, recency=recency, k=k,
            random_state=random_state + j,
        )
        if fold is not None:
            fresh.append(fold)
    selection = select(
        ok, validation, fresh, blend=blend, random_state=random_state,
        deadline=None if max_trials is not None else budget.deadline,
    )
    for result in tuning.values():
        result.val_scores = None  # large; not needed any more
    timings["selection"] = time.perf_counter() - t0

    say("refitting on all training data")
    t0 = time.perf_counter()
    X_all = input_matrix(data, weighting)
    models: dict[str, BaseRecommender] = {}
    for name, result in ok.items():
        models[name] = make_model(name, result.params, random_state).fit(X_all)
    if selection.champion == "blend":
        models["blend"] = make_blend(models, selection.blend_weights)
        models["blend"].X_ = X_all
        models["blend"].n_items_ = X_all.shape[1]
    timings["refit"] = time.perf_counter() - t0
    return SearchResult(
        champion=selection.champion,
        models=models,
        tuning=tuning,
        blend_weights=selection.blend_weights,
        blend_validation=selection.scores.get("blend", -1.0),
        weighting=weighting,
        recency=recency,
        seconds=time.perf_counter() - start,
        timings=timings,
        selection_scores=selection.scores,
        selection_folds=selection.n_folds,
        blend_extended_gain=selection.blend_extended_gain,
        blend_p_value=selection.blend_p_value,
    )


def choose_weighting(
    fit_data: Interactions,
    validation: Validation,
    family_name: str,
    fixed: dict[str, Any],
    random_state: int,
) -> tuple[str, float | None]:
    """The input weighting and recency half-life with the best validation NDCG for one probe model.

    Each weighting's matrix is scaled to a unit mean square before the probe fits
    it, so that a fixed regularisation weighs the same against every option.
    """
    family = next(f for f in FAMILIES if f.name == family_name)
    params = {**family.defaults, **fixed}
    options = WEIGHTINGS if fit_data.explicit else ("binary",)
    found: dict[tuple[str, float | None], float] = {}
    for option in options:
        X = input_matrix(fit_data, option)
        scale = np.float32(1.0 / np.sqrt(np.mean(np.square(X.data)))) if X.nnz else np.float32(1.0)
        try:
            model = make_model(family.name, params, random_state).fit(X * scale)
        except Exception as exc:  # the family's own tuning reports the problem
            logger.info("input weighting probe with %s failed: %s", family.name, exc)
            break
        for half_life in RECENCY if fit_data.timestamp is not None else (None,):
            validation.history = scoring_matrix(fit_data, option, half_life) * scale
            found[(option, half_life)] = validation.ndcg(validation.scores(model, X * scale))
    validation.history = None
    if not found:
        return "binary", None
    weighting, recency = max(found, key=lambda key: found[key])
    logger.info(
        "input weighting %s, recency half-life %s (validation ndcg %s with %s)", weighting, recency,
        {f"{w}/{h}": round(v, 4) for (w, h), v in found.items()}, family.name,
    )
    return weighting, recency


def describe_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))
