"""Fitting a recommender on interactions in memory: split, tune, evaluate, refit (no I/O).

`mlpilot.recommend.train` is the entry point: the orchestration layer
(`mlpilot.automl._recommend`) reads the sources, registers and promotes around
`fit_recommender`, which takes one `RecommendConfig`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.exceptions import ColumnNotFoundError, DataError, InvalidParameterError
from mlpilot.recommend._content import ItemContent, align_item_ids, item_content
from mlpilot.recommend._data import Interactions, prepare_interactions
from mlpilot.recommend._inputs import input_matrix, scoring_matrix, seen_matrix
from mlpilot.recommend._metrics import Evaluation, evaluate_scores, paired_test
from mlpilot.recommend._models import BaseRecommender
from mlpilot.recommend._ratings import BiasBaseline, rating_errors
from mlpilot.recommend._recommender import RecommenderModel
from mlpilot.recommend._search import describe_params, search
from mlpilot.recommend._split import SPLITS, split_interactions
from mlpilot.tune import Executor

logger = logging.getLogger(__name__)

TITLE_COLUMNS = ("title", "name", "item_name", "product_name", "movie_title")


def evaluate_models(
    models: dict[str, BaseRecommender],
    train: Interactions,
    test: Interactions,
    *,
    weighting: str,
    recency: float | None = None,
    k: int = 10,
) -> dict[str, Evaluation]:
    """Full-ranking evaluation of fitted models on a held-out set."""
    X = scoring_matrix(train, weighting, recency)
    seen = seen_matrix(train)
    relevant = test.matrix(positives_only=True)
    out = {}
    for name, model in models.items():
        def score(users: np.ndarray, model: BaseRecommender = model) -> np.ndarray:
            return model.score(X[users], users)

        out[name] = evaluate_scores(score, seen, relevant, k=k)
    return out


def build_leaderboard(
    evaluations: dict[str, Evaluation],
    result: Any,
    champion: str,
    *,
    k: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows per candidate (champion first) and the champion's paired tests."""
    rows = []
    for name, ev in evaluations.items():
        summary = ev.summary()
        tuning = result.tuning.get(name)
        rows.append(
            {
                "model": name,
                "chosen": name == champion,
                "params": describe_params(tuning.params) if tuning else json.dumps(
                    {n: round(w, 3) for n, w in result.blend_weights.items()}
                ),
                f"validation_ndcg@{k}": round(tuning.score if tuning else result.blend_validation, 5),
                f"selection_ndcg@{k}": (
                    round(result.selection_scores[name], 5) if name in result.selection_scores else None
                ),
                "trials": tuning.n_trials if tuning else 0,
                "tuning_seconds": round(tuning.seconds, 2) if tuning else 0.0,
                **{key: round(value, 5) for key, value in summary.items()},
            }
        )
    key = f"ndcg@{k}"
    rows.sort(key=lambda r: (not r["chosen"], -r[key]))
    for name, tuning in result.tuning.items():
        if tuning.error is not None:  # listed, so a skipped family is visible
            rows.append({"model": name, "chosen": False, "params": describe_params(tuning.params),
                         "error": tuning.error, "trials": tuning.n_trials})
    tests: dict[str, Any] = {}
    champ = evaluations[champion].per_user["ndcg"]
    if "most_popular" in evaluations and champion != "most_popular":
        tests["vs_most_popular"] = {
            "other": "most_popular",
            **paired_test(champ, evaluations["most_popular"].per_user["ndcg"], metric=key).as_dict(),
        }
    others = [r["model"] for r in rows if r["model"] != champion and r["model"] in evaluations]
    if others:
        runner_up = others[0]
        tests["vs_runner_up"] = {
            "other": runner_up,
            **paired_test(champ, evaluations[runner_up].per_user["ndcg"], metric=key).as_dict(),
        }
    return rows, tests


def _titles(frame: pd.DataFrame, item: str, title: str | None) -> dict[Any, str]:
    column = title
    if column is None:
        column = next((c for c in TITLE_COLUMNS if c in frame.columns and c != item), None)
        if column is None:
            return {}
    elif column not in frame.columns:
        raise ColumnNotFoundError(column, [str(c) for c in frame.columns], what="title column")
    if item not in frame.columns:
        raise ColumnNotFoundError(item, [str(c) for c in frame.columns], what="item column of the item table")
    pairs = frame[[item, column]].dropna().drop_duplicates(subset=[item])
    return {k.item() if isinstance(k, np.generic) else k: str(v) for k, v in zip(pairs[item], pairs[column], strict=True)}


