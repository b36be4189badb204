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

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

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
from mlpilot.monitor._prediction_log import read_prediction_log
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
    """A positive duration such as ``"1d"``, ``"6h"``, ``"30min"``.

    Examples
    --------
    >>> str(parse_window("1d"))
    '1 days 00:00:00'
    """
    text = str(value).strip()
    delta = None
    if text and text[0].isdigit():
        try:
            delta = pd.Timedelta(text)
        except ValueError:
            delta = None
    if delta is None or delta <= pd.Timedelta(0):
        raise InvalidParameterError(
            f"--{what} must be a positive duration such as '1d', '6h' or '30min'. Got {value!r}."
        )
    return delta


def _workspace(workspace: Workspace | PathLike | None) -> Workspace:
    from mlpilot.monitor._prediction_log import _existing_workspace

    return _existing_workspace(workspace)


def _live_rows(
    workspace: Workspace, name: str, version: int, start: datetime | None, end: datetime,
) -> tuple[pd.DataFrame, int]:
    """The window's rows of the served version (and how many rows of other versions it had)."""
    frame = read_prediction_log(workspace, name)
    if len(frame):
        keep = (frame["timestamp"] <= pd.Timestamp(end)) & frame["source"].isin(LIVE_SOURCES)
        if start is not None:
            keep &= frame["timestamp"] >= pd.Timestamp(start)
        frame = frame[keep]
    others = int((frame["version"] != version).sum()) if len(frame) else 0
    return frame[frame["version"] == version].reset_index(drop=True) if len(frame) else frame, others


