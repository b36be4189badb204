"""`monitor`: the served version's live rows against its training snapshot, as one report.

The report is the issue-12 JSON contract (`MonitorReport.to_dict`): ``window``
(``start``, ``end``, ``rows``), ``features`` (one entry per column and aspect:
``name``, ``role``, ``drift``, ``effect``, ``interval``, ``p_value``,
``threshold`` and more), ``prediction_drift``, ``performance`` (``estimated``,
``actual``, ``holdout``), ``model_at_risk`` and the per-feature counts of the
request's data-quality flags. The CLI, the REST route, the web page, the
Prometheus gauges and the autopilot all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mlpilot._config import parse_duration
from mlpilot._types import PathLike
from mlpilot._workspace import Workspace
from mlpilot.exceptions import DataError, EmptyDataError, InvalidParameterError
from mlpilot.monitor._drift import (
    FeatureDrift,
    Profile,
    Summary,
    build_profile,
    compare,
    drifted_importance,
    summarize,
)
from mlpilot.monitor._feedback import labelled_predictions
from mlpilot.monitor._performance import (
    MetricEstimate,
    estimate_metric,
    fit_calibrator,
    measure_metric,
)
from mlpilot.monitor._prediction_log import iter_prediction_log, read_prediction_log
from mlpilot.monitor._reference import Reference, encode_labels, load_reference

#: Sources of logged rows that are the served model's traffic (shadow rows belong to a challenger).
LIVE_SOURCES = ("api", "stream", "ui")
#: The share of the model's importance that must drift before the model is at risk.
RISK_SHARE = 0.25
_PREDICTION = "prediction"


@dataclass(frozen=True)
class MonitorReport:
    """What `monitor` found; ``to_dict()`` is the JSON contract.

    ``profile`` and ``live`` are the binned reference and window (the HTML
    report draws them); ``prediction_profile`` and ``prediction_live`` the same
    for the model's outputs.
    """

    name: str
    version: int
    start: datetime
    end: datetime
    rows: int
    features: list[FeatureDrift]
    prediction_drift: FeatureDrift | None
    performance: dict[str, MetricEstimate | None]
    metric: str | None
    drifted_importance: float
    model_at_risk: bool
    risk_reasons: list[str]
    quality: dict[str, dict[str, int]]
    rows_flagged: int
    timeline: list[dict[str, Any]]
    dataset_id: str | None
    reference_rows: int
    notes: list[str] = field(default_factory=list)
    profile: Profile | None = field(default=None, repr=False, compare=False)
    live: Summary | None = field(default=None, repr=False, compare=False)
    prediction_profile: Profile | None = field(default=None, repr=False, compare=False)
    prediction_live: Summary | None = field(default=None, repr=False, compare=False)

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drift]

    def to_dict(self) -> dict[str, Any]:
        """The issue-12 JSON contract, plain JSON values only."""
        return {
            "model": {"name": self.name, "version": self.version},
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat(), "rows": self.rows},
            "reference": {"dataset_id": self.dataset_id, "rows": self.reference_rows},
            "features": [f.to_dict() for f in self.features],
            "prediction_drift": self.prediction_drift.to_dict() if self.prediction_drift is not None else None,
            "performance": {
                "metric": self.metric,
                **{k: (v.to_dict() if v is not None else None) for k, v in self.performance.items()},
            },
            "drifted_importance": round(self.drifted_importance, 6),
            "model_at_risk": self.model_at_risk,
            "risk_reasons": list(self.risk_reasons),
            "quality": {"rows_flagged": self.rows_flagged, "by_feature": self.quality},
            "timeline": self.timeline,
            "notes": list(self.notes),
        }


def parse_since(value: str | datetime | pd.Timestamp | None, now: datetime, *, what: str) -> datetime | None:
    """A time from a duration back from ``now`` (``"7d"``, ``"12h"``) or an ISO date/time; ``None`` stays ``None``.

    Examples
    --------
    >>> now = datetime(2026, 1, 8, tzinfo=UTC)
    >>> parse_since("7d", now, what="since").isoformat()
    '2026-01-01T00:00:00+00:00'
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        stamp = pd.Timestamp(value)
    else:
        text = str(value).strip()
        try:
            return now - parse_window(text, what=what)
        except InvalidParameterError:
            pass
        try:
            stamp = pd.Timestamp(text)
        except ValueError:
            raise InvalidParameterError(
                f"--{what} must be a duration back from now such as '7d', '12h', '30min', or an ISO date/time "
                f"such as '2026-01-31T12:00'. Got {value!r}."
            ) from None
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()