def check_arguments(*, split: str, k: int) -> None:
    """The checks that need no data, made before the source is read."""
    if split not in ("auto", *SPLITS):
        raise InvalidParameterError(
            f"The 'split' parameter must be one of {('auto', *SPLITS)}. Got {split!r} instead."
        )
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise InvalidParameterError(f"The 'k' parameter must be an int in [1, 1000]. Got {k!r} instead.")


@dataclass(frozen=True)
class RecommenderFit:
    """What `fit_recommender` returns: the model to register and what promotion needs.

    ``test`` holds the held-out positive interactions (original ``user``/``item``
    ids) the model was scored on; ``holdout_model`` ranks as the model fitted
    without them (before the refit); ``trained_on`` lists every interaction the
    returned model was fitted on.
    """

    model: RecommenderModel
    test: pd.DataFrame
    holdout_model: Callable[[], RecommenderModel]
    trained_on: pd.DataFrame


@dataclass(frozen=True)
class RecommendConfig:
    """What a recommender is fitted with: the parameters of `mlpilot.recommend.train` but the I/O ones.

    ``executor`` runs the families' tuning side by side (default: one local
    thread); the model does not depend on it. See `mlpilot.recommend.train`
    for the others.
    """

    user: str
    item: str
    rating: str | None = None
    timestamp: str | None = None
    title: str | None = None
    feedback: str = "auto"
    threshold: float | str | None = None
    time_budget: float = 60.0
    split: str = "auto"
    test_size: float = 0.2
    k: int = 10
    families: tuple[str, ...] | None = None
    max_trials: int | None = None
    model_params: dict[str, dict[str, Any]] | None = None
    predict_ratings: bool = False
    name: str | None = None
    refit: bool = True
    random_state: int = 0
    executor: Executor | None = field(default=None, compare=False)

    def check(self) -> None:
        """The checks that need no data, made before the source is read."""
        check_arguments(split=self.split, k=self.k)


def split_for_evaluation(data: Interactions, *, split: str, timestamp: str | None, test_size: float,
                         random_state: int) -> tuple[str, Interactions, Interactions]:
    """The split method (``auto``: temporal with a timestamp, else random), the training and the test interactions.

    Raises `DataError` when the test part holds no positive interaction, since nothing could be evaluated.
    """
    method = split if split != "auto" else ("temporal" if timestamp is not None else "random")
    train_mask, test_mask = split_interactions(data, method=method, test_size=test_size, random_state=random_state)
    train, test = data.subset(train_mask), data.subset(test_mask)
    if not test.positive.any():
        raise DataError(
            f"The test split holds no positive interaction ({len(data)} interactions, "
            f"{int(data.positive.sum())} positives); there is too little data to evaluate. Add data, "
            "lower the positive threshold or raise test_size."
        )
    return method, train, test


