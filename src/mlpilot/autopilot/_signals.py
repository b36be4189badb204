"""Drift and decay signals from the monitor report: the one place the watch loop reads `monitor()`.

The watch loop asks one question of monitoring: does the report say to
retrain, and why? It reads only the attributes of the interface
(`MonitorReportLike`): ``model_at_risk`` and ``to_dict()`` with the issue-12
JSON contract (``window``, ``features``, ``prediction_drift``, ``performance``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class MonitorReportLike(Protocol):
    """What the watch loop needs of `mlpilot.monitor.MonitorReport`."""

    @property
    def model_at_risk(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...


#: ``monitor(name, *, workspace=..., since=..., window=...)`` as `mlpilot.monitor.monitor` is called.
MonitorFunction = Callable[..., MonitorReportLike]


@dataclass(frozen=True)
class Signal:
    """Whether a trigger fired, why, and the numbers behind it."""

    kind: str
    fired: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def drift_signal(report: MonitorReportLike) -> Signal:
    """Fire when the report says the drift puts the model at risk (importance-weighted, FDR-controlled)."""
    data = report.to_dict()
    drifted = [f for f in data.get("features", []) if f.get("drift")]
    names = ", ".join(str(f.get("name")) for f in drifted[:5]) or "none"
    window = data.get("window", {})
    evidence = {"window": window, "drifted_features": drifted, "prediction_drift": data.get("prediction_drift"),
                "model_at_risk": bool(report.model_at_risk)}
    if report.model_at_risk:
        return Signal("drift", True, f"drift puts the model at risk ({len(drifted)} drifted feature(s): {names}; "
                                     f"{window.get('rows', '?')} rows in the window)", evidence)
    return Signal("drift", False, f"no drift that puts the model at risk ({len(drifted)} drifted feature(s): {names})",
                  evidence)


def decay_signal(report: MonitorReportLike, *, tolerance: float = 0.0) -> Signal:
    """Fire when the live metric (real when labels arrived, else estimated) is below the holdout's interval.

    ``performance`` holds ``holdout`` (a number or ``{"value", "interval"}``),
    ``actual`` (``{"value", "interval"}`` or None) and ``estimated`` (a number or
    ``{"value", ...}``); the metric is taken as greater-is-better unless the
    performance block says ``greater_is_better: false``.
    """
    performance = report.to_dict().get("performance") or {}
    holdout = _value(performance.get("holdout"))
    low = _interval(performance.get("holdout"))
    live_kind, live = "actual", _value(performance.get("actual"))
    if live is None:
        live_kind, live = "estimated", _value(performance.get("estimated"))
    evidence = {"performance": performance, "live": live, "live_kind": live_kind, "holdout": holdout}
    if live is None or holdout is None:
        return Signal("decay", False, "no live metric yet (no labels and no estimate in the window)", evidence)
    # the monitor states the direction in each estimate; a plain performance block may state it once
    stated = [e.get("greater_is_better") for e in performance.values() if isinstance(e, dict)]
    greater = performance.get("greater_is_better", stated[0] if stated else True) is not False
    floor = (low[0] if greater else low[1]) if low is not None else holdout
    decayed = live < floor - tolerance if greater else live > floor + tolerance
    word = "below" if greater else "above"
    if decayed:
        return Signal("decay", True, f"the {live_kind} live metric {live:.4f} is {word} the holdout's "
                                     f"{'interval bound' if low else 'score'} {floor:.4f}", evidence)
    return Signal("decay", False, f"the {live_kind} live metric {live:.4f} is within the holdout's range "
                                  f"(bound {floor:.4f})", evidence)


def monitor_signals(name: str, kinds: set[str], *, workspace: Any, window: str | None = None,
                    monitor: MonitorFunction | None = None) -> list[Signal]:
    """Run the monitor once and turn its report into the ``kinds`` ("drift", "decay") asked for."""
    wanted = kinds & {"drift", "decay"}
    if not wanted:
        return []
    if monitor is None:
        from mlpilot.monitor import monitor as run_monitor

        monitor = run_monitor
    kwargs: dict[str, Any] = {"workspace": workspace}
    if window is not None:
        kwargs["window"] = window
    report = monitor(name, **kwargs)
    out = []
    if "drift" in wanted:
        out.append(drift_signal(report))
    if "decay" in wanted:
        out.append(decay_signal(report))
    return out


def _value(entry: Any) -> float | None:
    if isinstance(entry, dict):
        entry = entry.get("value")
    if isinstance(entry, int | float) and not isinstance(entry, bool):
        return float(entry)
    return None


def _interval(entry: Any) -> tuple[float, float] | None:
    if isinstance(entry, dict):
        interval = entry.get("interval")
        if isinstance(interval, list | tuple) and len(interval) == 2 and None not in interval:
            return float(interval[0]), float(interval[1])
    return None