def parse_window(value: str, *, what: str = "window") -> pd.Timedelta:
    """A positive duration such as ``"1d"``, ``"6h"``, ``"30min"`` (`mlpilot._config.parse_duration`).

    Examples
    --------
    >>> str(parse_window("1d"))
    '1 days 00:00:00'
    """
    return pd.Timedelta(seconds=parse_duration(value, what=f"--{what}", bare=False))


def _workspace(workspace: Workspace | PathLike | None) -> Workspace:
    from mlpilot.monitor._prediction_log import _existing_workspace

    return _existing_workspace(workspace)


def _quality_counts(warnings: pd.Series) -> tuple[dict[tuple[str, str], int], int]:
    """Per (feature, kind), the rows flagged (``"out_of_range:x; missing_value:y"``), and the rows with a flag."""
    flagged = warnings.fillna("").astype(str)
    flagged = flagged[flagged != ""]
    counts: dict[tuple[str, str], int] = {}
    pairs = flagged.str.split(";").explode().str.strip()
    for item, n in pairs[pairs != ""].value_counts().items():
        kind, _, column = str(item).partition(":")
        counts[(column or "(row)", kind)] = int(n)
    return counts, len(flagged)


@dataclass
class _Window:
    """The live window, read chunk by chunk into mergeable pieces, so its size does not bound memory.

    Features and predictions become binned counts (`Summary`), the quality
    flags and the rows per period counters; the probabilities behind the
    label-free estimate are kept for at most ``max_kept`` rows (a bottom-k
    sample by a hash of ``(request_id, row)``, so the same rows whatever the
    chunking; every row while the window is smaller); labelled rows are
    kept (they are few).
    """

    ref: Reference
    profile: Profile
    prediction_profile: Profile
    version: int
    start: datetime | None
    end: datetime
    step: pd.Timedelta | None
    labels: pd.DataFrame | None
    max_kept: int = 500_000
    rows: int = 0
    others: int = 0
    first: pd.Timestamp | None = None
    columns: set[str] = field(default_factory=set)
    summary: Summary | None = None
    prediction: Summary | None = None
    quality: dict[tuple[str, str], int] = field(default_factory=dict)
    flagged: int = 0
    periods: dict[pd.Timestamp, int] = field(default_factory=dict)
    lacks_proba: bool = False
    kept: list[pd.DataFrame] = field(default_factory=list)
    kept_rows: int = 0
    labelled: list[pd.DataFrame] = field(default_factory=list)

    def add(self, chunk: pd.DataFrame) -> None:
        if not len(chunk):
            return
        keep = (chunk["timestamp"] <= pd.Timestamp(self.end)) & chunk["source"].isin(LIVE_SOURCES)
        if self.start is not None:
            keep &= chunk["timestamp"] >= pd.Timestamp(self.start)
        chunk = chunk[keep]
        ours = chunk["version"] == self.version
        self.others += int((~ours).sum())
        live = chunk[ours].reset_index(drop=True)
        if not len(live):
            return
        self.rows += len(live)
        self.columns.update(live.columns)
        first = pd.Timestamp(live["timestamp"].min())
        self.first = first if self.first is None else min(self.first, first)
        part = summarize(live, self.profile)
        self.summary = part if self.summary is None else self.summary.merge(part)
        ref = self.ref
        proba = _live_proba(live, ref.classes) if ref.is_classifier and ref.classes is not None else None
        self.lacks_proba |= proba is None
        values, _ = _prediction_column(ref, live["prediction"].to_numpy(dtype=object), proba)
        predicted = summarize(pd.DataFrame({_PREDICTION: values}), self.prediction_profile)
        self.prediction = predicted if self.prediction is None else self.prediction.merge(predicted)
        counts, flagged = _quality_counts(live["warnings"])
        for key, n in counts.items():
            self.quality[key] = self.quality.get(key, 0) + n
        self.flagged += flagged
        if self.step is not None:
            for period, n in live["timestamp"].dt.floor(self.step).value_counts().items():
                self.periods[period] = self.periods.get(period, 0) + int(n)
        if proba is not None:
            self._keep(live, proba)
        if self.labels is not None:
            on = ["request_id", "row"] if "row" in self.labels.columns else ["request_id"]
            hits = live.merge(self.labels[[*on, "label"]], on=on, how="inner")
            if len(hits):
                self.labelled.append(hits)

    def merge(self, other: _Window) -> None:
        """Add ``other``'s counts (a window of the same reference read elsewhere, e.g. one Spark partition).

        Every piece is a sum, a minimum, a union or a bottom-k, so the merged window
        is the one a single reader would have built, whatever the split.
        """
        self.rows += other.rows
        self.others += other.others
        if other.first is not None:
            self.first = other.first if self.first is None else min(self.first, other.first)
        self.columns |= other.columns
        for mine, theirs in (("summary", other.summary), ("prediction", other.prediction)):
            if theirs is not None:
                current = getattr(self, mine)
                setattr(self, mine, theirs if current is None else current.merge(theirs))
        for key, n in other.quality.items():
            self.quality[key] = self.quality.get(key, 0) + n
        self.flagged += other.flagged
        for period, n in other.periods.items():
            self.periods[period] = self.periods.get(period, 0) + n
        self.lacks_proba |= other.lacks_proba
        self.kept.extend(other.kept)
        self.kept_rows += other.kept_rows
        if self.kept_rows > 2 * self.max_kept:
            self._shrink()
        self.labelled.extend(other.labelled)

    def _keep(self, live: pd.DataFrame, proba: np.ndarray) -> None:
        keys = pd.util.hash_pandas_object(live[["request_id", "row"]], index=False).to_numpy()
        kept = pd.DataFrame(proba, columns=[f"p{j}" for j in range(proba.shape[1])])
        self.kept.append(kept.assign(timestamp=live["timestamp"].to_numpy(), key=keys))
        self.kept_rows += len(live)
        if self.kept_rows > 2 * self.max_kept:
            self._shrink()

    def _shrink(self) -> None:
        kept = pd.concat(self.kept, ignore_index=True)
        if len(kept) > self.max_kept:
            kept = kept.nsmallest(self.max_kept, "key")
        self.kept, self.kept_rows = [kept], len(kept)

    def sample(self) -> tuple[pd.Series, np.ndarray] | None:
        """The kept rows' timestamps and probabilities, in time order (None when a chunk had none)."""
        if self.lacks_proba or not self.kept:
            return None
        self._shrink()
        kept = self.kept[0].sort_values(["timestamp", "key"], kind="stable").reset_index(drop=True)
        return kept["timestamp"], kept.drop(columns=["timestamp", "key"]).to_numpy(dtype=float)

    def labelled_rows(self) -> pd.DataFrame | None:
        """The window's rows joined to the given labels, in time order (None when none matched)."""
        if not self.labelled:
            return None
        frame = pd.concat(self.labelled, ignore_index=True)
        return frame.sort_values(["timestamp", "request_id", "row"], kind="stable").reset_index(drop=True)

    def quality_by_feature(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (column, kind), n in sorted(self.quality.items()):
            out.setdefault(column, {})[kind] = n
        return out


def _live_proba(frame: pd.DataFrame, classes: tuple[Any, ...]) -> np.ndarray | None:
    """The logged probabilities as rows × classes in ``classes`` order; ``None`` if any row lacks them."""
    keys = [str(c) for c in classes]
    values = frame["probabilities"].tolist()
    if not values or any(not isinstance(v, dict) for v in values):
        return None
    try:
        return np.array([[float(v[k]) for k in keys] for v in values], dtype=float)
    except (KeyError, TypeError, ValueError):
        return None


def _prediction_column(reference: Reference, predictions: np.ndarray, proba: np.ndarray | None) -> tuple[pd.Series, str]:
    """What prediction drift compares: the positive class's probability, the label, or the value."""
    if reference.is_classifier and proba is not None and proba.shape[1] == 2:
        return pd.Series(proba[:, 1], dtype=float), "numeric"
    if reference.task == "regression":
        return pd.Series(pd.to_numeric(pd.Series(predictions), errors="coerce"), dtype=float), "numeric"
    return pd.Series(predictions, dtype=object).astype(str), "categorical"


def _actual(reference: Reference, labelled: pd.DataFrame | None, metric: str, n_boot: int = 200) -> MetricEstimate | None:
    if labelled is None or not len(labelled) or reference.y is None:
        return None
    if reference.is_classifier and reference.classes is not None:
        y = encode_labels(labelled["label"], reference.classes)
        proba = _live_proba(labelled, reference.classes)
        known = y >= 0
        if proba is None or not known.any():
            return None
        return measure_metric(y[known], proba[known], metric, n_boot=n_boot, threshold=reference.threshold)
    y_num = pd.to_numeric(labelled["label"], errors="coerce").to_numpy(dtype=float)
    pred = pd.to_numeric(labelled["prediction"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(y_num) & np.isfinite(pred)
    return measure_metric(y_num[ok], pred[ok], metric, n_boot=n_boot) if ok.any() else None


def _checked_labels(labels: pd.DataFrame | None) -> pd.DataFrame | None:
    if labels is not None:
        missing = {"request_id", "label"} - set(labels.columns)
        if missing:
            raise DataError(f"labels must have the columns request_id and label; {sorted(missing)} missing.")
    return labels


def _stored_labels(workspace: Workspace, name: str, version: int, start: datetime | None, end: datetime
                   ) -> pd.DataFrame:
    """The window's rows of ``version`` with a label in the feedback store (read in chunks)."""
    frame = labelled_predictions(workspace, name, since=start, until=end)
    if not len(frame):
        return frame  # type: ignore[no-any-return]
    frame = frame[(frame["version"] == version) & frame["source"].isin(LIVE_SOURCES)]
    return frame.reset_index(drop=True)  # type: ignore[no-any-return]


def _timeline(
    reference: Reference, window: _Window, sample: tuple[pd.Series, np.ndarray] | None,
    labelled: pd.DataFrame | None, metric: str | None, calibrator: Any, random_state: int,
) -> list[dict[str, Any]]:
    step = window.step
    if step is None or not window.rows:
        return []
    periods = sample[0].dt.floor(step) if sample is not None else None
    out = []
    for start in sorted(window.periods):
        entry: dict[str, Any] = {"start": pd.Timestamp(start).isoformat(),
                                 "end": (pd.Timestamp(start) + step).isoformat(), "rows": window.periods[start]}
        if metric is not None and reference.is_classifier and sample is not None and periods is not None:
            proba = sample[1][(periods == start).to_numpy()]
            if len(proba):
                entry["estimated"] = estimate_metric(proba, metric, calibrator=calibrator, n_simulations=100,
                                                     random_state=random_state, threshold=reference.threshold).to_dict()
        if metric is not None and labelled is not None and len(labelled):
            in_period = labelled[labelled["timestamp"].dt.floor(step) == start]
            actual = _actual(reference, in_period, metric, n_boot=100)
            entry["actual"] = actual.to_dict() if actual is not None else None
        out.append(entry)
    return out


def monitor(
    name: str,
    *,
    workspace: Workspace | PathLike | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    window: str | None = None,
    reference: pd.DataFrame | None = None,
    version: int | None = None,
    labels: pd.DataFrame | None = None,
    alpha: float = 0.05,
    min_rows: int = 100,
    random_state: int = 0,
    now: datetime | None = None,
    chunk_rows: int | None = 1_000_000,
    fill: Callable[[_Window], None] | None = None,
) -> MonitorReport:
    """Check the served version of ``name`` on its logged traffic against its training snapshot.

    Parameters
    ----------
    name : str
        The model; its ``champion`` (else its latest version) is monitored, or ``version``.
    workspace : Workspace, str or Path, optional
        As for `mlpilot.train` (``None``: ``MLPILOT_HOME`` or ``./mlpilot-workspace``).
    since, until : str or datetime, optional
        The window: a duration back from now (``"7d"``) or an ISO time. Default: all logged rows.
    window : str, optional
        Split the window into periods of this length (``"1d"``) for the metric over time.
    reference : DataFrame, optional
        Rows to compare with instead of the version's training snapshot.
    version : int, optional
        Monitor this version instead of the served one.
    labels : DataFrame, optional
        Labels for logged rows (``request_id``, ``label``, optionally ``row``);
        default: those fed back through ``mlpilot feedback``, where installed.
    alpha : float
        False discovery rate across the features' tests.
    min_rows : int
        The fewest live rows worth checking; a feature with fewer values is not tested.
    random_state : int
        Seed of the resampling and simulations: the same log gives the same report.
    now : datetime, optional
        The clock for relative ``since``/``until`` (default: the current UTC time).
    chunk_rows : int or None
        Read the log in chunks of this many rows, each binned and merged, so
        a window of any size fits in bounded memory; ``None`` reads the
        window as one frame (the same report).
    fill : callable, optional
        Reads the live window into the (empty) window it is given, instead of
        the workspace's prediction log: `mlpilot.spark.monitor_spark` fills it
        from a Spark table, one merged window per partition (``chunk_rows`` is then unused).

    Returns
    -------
    MonitorReport

    Raises
    ------
    ModelNotFoundError
        An unknown model or version.
    EmptyDataError
        No logged row of the version in the window, or fewer than ``min_rows``.
    DataError
        No training snapshot recorded and no ``reference`` given.
    """
    from mlpilot.registry import Registry
    from mlpilot.registry._ref import check_name

    if min_rows < 1:
        raise InvalidParameterError(f"min_rows must be at least 1. Got {min_rows!r}.")
    check_name(name)
    clock = now or datetime.now(UTC)
    start = parse_since(since, clock, what="since")
    end = parse_since(until, clock, what="until") or clock
    step = parse_window(window) if window is not None else None
    if start is not None and start >= end:
        raise InvalidParameterError(f"The window is empty: since ({start.isoformat()}) is not before until "
                                    f"({end.isoformat()}).")
    labels = _checked_labels(labels)
    ws = _workspace(workspace)
    registry = Registry(ws)
    try:
        mv = registry.get_version(f"{name}:{version}" if version is not None else name)
        ref = load_reference(registry, mv, frame=reference, random_state=random_state)
    finally:
        registry.close()
    profile = build_profile(ref.frame, ref.roles)
    ref_values, role = _prediction_column(ref, ref.predictions, ref.proba)
    prediction_profile = build_profile(pd.DataFrame({_PREDICTION: ref_values}), {_PREDICTION: role})
    live = _Window(ref, profile, prediction_profile, mv.version, start, end, step, labels)
    if fill is not None:
        fill(live)
    else:
        chunks = ([read_prediction_log(ws, name)] if chunk_rows is None
                  else iter_prediction_log(ws, name, since=start, chunk_rows=chunk_rows))
        for chunk in chunks:
            live.add(chunk)
    span = f"since {start.isoformat()}" if start is not None else "in the whole log"
    if not live.rows:
        extra = f" ({live.others} row(s) of other versions)" if live.others else ""
        raise EmptyDataError(
            f"No logged predictions of {mv.ref} {span} up to {end.isoformat()}{extra}. Send traffic to "
            f"mlpilot serve (or widen the window with --since) and run the monitor again."
        )
    if live.rows < min_rows:
        raise EmptyDataError(
            f"Only {live.rows} logged prediction(s) of {mv.ref} {span}: fewer than the {min_rows} a drift "
            "check needs to mean anything. Widen the window with --since, or wait for more traffic."
        )
    return _report(ref, live, ws, alpha, min_rows, random_state)


def _report(ref: Reference, live: _Window, ws: Workspace, alpha: float, min_rows: int,
            random_state: int) -> MonitorReport:
    notes: list[str] = []
    if live.others:
        notes.append(f"{live.others} row(s) of other versions in the window were left out.")
    absent = [c for c in ref.roles if c not in live.columns]
    if absent:
        notes.append(f"Feature(s) never logged in the window (counted as missing): {', '.join(absent)}.")
    profile, summary = live.profile, live.summary
    assert summary is not None and live.prediction is not None
    features = compare(profile, summary, importances=ref.importances, alpha=alpha, min_rows=min_rows,
                       random_state=random_state)
    share = drifted_importance(features, ref.importances)
    if not ref.importances:
        notes.append("No feature importances recorded for this version: every feature weighs the same.")
    prediction = compare(live.prediction_profile, live.prediction, alpha=alpha, min_rows=min_rows,
                         random_state=random_state)[0]
    sample = live.sample()
    if sample is not None and len(sample[1]) < live.rows:
        notes.append(f"The label-free estimate is on a fixed sample of {len(sample[1]):,} of the window's "
                     f"{live.rows:,} rows (chosen by a hash of request id and row).")

    metric = ref.metric
    calibrator = None
    estimated: MetricEstimate | None = None
    if ref.is_classifier and ref.proba is not None and metric is not None:
        if ref.y is not None:
            calibrator = fit_calibrator(ref.y, ref.proba)
        if sample is not None:
            estimated = estimate_metric(sample[1], metric, calibrator=calibrator, random_state=random_state,
                                        threshold=ref.threshold)
        else:
            notes.append("The log has no probabilities for every row: no label-free estimate.")
    elif ref.task == "regression":
        notes.append("No label-free estimate for a regression model; the real metric appears once labels arrive.")
    if live.labels is None:
        labelled: pd.DataFrame | None = _stored_labels(ws, ref.name, ref.version, live.start, live.end)
    else:
        labelled = live.labelled_rows()
    actual = _actual(ref, labelled, metric) if metric is not None else None
    performance = {"estimated": estimated, "actual": actual, "holdout": ref.holdout}

    reasons = []
    if share >= RISK_SHARE:
        names = sorted({f.name for f in features if f.drift})
        reasons.append(f"drift in {', '.join(names)}: {share:.0%} of the model's importance "
                       f"(at risk from {RISK_SHARE:.0%})")
    if prediction.drift:
        reasons.append(f"the predictions drifted ({prediction.statistic} {prediction.effect:.3g} > "
                       f"{prediction.threshold:.3g})")
    live_metric = actual if actual is not None and actual.value is not None else estimated
    if (live_metric is not None and live_metric.interval is not None and ref.holdout is not None
            and ref.holdout.value is not None):
        low, high = ref.holdout.interval or (ref.holdout.value, ref.holdout.value)
        hi, lo = live_metric.interval[1], live_metric.interval[0]
        worse = hi < low if ref.holdout.greater_is_better else lo > high
        if worse:
            kind = "measured" if live_metric is actual else "estimated"
            reasons.append(f"the {kind} {metric} {live_metric.value:.4g} is below the holdout's "
                           f"{ref.holdout.value:.4g} beyond both intervals")
    assert live.first is not None  # the window has rows
    start_at = live.start or live.first.to_pydatetime()
    return MonitorReport(
        name=ref.name, version=ref.version, start=start_at, end=live.end, rows=live.rows, features=features,
        prediction_drift=prediction, performance=performance, metric=metric, drifted_importance=share,
        model_at_risk=bool(reasons), risk_reasons=reasons, quality=live.quality_by_feature(),
        rows_flagged=live.flagged, timeline=_timeline(ref, live, sample, labelled, metric, calibrator, random_state),
        dataset_id=ref.dataset_id, reference_rows=len(ref.frame), notes=notes, profile=profile, live=summary,
        prediction_profile=live.prediction_profile, prediction_live=live.prediction,
    )

