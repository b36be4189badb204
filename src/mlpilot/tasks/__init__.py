"""Task detection and metrics: what kind of problem a target poses and how to score it."""

from mlpilot.tasks._metrics import METRICS, Metric, get_metric, metric_names
from mlpilot.tasks._task import TASKS, TargetEncoding, default_metric, detect_task, encode_target

__all__ = [
    "METRICS",
    "TASKS",
    "Metric",
    "TargetEncoding",
    "default_metric",
    "detect_task",
    "encode_target",
    "get_metric",
    "metric_names",
]
