"""Prometheus metrics in the text exposition format, without a client library.

Counters and histograms live in plain dicts guarded by one lock; an update is a
few dict operations, cheap enough for every request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from mlpilot._prometheus import Labels, family, format_labels, histogram, new_histogram, observe


class Metrics:
    """The server's metrics: request counts and latencies, predictions, model loads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[Labels, int] = {}
        self._latency: dict[Labels, list[float]] = {}  # bucket counts..., sum, count
        self._predictions: dict[Labels, int] = {}
        self._load_seconds: dict[Labels, float] = {}
        self._input_flags: dict[Labels, int] = {}
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._monitor: dict[str, dict[str, dict[Labels, float]]] = {}

    def observe_request(self, model: str, route: str, method: str, status: int, seconds: float) -> None:
        key: Labels = (("model", model), ("route", route), ("method", method), ("status", str(status)))
        lat_key: Labels = (("model", model), ("route", route))
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            hist = self._latency.get(lat_key)
            if hist is None:
                hist = self._latency[lat_key] = new_histogram()
            observe(hist, seconds)

    def count_predictions(self, model: str, version: int, n: int) -> None:
        key: Labels = (("model", model), ("version", str(version)))
        with self._lock:
            self._predictions[key] = self._predictions.get(key, 0) + n

    def count_input_flags(self, model: str, counts: dict[str, int]) -> None:
        """Add the (field, row) pairs flagged per kind (``out_of_range``, ``empty_row``, ...)."""
        with self._lock:
            for kind, n in counts.items():
                key: Labels = (("model", model), ("kind", kind))
                self._input_flags[key] = self._input_flags.get(key, 0) + n

    def record_load(self, model: str, version: int, seconds: float) -> None:
        with self._lock:
            self._load_seconds[(("model", model), ("version", str(version)))] = seconds

    def set_monitor(self, report: Mapping[str, Any]) -> None:
        """Publish a monitor report (`MonitorReport.to_dict`): drift per feature, estimated and real metric.

        The gauges show the latest report computed by this server for each model.
        """
        model = str(report["model"]["name"])
        families: dict[str, dict[Labels, float]] = {name: {} for name in _MONITOR_FAMILIES}
        for entry in report["features"]:
            key: Labels = (("model", model), ("feature", str(entry["name"])), ("aspect", str(entry["aspect"])))
            if entry["effect"] is not None:
                families["mlpilot_drift_effect"][key] = float(entry["effect"])
            families["mlpilot_drift_detected"][key] = float(bool(entry["drift"]))
        families["mlpilot_model_at_risk"][(("model", model),)] = float(bool(report["model_at_risk"]))
        performance = report["performance"]
        for kind in ("estimated", "actual", "holdout"):
            value = performance.get(kind)
            if value is not None and value.get("value") is not None:
                labels: Labels = (("model", model), ("metric", str(value["metric"])))
                families[f"mlpilot_metric_{kind}"][labels] = float(value["value"])
        with self._lock:
            self._monitor[model] = families

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Register a value read at scrape time (queue sizes, drop counters)."""
        self._gauges[name] = (help_text, read)

    def render(self) -> str:
        """The metrics in Prometheus text format 0.0.4."""
        with self._lock:
            requests = dict(self._requests)
            latency = {k: list(v) for k, v in self._latency.items()}
            predictions = dict(self._predictions)
            loads = dict(self._load_seconds)
            flags = dict(self._input_flags)
            monitored = {m: {k: dict(v) for k, v in f.items()} for m, f in self._monitor.items()}
        lines: list[str] = []
        lines += family("mlpilot_http_requests_total", "counter", "HTTP requests by model, route and status.",
                         ((format_labels(k), v) for k, v in sorted(requests.items())))
        lines += histogram("mlpilot_http_request_duration_seconds", "Request latency.", sorted(latency.items()))
        lines += family("mlpilot_predictions_total", "counter", "Rows predicted by model and version.",
                         ((format_labels(k), v) for k, v in sorted(predictions.items())))
        lines += family("mlpilot_input_flags_total", "counter",
                         "Input values unlike the training data, by model and kind (one per field and row; "
                         "empty_row: rows refused with no usable value).",
                         ((format_labels(k), v) for k, v in sorted(flags.items())))
        lines += family("mlpilot_model_load_seconds", "gauge", "Seconds the last load of a version took.",
                         ((format_labels(k), v) for k, v in sorted(loads.items())))
        for name, help_text in _MONITOR_FAMILIES.items():
            samples = [(k, v) for m in sorted(monitored) for k, v in sorted(monitored[m][name].items())]
            if samples:
                lines += family(name, "gauge", help_text, ((format_labels(k), v) for k, v in samples))
        for name, (help_text, read) in sorted(self._gauges.items()):
            try:
                value = float(read())
            except Exception:
                continue
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += family(name, kind, help_text, [("", value)])
        return "\n".join(lines) + "\n"


_MONITOR_FAMILIES = {
    "mlpilot_drift_effect": "Drift effect per feature and aspect in the last monitor report "
                            "(wasserstein: reference sds; tvd: share moved; missing_rate: live minus reference).",
    "mlpilot_drift_detected": "1 if the feature's aspect drifted in the last monitor report.",
    "mlpilot_model_at_risk": "1 if the last monitor report put the model at risk.",
    "mlpilot_metric_estimated": "Label-free estimate of the model's metric on the last monitored window.",
    "mlpilot_metric_actual": "The model's metric measured on the labelled rows of the last monitored window.",
    "mlpilot_metric_holdout": "The model's holdout metric at training time.",
}
