"""The AutoML engine: a table and a target in, a fitted, evaluated ensemble out.

No I/O here: `fit_tabular` takes a DataFrame and a config and returns plain
values; `train` (in ``_run``) adds reading the source and the registry.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpilot._config import get_config
from mlpilot.automl._config import TrainConfig
from mlpilot.data import Schema, infer_schema, leak_suspects
from mlpilot.data._schema import check_target, looks_like_datetime
from mlpilot.evaluate import (
    Evaluation,
    classification_plots,
    evaluate_search,
    importance_plot,
    model_card,
    permutation_importance,
    regression_plots,
    render_report,
)
from mlpilot.evaluate._evaluation import bootstrap_call_seconds
from mlpilot.exceptions import (
    ColumnNotFoundError,
    DataError,
    DataQualityWarning,
    InvalidParameterError,
    MlpilotWarning,
    ResourceLimitError,
    TargetError,
)
from mlpilot.search import SearchConfig, SearchResult, TabularEnsemble, fit_final, run_search
from mlpilot.tasks import (
    Metric,
    TargetEncoding,
    ThresholdChoice,
    choose_threshold,
    default_metric,
    detect_task,
    drop_non_numeric_target,
    encode_target,
    get_metric,
    holdout_summary,
)
from mlpilot.tune import Budget, Clock, Executor, bootstrap_rounds, register_seconds, slack
from mlpilot.tune._budget import (
    EVALUATE_LEAST_SHARE,
    EVALUATE_SHARE,
    IMPORTANCE_SHARE,
    REPORT_SECONDS,
    REPORT_SHARE,
    TRIAL_SHARE,
)
from mlpilot.tune._stats import MIN_BOOT_ROUNDS

logger = logging.getLogger(__name__)

MIN_ROWS = 10
MIN_PER_CLASS = 2
# Classes with fewer rows than this are dropped (with a warning and a note) when together they are at most
# RARE_DROP_SHARE of the rows and two classes or more remain: the stratified holdout needs three rows of a
# class and the folds at least two, so one such class would cost every other class its holdout and folds.
RARE_CLASS_ROWS = 3
RARE_DROP_SHARE = 0.01
# Below this many rows the holdout would be too small to mean anything.
MIN_HOLDOUT_ROWS = 50


@dataclass
class FitOutcome:
    """Everything the engine produced for one table."""

    model: TabularEnsemble
    task: str
    metric: str
    target: str
    encoding: TargetEncoding
    schema: Schema
    features: list[str]
    evaluation: Evaluation
    search: SearchResult
    card: dict[str, Any]
    plots: dict[str, bytes]
    report_html: str
    notes: list[str]
    leaks: list[str]
    timings: dict[str, float]
    holdout_frame: pd.DataFrame | None
    holdout_y: np.ndarray | None = field(default=None, repr=False)
    holdout_weight: np.ndarray | None = field(default=None, repr=False)  # the holdout rows' weights (weighted runs)
    deadlines: dict[str, float] = field(default_factory=dict)  # phase -> seconds from the start (clock mode)
    artifact: tuple[bytes, str] | None = field(default=None, repr=False)  # the model serialised, when asked to
    artifact_model: Any = field(default=None, repr=False)  # the model those bytes are of

    def saved(self) -> tuple[bytes, str] | None:
        """The serialised bytes and format of `model`; None if none were made, or made of another model
        (a Spark run replaces the sample's model with the cluster's fit after the engine returns)."""
        return self.artifact if self.artifact is not None and self.artifact_model is self.model else None


def _roles(schema: Schema, frame: pd.DataFrame, features: list[str]) -> dict[str, str]:
    roles = {}
    for name in features:
        col = schema[name]
        role = "categorical" if col.role == "boolean" else col.role
        if role == "numeric" and not pd.api.types.is_numeric_dtype(frame[name]):
            role = "categorical"
        roles[name] = role
    return roles


def _holdout_split(y: np.ndarray, task: str, fraction: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if fraction <= 0:
        return idx, idx[:0]
    stratify = y if task != "regression" else None
    dev, hold = train_test_split(idx, test_size=fraction, random_state=random_state, stratify=stratify)
    return np.sort(dev), np.sort(hold)


def row_times(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Each row's time in ``column`` as a float (NaN where it has none): numbers as they are, dates as nanoseconds.

    Raises a `ColumnNotFoundError` for a column the frame lacks and a `DataError` when fewer than two
    rows have a readable time.
    """
    from mlpilot.features import as_datetime

    if column not in frame.columns:
        raise ColumnNotFoundError(column, [str(c) for c in frame.columns], what="time-split column")
    series = frame[column]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        times = series.to_numpy(dtype=float, na_value=np.nan)
    else:
        stamps = as_datetime(series)
        times = np.where(stamps.isna(), np.nan, stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)).astype(float)
    readable = int(np.isfinite(times).sum())
    if readable < 2:
        raise DataError(
            f"The time-split column {column!r} has {readable} readable time(s); it needs dates, "
            "times or numbers to order the rows by. Pick another column, or leave out --time-split."
        )
    return times


