"""Spark ALS as a recommender family: factorised on the cluster, evaluated and served as the local ALS.

The interaction ids come to the driver (the user, item, rating and time columns
only): the registered model needs them anyway, as the matrix of what each user
has seen, and the split, the weighting and the metrics are then the local
recommender's own code (`prepare_interactions`, `split_interactions`,
`validation_folds`, `evaluate_models`). The factorisation, the expensive part
(iterations over every interaction), runs on the cluster with
`pyspark.ml.recommendation.ALS` (implicit feedback, confidence ``1 + alpha * w``,
as the local `mlpilot.recommend.ALS`). Its factors are exported to numpy into a
`mlpilot.recommend.ALS`, so the registered version is an ordinary recommender
that `mlpilot serve` loads without Spark.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mlpilot.exceptions import ColumnNotFoundError, EmptyDataError, InvalidParameterError
from mlpilot.recommend._data import Interactions, prepare_interactions
from mlpilot.recommend._fit import (
    RecommendConfig,
    RecommenderFit,
    build_leaderboard,
    split_for_evaluation,
)
from mlpilot.recommend._inputs import input_matrix, scoring_matrix, seen_matrix
from mlpilot.recommend._models import ALS, BaseRecommender, MostPopular
from mlpilot.recommend._recommender import RecommenderModel
from mlpilot.recommend._search import SearchResult, describe_params
from mlpilot.recommend._split import validation_folds
from mlpilot.recommend._tuning import TuningResult
from mlpilot.spark._rank import evaluate_ranking
from mlpilot.spark._session import quiet, require_pyspark, spark_job
from mlpilot.tune import Budget

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FAMILY = "spark_als"
#: The grid, in the order it is tried (the local ALS's defaults first): rank, regParam, alpha.
GRID: tuple[dict[str, float], ...] = tuple(
    {"rank": rank, "regParam": reg, "alpha": alpha}
    for rank, reg, alpha in itertools.chain(
        [(64, 0.05, 10.0)],
        (p for p in itertools.product((16, 64), (0.01, 0.1), (1.0, 10.0, 40.0)) if p != (64, 0.05, 10.0)),
    )
)
DEFAULT_ITERATIONS = 10


@dataclass(frozen=True)
class _Trial:
    params: dict[str, float]
    ndcg: float
    seconds: float


def _check_columns(frame: DataFrame, config: RecommendConfig) -> list[str]:
    columns = [c for c in (config.user, config.item, config.rating, config.timestamp) if c is not None]
    for what, name in (("user column", config.user), ("item column", config.item),
                       ("rating column", config.rating), ("timestamp column", config.timestamp)):
        if name is not None and name not in frame.columns:
            raise ColumnNotFoundError(name, list(frame.columns), what=what)
    return columns


def _interactions(frame: DataFrame, columns: list[str]) -> pd.DataFrame:
    with spark_job("read the interactions"), quiet():
        rows = frame.select(*columns).toPandas()
    if not len(rows):
        raise EmptyDataError(
            "The interaction table has no rows: there is nothing to learn from. Check the source "
            "(the path, the --table or --query) and run again."
        )
    # a table's row order depends on its partitioning: sorted, the same rows give the same split and model
    return rows.sort_values(columns, kind="stable").reset_index(drop=True)


def _matrix_frame(spark: SparkSession, X: sp.csr_matrix) -> DataFrame:
    coo = X.tocoo()
    parts = max(2, spark.sparkContext.defaultParallelism)
    with quiet():
        return spark.createDataFrame(pd.DataFrame({
            "u": coo.row.astype(np.int32), "i": coo.col.astype(np.int32), "w": coo.data.astype(np.float32),
        })).repartition(parts)


def _factors(table: DataFrame, n: int, rank: int) -> np.ndarray:
    """A Spark factor table (``id``, ``features``) as an ``n x rank`` array; ids it lacks get zeros."""
    with quiet():
        rows = table.toPandas()
    out = np.zeros((n, rank), dtype=np.float32)
    if len(rows):
        out[rows["id"].to_numpy(dtype=np.int64)] = np.array(rows["features"].tolist(), dtype=np.float32)
    return out


def fit_spark_als(spark: SparkSession, X: sp.csr_matrix, params: dict[str, float], *, iterations: int,
                  random_state: int) -> ALS:
    """Factorise ``X`` (users x items weights) with Spark ALS; the factors in a local `mlpilot.recommend.ALS`."""
    from pyspark.ml.recommendation import ALS as SparkALS

    rank = int(params["rank"])
    blocks = max(2, spark.sparkContext.defaultParallelism)  # Spark's default of 10 blocks is 10 tasks a step
    estimator = SparkALS(
        numUserBlocks=blocks, numItemBlocks=blocks, rank=rank, maxIter=int(iterations),
        regParam=float(params["regParam"]), alpha=float(params["alpha"]), implicitPrefs=True, userCol="u", itemCol="i", ratingCol="w", seed=int(random_state),
        coldStartStrategy="drop",
    )
    with spark_job("fitted Spark ALS"), quiet():
        fitted = estimator.fit(_matrix_frame(spark, X))
        users, items = _factors(fitted.userFactors, X.shape[0], rank), _factors(fitted.itemFactors, X.shape[1], rank)
    model = ALS(factors=rank, regularization=float(params["regParam"]), alpha=float(params["alpha"]),
                iterations=int(iterations), random_state=int(random_state))
    model.user_factors_, model.item_factors_ = users, items
    model.X_ = sp.csr_matrix(X, dtype=np.float32)
    model.n_items_ = X.shape[1]
    return model


def _ndcg(spark: SparkSession, model: BaseRecommender, fit: Interactions, val: Interactions,
          k: int) -> tuple[float, dict[str, Any]]:
    """The validation NDCG@k of ``model`` (full ranking, ``fit``'s items excluded) and where it was ranked."""
    evaluations, ranking = evaluate_ranking(spark, {FAMILY: model}, fit, val, k=k)
    evaluation = evaluations[FAMILY]
    return (float(evaluation.per_user["ndcg"].mean()) if len(evaluation.users) else 0.0), ranking


def _grid(config: RecommendConfig) -> tuple[list[dict[str, float]], int]:
    fixed = dict((config.model_params or {}).get(FAMILY, {}))
    iterations = int(fixed.pop("iterations", DEFAULT_ITERATIONS))
    unknown = set(fixed) - {"rank", "regParam", "alpha"}
    if unknown:
        raise InvalidParameterError(
            f"Unknown {FAMILY} parameters {sorted(unknown)}; accepted: rank, regParam, alpha, iterations."
        )
    points = [{**p, **fixed} for p in GRID]
    unique = [dict(t) for t in dict.fromkeys(tuple(sorted(p.items())) for p in points)]
    return unique, iterations


def search_grid(spark: SparkSession, fit: Interactions, val: Interactions, config: RecommendConfig, *,
                clock: Callable[[], float], say: Callable[[str], None]) -> tuple[list[_Trial], int, dict[str, Any]]:
    """Try the grid in order: ``max_trials`` points exactly, else until the tuning budget is spent (one at least).

    Returns the trials, the iterations and where the validation ranking ran (`evaluate_ranking`'s record).
    """
    points, iterations = _grid(config)
    if config.max_trials is not None:
        points = points[: max(1, int(config.max_trials))]
    budget = Budget.start_now(None if config.max_trials is not None else config.time_budget, clock=clock)
    X = input_matrix(fit)
    trials: list[_Trial] = []
    ranking: dict[str, Any] = {}
    for params in points:
        if trials and budget.left() <= 0:
            break
        say(f"Spark ALS trial {len(trials) + 1}: {describe_params(params)}")
        t0 = clock()
        model = fit_spark_als(spark, X, params, iterations=iterations, random_state=config.random_state)
        ndcg, ranking = _ndcg(spark, model, fit, val, config.k)
        trials.append(_Trial(params, ndcg, clock() - t0))
    return trials, iterations, ranking


def fit_als(frame: DataFrame, config: RecommendConfig, *, progress: Callable[[str], None] | None = None,
            clock: Callable[[], float] = time.monotonic) -> RecommenderFit:
    """Tune Spark ALS over `GRID`, evaluate it with full ranking as the local recommender, refit.

    The protocol is the local one: the same test split, a validation fold carved
    from the training part for the grid, full-catalogue ranking with each user's
    training items excluded, the same metrics and paired tests (against most
    popular). The grid's trials, their validation NDCG and the one chosen are
    stored in the protocol (``protocol["spark_als"]``).

    Raises
    ------
    ColumnNotFoundError
        A user, item, rating or timestamp column the table lacks (checked before any job).
    EmptyDataError
        An empty interaction table.
    """
    require_pyspark()
    say = progress or (lambda message: None)
    started = clock()
    config.check()
    columns = _check_columns(frame, config)
    say("reading the interactions on Spark")
    rows = _interactions(frame, columns)
    data = prepare_interactions(rows, user=config.user, item=config.item, rating=config.rating,
                                timestamp=config.timestamp, feedback=config.feedback, threshold=config.threshold)
    method, train, test = split_for_evaluation(data, split=config.split, timestamp=config.timestamp,
                                               test_size=config.test_size, random_state=config.random_state)
    fold_fit, fold_val = validation_folds(train, method=method, n_folds=1, random_state=config.random_state + 1)[0]
    spark = frame.sparkSession
    trials, iterations, validation_ranking = search_grid(spark, train.subset(fold_fit), train.subset(fold_val),
                                                         config, clock=clock, say=say)
    best = max(trials, key=lambda t: t.ndcg)
    k = config.k
    say("fitting the chosen Spark ALS on the training split")
    fitted = fit_spark_als(spark, input_matrix(train), best.params, iterations=iterations,
                           random_state=config.random_state)
    models: dict[str, BaseRecommender] = {FAMILY: fitted, "most_popular": MostPopular().fit(input_matrix(train))}
    say("evaluating on the test split")
    evaluations, ranking = evaluate_ranking(spark, models, train, test, k=k)
    tuning = {
        FAMILY: TuningResult(FAMILY, {**best.params, "iterations": iterations}, best.ndcg, len(trials),
                             sum(t.seconds for t in trials)),
        "most_popular": TuningResult("most_popular", {}, 0.0, 0, 0.0),
    }
    result = SearchResult(champion=FAMILY, models=models, tuning=tuning, blend_weights={}, blend_validation=-1.0,
                          weighting="binary", seconds=clock() - started)
    rows_out, tests = build_leaderboard(evaluations, result, FAMILY, k=k)
    protocol = {
        "engine": "spark", "split": method, "test_size": config.test_size,
        "validation": f"{method} 20% of each user's training interactions",
        "selection": f"{FAMILY} grid point with the best validation NDCG@{k}",
        "ranking": "full catalogue, each user's training items excluded",
        "ranking_on": ranking,
        "relevance": f"held-out ratings >= {data.report.get('threshold')}" if data.explicit else "held-out interactions",
        "k": k, "n_eval_users": len(evaluations[FAMILY].users),
        "ci": "95% percentile bootstrap over users (1000 resamples)",
        "paired_test": "two-sided sign-flip permutation test on per-user NDCG (2000 resamples)",
        "random_state": config.random_state, "chosen": FAMILY, "input_weighting": "binary",
        "time_budget": config.time_budget, "max_trials": config.max_trials,
        FAMILY: {"iterations": iterations, "implicit_prefs": True, "chosen": best.params,
                 "trials": [{**t.params, f"validation_ndcg@{k}": round(t.ndcg, 6), "seconds": round(t.seconds, 2)}
                            for t in trials],
                 "grid_size": len(_grid(config)[0]), "validation_ranking_on": validation_ranking},
    }
    final_data = data if config.refit else train
    model: BaseRecommender = fitted
    if config.refit:
        say("refitting the chosen Spark ALS on all interactions")
        model = fit_spark_als(spark, input_matrix(data), best.params, iterations=iterations,
                              random_state=config.random_state)
    metrics: dict[str, Any] = dict(evaluations[FAMILY].summary())
    metrics["tests"] = tests
    metrics["fit_seconds"] = round(clock() - started, 2)
    common: dict[str, Any] = {"users": data.users, "items": data.items, "weighting": "binary", "explicit": data.explicit,
              "user_col": config.user, "item_col": config.item}
    recommender = RecommenderModel(
        model=model, history=scoring_matrix(final_data, "binary", None), seen=seen_matrix(final_data),
        leaderboard=rows_out, protocol=protocol, metrics=metrics, name=config.name or "recommender", **common,
    )
    recommender.data_report_ = dict(data.report)

    def holdout() -> RecommenderModel:
        return RecommenderModel(model=fitted, history=scoring_matrix(train, "binary", None), seen=seen_matrix(train),
                                **common)

    positives = test.positive
    held_out = pd.DataFrame({"user": data.users[test.user_idx[positives]], "item": data.items[test.item_idx[positives]]})
    trained_on = pd.DataFrame({"user": data.users[final_data.user_idx], "item": data.items[final_data.item_idx]})
    return RecommenderFit(recommender, held_out, holdout, trained_on)


__all__ = ["FAMILY", "GRID", "fit_als", "fit_spark_als", "search_grid"]