def _quality(warnings: pd.Series) -> tuple[dict[str, dict[str, int]], int]:
    """Per feature and kind, the rows flagged (``"out_of_range:x; missing_value:y"``)."""
    flagged = warnings.fillna("").astype(str)
    flagged = flagged[flagged != ""]
    counts: dict[str, dict[str, int]] = {}
    pairs = flagged.str.split(";").explode().str.strip()
    for item, n in pairs[pairs != ""].value_counts().items():
        kind, _, column = str(item).partition(":")
        counts.setdefault(column or "(row)", {})[kind] = int(n)
    return {k: counts[k] for k in sorted(counts)}, len(flagged)


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
        return measure_metric(y[known], proba[known], metric, n_boot=n_boot)
    y_num = pd.to_numeric(labelled["label"], errors="coerce").to_numpy(dtype=float)
    pred = pd.to_numeric(labelled["prediction"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(y_num) & np.isfinite(pred)
    return measure_metric(y_num[ok], pred[ok], metric, n_boot=n_boot) if ok.any() else None


def _labelled(
    workspace: Workspace, name: str, version: int, start: datetime | None, end: datetime,
    labels: pd.DataFrame | None, live: pd.DataFrame,
) -> pd.DataFrame | None:
    """The window's rows that have a label: joined from ``labels`` or read from the feedback store."""
    if labels is not None:
        missing = {"request_id", "label"} - set(labels.columns)
        if missing:
            raise DataError(f"labels must have the columns request_id and label; {sorted(missing)} missing.")
        on = ["request_id", "row"] if "row" in labels.columns else ["request_id"]
        return live.merge(labels[[*on, "label"]], on=on, how="inner")
    frame = labelled_predictions(workspace, name, since=start, until=end)  # the feedback store
    if not len(frame):
        return frame  # type: ignore[no-any-return]
    frame = frame[(frame["version"] == version) & frame["source"].isin(LIVE_SOURCES)]
    return frame.reset_index(drop=True)  # type: ignore[no-any-return]


def _timeline(
    reference: Reference, live: pd.DataFrame, labelled: pd.DataFrame | None, step: pd.Timedelta | None,
    metric: str | None, calibrator: Any, random_state: int,
) -> list[dict[str, Any]]:
    if step is None or not len(live):
        return []
    periods = live["timestamp"].dt.floor(step)
    out = []
    for start, rows in live.groupby(periods, sort=True):
        entry: dict[str, Any] = {"start": pd.Timestamp(start).isoformat(),
                                 "end": (pd.Timestamp(start) + step).isoformat(), "rows": len(rows)}
        if metric is not None and reference.is_classifier and reference.classes is not None:
            proba = _live_proba(rows, reference.classes)
            if proba is not None:
                entry["estimated"] = estimate_metric(proba, metric, calibrator=calibrator, n_simulations=100,
                                                     random_state=random_state).to_dict()
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
    ws = _workspace(workspace)
    registry = Registry(ws)
    try:
        mv = registry.get_version(f"{name}:{version}" if version is not None else name)
        live, others = _live_rows(ws, name, mv.version, start, end)
        span = f"since {start.isoformat()}" if start is not None else "in the whole log"
        if not len(live):
            extra = f" ({others} row(s) of other versions)" if others else ""
            raise EmptyDataError(
                f"No logged predictions of {mv.ref} {span} up to {end.isoformat()}{extra}. Send traffic to "
                f"mlpilot serve (or widen the window with --since) and run the monitor again."
            )
        if len(live) < min_rows:
            raise EmptyDataError(
                f"Only {len(live)} logged prediction(s) of {mv.ref} {span}: fewer than the {min_rows} a drift "
                "check needs to mean anything. Widen the window with --since, or wait for more traffic."
            )
        ref = load_reference(registry, mv, frame=reference, random_state=random_state)
    finally:
        registry.close()
    return _report(ref, live, others, start, end, step, labels, ws, alpha, min_rows, random_state)


def _report(
    ref: Reference, live: pd.DataFrame, others: int, start: datetime | None, end: datetime, step: pd.Timedelta | None,
    labels: pd.DataFrame | None, ws: Workspace, alpha: float, min_rows: int, random_state: int,
) -> MonitorReport:
    notes: list[str] = []
    if others:
        notes.append(f"{others} row(s) of other versions in the window were left out.")
    absent = [c for c in ref.roles if c not in live.columns]
    if absent:
        notes.append(f"Feature(s) never logged in the window (counted as missing): {', '.join(absent)}.")
    profile = build_profile(ref.frame, ref.roles)
    summary = summarize(live, profile)
    features = compare(profile, summary, importances=ref.importances, alpha=alpha, min_rows=min_rows,
                       random_state=random_state)
    share = drifted_importance(features, ref.importances)
    if not ref.importances:
        notes.append("No feature importances recorded for this version: every feature weighs the same.")

    live_proba = _live_proba(live, ref.classes) if ref.is_classifier and ref.classes is not None else None
    ref_values, role = _prediction_column(ref, ref.predictions, ref.proba)
    live_values, _ = _prediction_column(ref, live["prediction"].to_numpy(dtype=object), live_proba)
    prediction_profile = build_profile(pd.DataFrame({_PREDICTION: ref_values}), {_PREDICTION: role})
    prediction_live = summarize(pd.DataFrame({_PREDICTION: live_values}), prediction_profile)
    prediction = compare(prediction_profile, prediction_live, alpha=alpha, min_rows=min_rows,
                         random_state=random_state)[0]

    metric = ref.metric
    calibrator = None
    estimated: MetricEstimate | None = None
    if ref.is_classifier and ref.proba is not None and metric is not None:
        if ref.y is not None:
            calibrator = fit_calibrator(ref.y, ref.proba)
        if live_proba is not None:
            estimated = estimate_metric(live_proba, metric, calibrator=calibrator, random_state=random_state)
        else:
            notes.append("The log has no probabilities for every row: no label-free estimate.")
    elif ref.task == "regression":
        notes.append("No label-free estimate for a regression model; the real metric appears once labels arrive.")
    labelled = _labelled(ws, ref.name, ref.version, start, end, labels, live)
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
    quality, flagged = _quality(live["warnings"])
    start_at = start or pd.Timestamp(live["timestamp"].min()).to_pydatetime()
    return MonitorReport(
        name=ref.name, version=ref.version, start=start_at, end=end, rows=len(live), features=features,
        prediction_drift=prediction, performance=performance, metric=metric, drifted_importance=share,
        model_at_risk=bool(reasons), risk_reasons=reasons, quality=quality, rows_flagged=flagged,
        timeline=_timeline(ref, live, labelled, step, metric, calibrator, random_state),
        dataset_id=ref.dataset_id, reference_rows=len(ref.frame), notes=notes, profile=profile, live=summary,
        prediction_profile=prediction_profile, prediction_live=prediction_live,
    )