def _time_holdout(times: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Development and holdout rows where the holdout is the latest ``fraction`` of rows by ``times``.

    Rows without a time stay in development. The cut falls between two times: rows of the time
    it would split (eight states' rows of one quarter) all go to the holdout, unless that would
    hold out every row or more than twice the share asked, when ties keep the rows' order.
    """
    idx = np.arange(len(times))
    if fraction <= 0:
        return idx, idx[:0]
    known = np.flatnonzero(np.isfinite(times))
    order = known[np.argsort(times[known], kind="stable")]
    hold = order[len(order) - max(1, round(fraction * len(times))):]
    tied = known[times[known] >= times[hold[0]]]
    if len(tied) < len(known) and len(tied) <= 2 * len(hold):
        hold = tied
    hold = np.sort(hold)
    return np.setdiff1d(idx, hold), hold


def row_weights(frame: pd.DataFrame, column: str, target: str) -> np.ndarray:
    """The per-row weights in ``column``: finite, non-negative numbers, not all zero.

    Raises a `DataError` naming the column (and the first bad row) otherwise.
    """
    if column == target:
        raise InvalidParameterError(f"The weight column {column!r} is the target; pass the column of row weights.")
    if column not in frame.columns:
        raise ColumnNotFoundError(column, [str(c) for c in frame.columns], what="weight column")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if len(bad):
        raise DataError(
            f"The weight column {column!r} has {len(bad)} value(s) that are not finite non-negative numbers "
            f"(first at row {int(bad[0])}: {frame[column].iloc[bad[0]]}). Weights must be numbers >= 0; "
            "fix or drop those rows."
        )
    if not values.any():
        raise DataError(f"Every weight in the column {column!r} is zero; at least one row must count.")
    return values


def requested_task(config: TrainConfig, y: pd.Series | None = None) -> str | None:
    """The task asked for: ``task``, else regression when the metric is one only regression has
    and the target ``y`` holds numbers (not checked without ``y``: a Spark table's target).

    ``--metric mae`` on a count such as 0, 1, 2, 3, 7, 12 asks for numbers, not six classes.
    """
    if config.task is not None or config.metric is None:
        return config.task
    numeric = y is None or (pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y))
    return "regression" if numeric and get_metric(config.metric).tasks == ("regression",) else None


def prepare_target(frame: pd.DataFrame, target: str, task: str | None, *,
                   notes: list[str] | None = None) -> tuple[pd.DataFrame, str]:
    """Check the target, drop rows where it is missing and decide the task.

    A classifier's target of whole-number floats (0.0/1.0, as Parquet and CSV give an integer
    column with a missing value) becomes int64, so its classes are 0 and 1 end to end. The rows
    of classes with fewer than `RARE_CLASS_ROWS` rows (or, when those are too many, of those with
    fewer than `MIN_PER_CLASS`) are dropped when they are few (at most `RARE_DROP_SHARE` of the
    rows) and two classes remain, with a warning and, in ``notes``, a note; otherwise a class of
    fewer than `MIN_PER_CLASS` rows is refused.
    """
    if target not in frame.columns or frame[target].notna().sum() >= MIN_ROWS:
        check_target(frame, target)
    cleaned, junk = drop_non_numeric_target(frame[target], task)
    if junk is not None:
        warnings.warn(f"{junk.summary()}; treated as missing.", DataQualityWarning, stacklevel=3)
        frame = frame.assign(**{target: cleaned})
    missing = frame[target].isna()
    if missing.any():
        warnings.warn(
            f"Dropped {int(missing.sum())} row(s) whose target {target!r} is missing.",
            DataQualityWarning,
            stacklevel=3,
        )
        frame = frame.loc[~missing]
    if len(frame) < MIN_ROWS:
        raise DataError(
            f"The data has only {len(frame)} sample(s) (rows with a target); mlpilot needs at least "
            f"{MIN_ROWS} to train and evaluate a model honestly. Add more rows."
        )
    resolved = detect_task(frame[target].rename(target), task)
    if resolved != "regression" and _integral_floats(frame[target]):
        # 0.0/1.0 read from Parquet or CSV (an integer column with a missing value is float): the classes are ints
        frame = frame.assign(**{target: frame[target].astype(np.int64)})
    if resolved != "regression":
        labels = frame[target].astype(str)
        counts = labels.value_counts()
        rare = counts[counts < RARE_CLASS_ROWS]
        if rare.sum() > RARE_DROP_SHARE * len(frame):  # too many rows of two-row classes: only the one-row ones
            rare = counts[counts < MIN_PER_CLASS]
        if len(rare) and len(counts) - len(rare) >= 2 and rare.sum() <= RARE_DROP_SHARE * len(frame):
            message = (
                f"Dropped {int(rare.sum())} row(s): the class(es) of the target {target!r} with fewer than "
                f"{int(rare.max()) + 1} rows, {_listed(rare)} ({rare.sum() / len(frame):.2%} of the rows). Too few to "
                "cross-validate or hold out, they would cost every other class its holdout and folds; the model "
                "never predicts them. Add rows of those classes, or merge them into another, to keep them."
            )
            warnings.warn(message, DataQualityWarning, stacklevel=3)
            if notes is not None:
                notes.append(message)
            frame = frame.loc[~labels.isin(rare.index)]
            counts = counts.drop(rare.index)
        rare = counts[counts < MIN_PER_CLASS]
        if len(rare) and looks_like_datetime(counts.index[:200].tolist()):
            raise TargetError(
                f"The target {target!r} holds dates or times ({_listed(rare)}): as classes, most values are a "
                "class of their own. mlpilot predicts numbers or classes: convert it to a number first, such as "
                f"seconds for a duration (pandas: pd.to_timedelta(df[{target!r}]).dt.total_seconds()) or days "
                "since a date, and train on that column."
            )
        if len(rare):
            raise TargetError(
                f"The target {target!r} has classes with fewer than {MIN_PER_CLASS} rows: {_listed(rare)}. "
                "Cross-validation needs at least that many per class: merge or drop those classes, "
                "or add rows."
            )
    return frame, resolved


def _listed(counts: pd.Series) -> str:
    """``'a' (1 row), 'b' (2 rows)``: at most five classes and their row counts, then how many more."""
    listed = ", ".join(f"{k!r} ({v} row{'s' if v > 1 else ''})" for k, v in list(counts.items())[:5])
    return listed + (f" and {len(counts) - 5} more" if len(counts) > 5 else "")


def _integral_floats(y: pd.Series) -> bool:
    """Whether ``y`` (no missing values) is floats that are all whole numbers an int64 holds exactly."""
    if not pd.api.types.is_float_dtype(y.dtype) or not len(y):
        return False
    values = y.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)) and np.abs(values).max() < 2**53)


#: Bytes of memory training on one machine needs per byte of the table's pandas frame (the frame, its
#: folds and preprocessed copies, the learners' matrices, two candidates at once), measured with
#: bench/spark/run.py: the local `train` of 1e6 flights rows (a 114 MB frame) peaked at 4.1 GB, about 29x
#: above the process's base.
WORKING_FACTOR = 29
#: Rows of the frame whose deep memory use sizes the whole frame (object columns are costly to measure).
_SIZE_SAMPLE_ROWS = 10_000


def frame_bytes(frame: pd.DataFrame) -> int:
    """The pandas frame's memory, strings included, estimated from its first rows."""
    n = min(len(frame), _SIZE_SAMPLE_ROWS)
    if n == 0:
        return 0
    return int(frame.iloc[:n].memory_usage(deep=True, index=False).sum() * len(frame) / n)


def check_fits_memory(frame: pd.DataFrame, config: TrainConfig) -> None:
    """Refuse, before any fit, a table whose training would not fit this machine's memory.

    The need is `WORKING_FACTOR` times the frame's size; the budget is the smaller of
    ``memory_fraction`` of the RAM and what is free now plus the frame itself (already loaded).

    Raises
    ------
    ResourceLimitError
        With the table's size, the need, the budget and what to do instead.
    """
    import psutil

    size = frame_bytes(frame)
    need = WORKING_FACTOR * size
    fraction = config.memory_fraction or float(get_config()["memory_fraction"])
    memory = psutil.virtual_memory()
    budget = int(min(fraction * memory.total, memory.available + size))
    if need > budget:
        gib = 1 << 30
        raise ResourceLimitError(
            f"Training on {len(frame):,} rows ({size / gib:.2f} GiB in memory) needs about {need / gib:.1f} GiB on "
            f"one machine (about {WORKING_FACTOR}x the table), but {budget / gib:.1f} GiB may be used "
            f"(memory_fraction {fraction:.2g} of {memory.total / gib:.1f} GiB RAM, {memory.available / gib:.1f} GiB "
            "free now). Train it on Spark (`--engine spark`: the search runs on a sample sized to the driver's memory "
            "and the final model is fitted on every row on the cluster), or train on a sample of the rows, or raise "
            "mlpilot.set_config(memory_fraction=...) if the machine has the memory."
        )


def check_threshold_task(config: TrainConfig, task: str, target: str) -> None:
    """Refuse a decision-threshold option for a task that is not binary (before any training)."""
    if task != "binary" and (config.threshold is not None or config.threshold_metric is not None):
        option = "threshold" if config.threshold is not None else "threshold_metric"
        raise InvalidParameterError(
            f"A decision threshold ({option}) applies to binary tasks only; the target {target!r} makes this a "
            f"{task} task. Leave out --threshold/--threshold-metric."
        )


def fit_tabular(
    frame: pd.DataFrame,
    target: str,
    config: TrainConfig,
    *,
    schema: Schema | None = None,
    start: float | None = None,
    title: str | None = None,
    dataset_id: str | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    budget_clock: Clock | None = None,
    executor: Executor | None = None,
    serialize: Callable[[Any], tuple[bytes, str]] | None = None,
) -> FitOutcome:
    """Search, ensemble, refit, evaluate and report on ``frame``; see `mlpilot.train`.

    ``start`` is the ``time.perf_counter()`` at which the caller's budget began
    (defaults to now), so reading the data counts against the budget.
    ``budget_clock`` is the clock every budget decision reads (default
    `time.monotonic`; tests inject a fake one): deadlines, the measured fit,
    predict and metric costs the search refuses, caps and prunes on, the
    bootstrap's scaling and permutation importance's limit. An injected clock's
    budget begins at its reading when the call starts. ``timings`` stay on
    the real clock. The phases' deadlines are in
    ``FitOutcome.deadlines``; registration must end by the ``"register"`` one.
    ``executor`` runs the search's independent fits (default `LocalExecutor` threads).
    """
    start = time.perf_counter() if start is None else start
    clock = not config.deterministic
    timings: dict[str, float] = {}
    notes: list[str] = []
    asked = requested_task(config, frame[target]) if target in frame.columns else config.task
    frame, task = prepare_target(frame, target, asked, notes=notes)
    if config.task is None and asked is not None and detect_task(frame[target]) != "regression":
        # a decision from the metric, with its reason (only where the values alone would have said classes)
        notes.append(f"task: regression, as the metric {config.metric!r} scores numbers (pass --task to choose)")
    check_threshold_task(config, task, target)
    metric = get_metric(config.metric or default_metric(task), task)
    frame = frame.reset_index(drop=True)
    check_fits_memory(frame, config)
    row_weight = None
    if config.weight_column is not None:  # the weights, then the frame without them: they are not a feature
        row_weight = row_weights(frame, config.weight_column, target)
        frame = frame.drop(columns=[config.weight_column])
        notes.append(
            f"rows weighted by {config.weight_column!r} (from {row_weight.min():.4g} to {row_weight.max():.4g}, "
            f"mean {row_weight.mean():.4g}): every fit, the cross-validation and holdout scores and the ensemble's weights "
            "count each row by its weight"
        )
    if schema is None or schema.target != target or (
            config.weight_column is not None and config.weight_column in schema.names):
        schema = infer_schema(frame, target=target)  # (the weights are no column of the model's)
    features = [f for f in schema.feature_names if f in frame.columns]
    empty = [c.name for c in schema.excluded if c.n_unique == 0]
    if empty:
        warnings.warn(
            f"Ignoring column(s) with no values at all: {', '.join(map(repr, empty))}.",
            DataQualityWarning,
            stacklevel=2,
        )
    if not features:
        excluded = ", ".join(f"{c.name!r} ({'empty' if c.n_unique == 0 else c.role})" for c in schema.excluded)
        raise DataError(
            f"No usable feature columns besides the target {target!r}: {excluded or 'none'}. "
            "Features must not be entirely missing, constant or id-like."
        )
    suspects = leak_suspects(frame, target, task, features)
    leaks = [s.column for s in suspects]
    if leaks:
        action = "dropped them (drop_leaks)" if config.drop_leaks else (
            "kept them; pass drop_leaks=True (CLI: --drop-leaks) to train without them"
        )
        message = (
            f"Column(s) {', '.join(map(repr, leaks))} alone predict the target {target!r} almost "
            f"perfectly ({'; '.join(dict.fromkeys(s.describe() for s in suspects))}) and probably leak it; mlpilot {action}."
        )
        warnings.warn(message, DataQualityWarning, stacklevel=2)
        notes.append(message)
        if config.drop_leaks:
            features = [f for f in features if f not in leaks]
            if not features:
                raise DataError("Every feature column leaks the target; nothing honest is left to learn from.")
    roles = _roles(schema, frame, features)
    y, encoding = encode_target(frame[target], task)
    n_classes = len(encoding.classes)
    if row_weight is not None and task != "regression" and len(np.unique(y[row_weight > 0])) < 2:
        raise TargetError(
            f"Only one class of the target {target!r} has rows with a weight above zero in {config.weight_column!r}; "
            "a classifier needs rows of at least two classes that count. Give rows of another class a positive weight."
        )
    X = frame[features]
    fraction = config.holdout
    if fraction > 0 and (len(y) < MIN_HOLDOUT_ROWS or (task != "regression" and np.bincount(y).min() < 3)):
        notes.append(f"Too few rows ({len(y)}) for a holdout; scores are cross-validated only.")
        fraction = 0.0
    times = None
    if config.time_split is not None:
        times = row_times(frame, config.time_split)
        dev, hold = _time_holdout(times, fraction)
        missing = [] if task == "regression" else sorted(set(range(n_classes)) - set(np.unique(y[hold]).tolist()))
        if len(hold) and missing:  # a score needs every class among the rows it scores
            absent = ", ".join(repr(encoding.classes[i]) for i in missing[:5])
            notes.append(
                f"No holdout: the latest {len(hold)} rows by {config.time_split!r} have no row of the class(es) {absent}, "
                "and a holdout without every class cannot score the model; scores are cross-validated only."
            )
            dev, hold = np.arange(len(y)), np.arange(0)
        else:
            notes.append(f"The holdout is the latest {len(hold)} rows by {config.time_split!r} (time split).")
    else:
        dev, hold = _holdout_split(y, task, fraction, config.random_state)
    timings["prepare"] = time.perf_counter() - start

    # the budget: every phase's deadline is the run's, less what the phases after it expect to take
    # an injected clock starts at its own reading: the time before this call is on the real clock
    spent = time.perf_counter() - start if budget_clock is None else 0.0
    total = Budget.start_now(config.time_budget if clock else None, clock=budget_clock or time.monotonic,
                             spent=spent)
    plan = _PhasePlan.for_table(total, metric, y[hold], task, n_classes, n_cells=X.size, report=config.report)
    memory_fraction = config.memory_fraction or float(get_config()["memory_fraction"])
    import psutil

    memory_limit = int(psutil.virtual_memory().total * memory_fraction)
    search_config = SearchConfig(
        budget=plan.search,
        n_trials=config.n_trials,
        n_folds=config.n_folds,
        families=config.families,
        random_state=config.random_state,
        n_jobs=config.n_jobs,
        memory_limit=memory_limit,
        predict_limit=None if config.max_predict_ms is None else config.max_predict_ms / 1e6,
        refit_share=len(y) / max(len(dev), 1) if config.refit_full else 1.0,
        executor=executor,
        stacking=config.stacking,
        stack_layer=config.stack_layer,
    )
    t0 = time.perf_counter()
    result = run_search(
        X.iloc[dev], y[dev], task=task, metric=metric, roles=roles, n_classes=n_classes,
        holdout=X.iloc[hold] if len(hold) else None, config=search_config, on_progress=on_progress,
        sample_weight=None if row_weight is None else row_weight[dev],
        time_order=None if times is None else times[dev],
    )
    notes.extend(result.notes)
    timings["search"] = time.perf_counter() - t0
    searched = dev[result.rows(len(dev))]  # the rows the out-of-fold predictions are for (a sample on a large table)
    timings["ensemble"] = result.ensemble_seconds

    # the refit decides the members before anything is scored: what is registered is what was scored
    t0 = time.perf_counter()
    fit_rows = np.arange(len(y)) if config.refit_full else dev
    members, names, weights, refit_notes = fit_final(
        X.iloc[fit_rows], y[fit_rows], result, task=task, roles=roles, n_classes=n_classes,
        random_state=config.random_state, n_jobs=config.n_jobs, deterministic=not clock, budget=plan.refit,
        sample_weight=None if row_weight is None else row_weight[fit_rows],
    )
    notes.extend(refit_notes)
    seen: set[int] = set()
    for pre, _learner in members:  # the features chosen from the data, once per shared preprocessor
        if id(pre) not in seen:
            seen.add(id(pre))
            notes.extend(f"features: {d}" for d in getattr(pre, "decisions_", []) if f"features: {d}" not in notes)
    if set(names) != set(result.weights):
        result = result.with_weights(dict(zip(names, weights, strict=True)), y[searched],
                                     metric if row_weight is None else metric.weighted(row_weight[searched]))
    threshold = _choose_threshold(result, y[searched], config, notes, None if row_weight is None else row_weight[searched],
                                  classes=encoding.classes) if task == "binary" else None
    model = TabularEnsemble(
        task=task, members=members, weights=weights, names=names,
        classes=list(encoding.classes) if task != "regression" else None, feature_names=features,
        n_jobs=config.n_jobs, threshold=None if threshold is None else threshold.threshold,
        stacker=result.stack.stacker if result.stack is not None and result.stack.chosen else None,
    ).fit()
    timings["refit"] = time.perf_counter() - t0

    cuts: dict[str, list[str]] = {"refit": list(refit_notes)}  # each phase's budget decisions, with their numbers
    artifact = None
    if serialize is not None:
        # saved as soon as it is fitted, on the budget's clock: a large model's save (a forest of deep
        # trees can take seconds) comes out of the evaluation's and the report's time, not past the deadline
        t0, saving = time.perf_counter(), total.now()
        artifact = serialize(model)
        timings["serialize"] = time.perf_counter() - t0
        took = total.now() - saving
        # the part of the save past the refit's deadline (not a refit that ran past it by itself)
        late = min(-plan.refit.left(), took) if clock else 0.0
        if late > 0:
            notes.append(f"saving the model ({len(artifact[0]) / 1e6:.1f} MB, {artifact[1]}) took "
                         f"{took:.2f}s, {late:.2f}s of it past the refit's deadline: "
                         "the evaluation and the report had that much less time")
            cuts["refit"].append(notes[-1])

    t0 = time.perf_counter()
    mark = len(notes)  # what the evaluation and the report add to the notes below is a budget decision
    n_boot, n_boot_others = bootstrap_rounds(
        plan.evaluate.left(), plan.metric_seconds, n_candidates=len(result.candidates),
        champion=1000 if len(hold) <= 5000 else 300,
    )
    if n_boot < (1000 if len(hold) <= 5000 else 300):
        notes.append(
            f"bootstrap intervals use {n_boot} resamples (others {n_boot_others}) to keep the time budget: "
            f"{max(plan.evaluate.left(), 0.0):.2f}s left for evaluation, {plan.metric_seconds * 1e3:.2f} ms "
            "per metric call on the holdout"
        )
    stop = _DeadlineStop(plan.evaluate) if clock else None
    hold_metric = metric if row_weight is None else metric.weighted(row_weight[hold])  # holdout rows, weighted
    evaluation = evaluate_search(result, y[searched], y[hold] if len(hold) else None, task=task,
                                 metric=hold_metric,
                                 random_state=config.random_state, n_boot=n_boot, n_boot_others=n_boot_others,
                                 threshold=None if threshold is None else threshold.threshold, stop=stop)
    if stop is not None and stop.cut:
        notes.append(
            f"bootstrap resampling stopped at the evaluation's deadline: {stop.cut} interval(s) or test(s) kept "
            f"the resamples they had (at least {MIN_BOOT_ROUNDS}); the metric calls took longer than the "
            f"{plan.metric_seconds * 1e3:.2f} ms each measured before the evaluation (a busy machine)"
        )
    timings["evaluate"] = time.perf_counter() - t0
    cuts["evaluate"], mark = notes[mark:], len(notes)

    t0 = time.perf_counter()
    plots: dict[str, bytes] = {}
    holdout_frame = X.iloc[hold] if len(hold) else None
    if config.report and holdout_frame is not None and evaluation.holdout_prediction is not None:
        y_hold = y[hold]
        if not plan.report.fits(REPORT_SECONDS):
            notes.append(
                f"plots and permutation importance skipped to keep the time budget: "
                f"{max(plan.report.left(), 0.0):.2f}s left for the report, they take about {REPORT_SECONDS:g}s"
            )
        else:
            drawing = _DeadlineStop(plan.report) if clock else None
            if task == "regression":
                plots.update(regression_plots(y_hold, evaluation.holdout_prediction, stop=drawing))
            else:
                plots.update(classification_plots(y_hold, evaluation.holdout_prediction,
                                                  [str(c) for c in encoding.classes], stop=drawing))
            if drawing is not None and drawing.cut:
                notes.append(f"plots stopped after {len(plots)} to keep the time budget: the report's deadline "
                             f"passed while they were drawn (about {REPORT_SECONDS:g}s expected for all of them)")

            def predict_values(f: pd.DataFrame) -> np.ndarray:
                return model.predict_proba(f) if task != "regression" else model.predict(f)

            limit = None if not clock else plan.report.cap(IMPORTANCE_SHARE)
            evaluation.importance = permutation_importance(
                predict_values, holdout_frame, y_hold, hold_metric, features,
                random_state=config.random_state, time_limit=limit, n_repeats=2, max_rows=500, clock=total.clock,
            )
            if len(evaluation.importance) < len(features):
                notes.append(
                    f"permutation importance covers {len(evaluation.importance)} of {len(features)} columns: "
                    f"it may use {IMPORTANCE_SHARE:.0%} of the {max(plan.report.left(), 0.0) / IMPORTANCE_SHARE:.2f}s "
                    "that were left for the report"
                )
            if evaluation.importance and not (drawing is not None and drawing()):  # its plot while time is left
                plots["importance.png"] = importance_plot(evaluation.importance)
                notes_pi = "measured on the holdout rows with the final model"
                if config.refit_full:
                    notes_pi += ", which was refit on them: read it as relative importance"
                evaluation.metrics["importance_note"] = notes_pi
    cuts["report"] = notes[mark:]
    class_counts = None
    if task != "regression":
        values, counts = np.unique(y, return_counts=True)
        class_counts = {str(encoding.classes[v]): int(c) for v, c in zip(values, counts, strict=True)}
    card = model_card(
        evaluation, task=task, target=target, n_rows=len(y), n_holdout=len(hold), n_folds=len(result.folds),
        features=features, class_counts=class_counts, time_budget=config.time_budget if clock else None,
        random_state=config.random_state, notes=_card_notes(notes, result), dataset_id=dataset_id, refit_full=config.refit_full,
        budget=config.budget_description,
    )
    card["importance"] = [{"column": c, "mean": m, "std": s} for c, m, s in evaluation.importance]
    if result.stack is not None:  # the decision between the stack and the greedy ensemble, with both scores
        card["stacking"] = result.stack.to_dict(metric)
    if threshold is not None:
        card["threshold"] = _threshold_card(threshold, encoding, y[hold], evaluation.holdout_prediction)
    card["budget"] = _budget_card(config, plan, timings, result, cuts)
    if result.sample is not None:  # the search's rows, and how they were drawn, beside the data they came from
        card["data"]["search_sample"] = result.sample.to_dict()
        card["protocol"]["cross_validation"] += (
            f" on a sample of {len(result.sample.rows):,} of the {result.sample.n_rows:,} development rows "
            f"({result.sample.drawn}, seed {result.sample.random_state}) to keep the time budget")
    report_html = render_report(title or f"mlpilot model for {target}", evaluation, card, plots)
    timings["report"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    card["budget"]["seconds"].update(report=round(timings["report"], 3), total=round(timings["total"], 3))
    return FitOutcome(
        model=model, task=task, metric=metric.name, target=target, encoding=encoding, schema=schema,
        features=features, evaluation=evaluation, search=result, card=card, plots=plots,
        report_html=report_html, notes=notes, leaks=leaks, timings=timings,
        holdout_frame=holdout_frame, holdout_y=y[hold] if len(hold) else None, deadlines=plan.deadlines(),
        holdout_weight=None if row_weight is None or not len(hold) else row_weight[hold], artifact=artifact,
        artifact_model=model if artifact is not None else None,
    )


def _choose_threshold(result: SearchResult, y_dev: np.ndarray, config: TrainConfig, notes: list[str],
                      sample_weight: np.ndarray | None = None, *, classes: Any = ("0", "1")) -> ThresholdChoice:
    """The binary model's decision threshold, chosen on the registered ensemble's out-of-fold probabilities.

    Never on the holdout, which stays a test. Rows count by ``sample_weight``
    when the run is weighted. A note gives the rule's measure at the threshold
    and at 0.5 (F1 is the rarer class's: ``classes[0]``'s where the positive class,
    ``classes[1]``, is the majority); a precision or recall target no threshold reaches is also a warning.
    """
    rule = config.threshold_rule
    choice = choose_threshold(y_dev, np.asarray(result.ensemble_oof)[:, 1], rule, sample_weight=sample_weight)
    measure = choice.measure
    how = "fixed by the user" if rule.kind == "fixed" else f"chosen for {rule.describe()}"
    if measure == "f1_negative_class":  # the positive class is the majority: F1 is the rarer class's
        positive = float(np.average(y_dev, weights=sample_weight))
        how = (f"chosen for f1 of the rarer class, {str(classes[0])!r}: the positive class {str(classes[1])!r} "
               f"is {positive:.0%} of the rows, and its own f1 drifts towards labelling every row positive")
    weighted = "" if sample_weight is None else " (weighted)"
    notes.append(
        f"decision threshold {choice.threshold:.4g} ({how}): {measure} {choice.at_threshold[measure]:.4g} on the "
        f"{choice.n_rows} out-of-fold rows{weighted}, against {choice.at_half[measure]:.4g} at 0.5"
    )
    if not choice.reached:
        warnings.warn(f"Decision threshold: {choice.note}.", MlpilotWarning, stacklevel=3)
        notes.append(f"decision threshold: {choice.note}")
    return choice


def _threshold_card(choice: ThresholdChoice, encoding: TargetEncoding, y_hold: np.ndarray,
                    holdout_prediction: np.ndarray | None) -> dict[str, Any]:
    """The model card's threshold section: the choice, its evidence and the holdout at that threshold and at 0.5."""
    from mlpilot.registry._labels import recorded_label  # as the registry lists the classes

    section = {**choice.to_dict(), "positive_class": recorded_label(encoding.classes[1]),
               "negative_class": recorded_label(encoding.classes[0])}
    # how the measure is shown: the negative class's F1 by its class's name
    section["measure_label"] = (f"f1 of {encoding.classes[0]!s}" if choice.measure == "f1_negative_class"
                                else choice.measure.replace("_", " "))
    if holdout_prediction is not None and len(y_hold):
        p_hold = np.asarray(holdout_prediction)[:, 1]
        section["holdout"] = holdout_summary(y_hold, p_hold, choice.threshold)
        section["holdout_at_0.5"] = holdout_summary(y_hold, p_hold, 0.5)
    return section


def _budget_card(config: TrainConfig, plan: _PhasePlan, timings: dict[str, float], result: SearchResult,
                 cuts: dict[str, list[str]]) -> dict[str, Any]:
    """The model card's budget evidence: what bounded the run, each phase's deadline and seconds, what was cut.

    ``deadlines`` are the seconds from the start by which each phase had to end (none without a
    clock), ``seconds`` what each took on the real clock (registration is in the run's timings:
    the card is stored by it). ``search.ended_by`` is the rule that ended the search; ``cuts``
    holds every decision a phase made to keep the budget, as the notes word them.
    """
    tuned = [c for c in result.candidates if "_tuned_" in c.name and c.status != "skipped"]
    if config.deterministic:
        ended_by = f"the work, not the clock: the portfolio, then {config.n_trials} tuner trial(s) at most"
    elif result.refused:
        ended_by = str(result.budget_summary())
    elif tuned:
        ended_by = (f"the deadline: tuning {tuned[0].family} stops once the time left, less what is kept for the "
                    f"refit and ensemble selection, is under {TRIAL_SHARE:.0%} of its last fit "
                    f"({len(tuned)} trial(s) run)")
    else:
        ended_by = "the portfolio: no boosted family was tuned, and every configuration ran"
    search_cuts = [n for n in result.notes if n.startswith("tuning ") or "time budget" in n]
    if result.sample is not None:
        search_cuts.insert(0, result.sample.describe())
    return {
        "rule": config.budget_description,
        "time_budget_seconds": None if config.deterministic else config.time_budget,
        "deadlines": plan.deadlines(),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "search": {"candidates": sum(c.status != "skipped" for c in result.candidates),
                   "tuner_trials": len(tuned), "refused": list(result.refused), "ended_by": ended_by,
                   "refit_reserve_seconds": round(result.refit_reserve, 3),
                   "sample": None if result.sample is None else result.sample.to_dict()},
        "cuts": {"search": search_cuts, **cuts},
    }


def _card_notes(notes: list[str], result: SearchResult) -> list[str]:
    """The run's notes for the model card: the budget refusals as one line where the first stood."""
    summary = result.budget_summary()
    if summary is None:
        return list(notes)
    refusals = {f"{name}: {result.candidate(name).note}" for name in result.refused}
    out: list[str] = []
    for note in notes:
        if note in refusals:
            if summary not in out:
                out.append(summary)
        else:
            out.append(note)
    return out


class _DeadlineStop:
    """A bootstrap's ``stop``: True once ``budget``'s deadline has passed; counts the resamplings it cut."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.cut = 0

    def __call__(self) -> bool:
        if self.budget.left() > 0:
            return False
        self.cut += 1  # asked again only by the next bootstrap: one per interval or test cut
        return True


@dataclass(frozen=True)
class _PhasePlan:
    """Each phase's `Budget`: the run's deadline less what the phases after it are expected to take."""

    total: Budget
    search: Budget
    refit: Budget
    evaluate: Budget
    report: Budget
    register: Budget
    metric_seconds: float

    @classmethod
    def for_table(cls, total: Budget, metric: Metric, y_hold: np.ndarray, task: str, n_classes: int, *,
                  n_cells: int, report: bool) -> _PhasePlan:
        seconds = total.seconds or 0.0
        metric_seconds = bootstrap_call_seconds(metric, y_hold, task, n_classes, clock=total.clock) if total.timed else 0.0
        register = total.until(slack(seconds))
        report_end = register.until(register_seconds(n_cells))
        evaluate = report_end.until(REPORT_SECONDS + REPORT_SHARE * seconds if report and len(y_hold) else 0.0)
        # the least evaluation worth having (200 resamples for the champion, 50 for a dozen
        # others); the search leaves room for the full one when that is a small share of the budget
        least = metric_seconds * (5 * 200 + 50 * 12) if len(y_hold) else 0.0
        least = min(least, EVALUATE_LEAST_SHARE * seconds)  # a large holdout: fewer resamples, not no model
        full = metric_seconds * (5 * 1000 + 100 * 12) if len(y_hold) else 0.0
        refit = evaluate.until(least)
        search = evaluate.until(min(full, max(least, EVALUATE_SHARE * seconds)))
        return cls(total, search, refit, evaluate, report_end, register, metric_seconds)

    def deadlines(self) -> dict[str, float]:
        """Seconds from the start by which each phase must end (empty without a clock)."""
        if not self.total.timed:
            return {}
        phases = {"search": self.search, "refit": self.refit, "evaluate": self.evaluate,
                  "report": self.report, "register": self.register}
        return {name: round(b.deadline - self.total.start, 3) for name, b in phases.items()}
