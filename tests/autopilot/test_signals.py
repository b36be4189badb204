"""Drift and decay signals read through the monitor interface (a report object with its attributes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from mlpilot.autopilot import MonitorReportLike, decay_signal, drift_signal
from mlpilot.autopilot._signals import monitor_signals


@dataclass
class _Report:
    """What `mlpilot.monitor.monitor` returns, as far as the watch loop reads it."""

    model_at_risk: bool
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.data


def _report(at_risk: bool, **performance: Any) -> _Report:
    features = [{"name": "x", "role": "numeric", "drift": True, "effect": 0.4, "interval": [0.3, 0.5],
                 "p_value": 0.001, "threshold": 0.1},
                {"name": "c", "role": "categorical", "drift": False, "effect": 0.01, "interval": [0.0, 0.02],
                 "p_value": 0.6, "threshold": 0.1}]
    return _Report(at_risk, {"window": {"start": "2013-03-01", "end": "2013-03-31", "rows": 5000},
                             "features": features, "prediction_drift": {"drift": at_risk},
                             "performance": performance, "model_at_risk": at_risk})


def test_drift_fires_only_when_the_model_is_at_risk() -> None:
    report: MonitorReportLike = _report(True)
    signal = drift_signal(report)
    assert signal.fired and "1 drifted feature(s): x" in signal.reason and "5000 rows" in signal.reason
    assert [f["name"] for f in signal.evidence["drifted_features"]] == ["x"]
    assert not drift_signal(_report(False)).fired


@pytest.mark.parametrize(
    ("performance", "fired", "kind"),
    [({"holdout": {"value": 0.80, "interval": [0.78, 0.82]}, "actual": {"value": 0.70, "interval": [0.68, 0.72]}},
      True, "actual"),
     ({"holdout": {"value": 0.80, "interval": [0.78, 0.82]}, "actual": {"value": 0.79, "interval": [0.77, 0.81]}},
      False, "actual"),
     ({"holdout": 0.80, "estimated": 0.75, "actual": None}, True, "estimated"),
     ({"holdout": {"value": 2.0, "interval": [1.8, 2.2]}, "actual": {"value": 2.5}, "greater_is_better": False},
      True, "actual")],
)
def test_decay_compares_the_live_metric_with_the_holdout(performance: dict, fired: bool, kind: str) -> None:
    signal = decay_signal(_report(False, **performance))
    assert signal.fired is fired and signal.evidence["live_kind"] == kind


def test_no_live_metric_is_no_decay_and_the_monitor_is_called_once() -> None:
    assert not decay_signal(_report(False, holdout=0.8)).fired
    calls: list[tuple[str, dict]] = []

    def monitor(name: str, **kwargs: Any) -> _Report:
        calls.append((name, kwargs))
        return _report(True, holdout=0.8, estimated=0.6)

    signals = monitor_signals("m", {"drift", "decay", "new-data"}, workspace="ws", window="1d", monitor=monitor)
    assert [s.kind for s in signals] == ["drift", "decay"] and all(s.fired for s in signals)
    assert calls == [("m", {"workspace": "ws", "window": "1d"})]
    assert monitor_signals("m", {"schedule"}, workspace="ws", monitor=monitor) == []
