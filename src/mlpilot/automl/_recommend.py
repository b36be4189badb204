"""Recommendation orchestrated as tabular training is: source → snapshot → record → fit → register → promote.

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
from mlpilot.recommend._fit import RecommenderFit, check_arguments, fit_recommender
from mlpilot.recommend._recommender import RecommenderModel

logger = logging.getLogger(__name__)


def train_recommender(
    source: Any,
    *,
    user: str,
    item: str,
    items: Any = None,
    workspace: PathLike | Workspace | None = None,
    register: bool = True,
    name: str | None = None,
    split: str = "auto",
    k: int = 10,
    progress: Callable[[str], None] | None = None,
    **fit_options: Any,
) -> RecommenderModel:
    """`mlpilot.recommend.train`: read, snapshot and record ``source``, fit, register and challenge.

    ``fit_options`` are the other parameters of `mlpilot.recommend.train`.
    """
    started = time.perf_counter()
    say = progress or (lambda message: None)
    check_arguments(split=split, k=k)
    ws = Workspace.resolve(workspace) if register else None
    say("reading data")
    frame, dataset, source_desc = _read(source, ws)
    metadata = None
    if items is not None:
        say("reading item metadata")
        from mlpilot.data import read_source

        metadata = items if isinstance(items, pd.DataFrame) else read_source(items)
    fit = fit_recommender(frame, user=user, item=item, metadata=metadata, name=name, split=split, k=k,
                          progress=say, **fit_options)
    recommender = fit.model
    if ws is not None:
        say("registering")
        recommender.registered_version_ = _register(
            fit, name or "recommender", ws, dataset, source_desc, time.perf_counter() - started
        )
    return recommender


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
                aliases=("champion",) if decision.promote else (),
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