def fit_recommender(
    frame: pd.DataFrame,
    config: RecommendConfig,
    *,
    metadata: pd.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> RecommenderFit:
    """Split, tune, evaluate and (by default) refit a recommender on ``frame``: no I/O.

    ``metadata`` is the item table, already read; ``progress`` is called with short messages.
    """
    user, item, rating, timestamp, title = config.user, config.item, config.rating, config.timestamp, config.title
    feedback, threshold, time_budget, split = config.feedback, config.threshold, config.time_budget, config.split
    test_size, k, families, max_trials = config.test_size, config.k, config.families, config.max_trials
    model_params, predict_ratings, name = config.model_params, config.predict_ratings, config.name
    refit, random_state = config.refit, config.random_state
    started = time.perf_counter()
    say = progress or (lambda message: None)
    check_arguments(split=split, k=k)
    data = prepare_interactions(
        frame, user=user, item=item, rating=rating, timestamp=timestamp, feedback=feedback, threshold=threshold
    )
    if predict_ratings and not data.explicit:
        raise InvalidParameterError(
            "predict_ratings=True needs explicit ratings: pass rating=COLUMN (and not feedback='implicit')."
        )
    content: ItemContent | None = None
    if metadata is None:
        titles = _titles(frame, item, title)
    else:
        if item not in metadata.columns:
            raise ColumnNotFoundError(item, [str(c) for c in metadata.columns], what="item column of the item table")
        metadata = align_item_ids(metadata, item, data.items)
        titles = _titles(metadata, item, title)
        content = item_content(metadata, item)
    method, train_data, test_data = split_for_evaluation(data, split=split, timestamp=timestamp,
                                                         test_size=test_size, random_state=random_state)
    result = search(
        train_data,
        split=method,
        time_budget=time_budget,
        families=families,
        max_trials=max_trials,
        k=k,
        random_state=random_state,
        model_params=model_params,
        progress=say,
        executor=config.executor,
    )
    say("evaluating on the test split")
    evaluations = evaluate_models(result.models, train_data, test_data, weighting=result.weighting, recency=result.recency, k=k)
    rows, tests = build_leaderboard(evaluations, result, result.champion, k=k)
    champion_eval = evaluations[result.champion].summary()
    protocol = {
        "split": method,
        "test_size": test_size,
        "validation": f"{method} 20% of each user's training interactions",
        "selection": (
            f"champion chosen on {result.selection_folds} fresh validation fold(s) not used for tuning"
            if result.selection_folds
            else "champion chosen on the tuning validation split (no time for fresh folds)"
        ),
        "ranking": "full catalogue, each user's training items excluded",
        "relevance": (
            f"held-out ratings >= {data.report.get('threshold')}" if data.explicit else "held-out interactions"
        ),
        "k": k,
        "n_eval_users": len(evaluations[result.champion].users),
        "ci": "95% percentile bootstrap over users (1000 resamples)",
        "paired_test": "two-sided sign-flip permutation test on per-user NDCG (2000 resamples)",
        "random_state": random_state,
        "chosen": result.champion,
        "blend_weights": result.blend_weights,
        "blend_p_value": result.blend_p_value,
        "input_weighting": result.weighting,
        "recency_half_life": result.recency,
        "time_budget": time_budget,
    }
    model = result.models[result.champion]
    final_data = data if refit else train_data
    if refit:
        say("refitting the chosen model on all interactions")
        model = _refit(model, input_matrix(data, result.weighting))
    history = scoring_matrix(final_data, result.weighting, result.recency)
    metrics: dict[str, Any] = dict(champion_eval)
    metrics["tests"] = tests
    metrics["fit_seconds"] = round(time.perf_counter() - started, 2)
    recommender = RecommenderModel(
        model=model,
        users=data.users,
        items=data.items,
        history=history,
        seen=seen_matrix(final_data),
        weighting=result.weighting,
        explicit=data.explicit,
        item_titles=titles,
        leaderboard=rows,
        protocol=protocol,
        metrics=metrics,
        user_col=user,
        item_col=item,
        name=name or "recommender",
        content=content,
    )
    recommender.data_report_ = dict(data.report)
    if content is not None:
        recommender.data_report_.update(
            n_metadata_items=len(content.items), n_cold_items=recommender.n_cold_items,
            content_columns=dict(content.columns),
        )
    if predict_ratings:
        say("fitting the rating predictor")
        baseline = BiasBaseline().fit(
            train_data.user_idx, train_data.item_idx, train_data.rating, n_users=data.n_users, n_items=data.n_items
        )
        errors = rating_errors(baseline.predict(test_data.user_idx, test_data.item_idx), test_data.rating)
        recommender.metrics_.update({f"rating_{key}": value for key, value in errors.items()})
        recommender.rating_model_ = baseline.fit(
            data.user_idx, data.item_idx, data.rating, n_users=data.n_users, n_items=data.n_items
        ) if refit else baseline
    logger.info(
        "chose %s: ndcg@%d %.4f on %d test users", result.champion, k, champion_eval[f"ndcg@{k}"],
        protocol["n_eval_users"],
    )
    holdout_model, train_history = result.models[result.champion], scoring_matrix(train_data, result.weighting, result.recency)

    def rank_without_test() -> RecommenderModel:
        return RecommenderModel(
            model=holdout_model, users=data.users, items=data.items, history=train_history,
            seen=seen_matrix(train_data), weighting=result.weighting, explicit=data.explicit,
            user_col=user, item_col=item, content=content,
        )

    positives = test_data.positive
    test = pd.DataFrame({"user": data.users[test_data.user_idx[positives]],
                         "item": data.items[test_data.item_idx[positives]]})
    trained_on = pd.DataFrame({"user": data.users[final_data.user_idx], "item": data.items[final_data.item_idx]})
    return RecommenderFit(recommender, test, rank_without_test, trained_on)


def _refit(model: BaseRecommender, X: Any) -> BaseRecommender:
    from sklearn.base import clone

    return clone(model).fit(X)
