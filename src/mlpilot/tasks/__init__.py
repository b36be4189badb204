"""Task detection and metrics: what kind of problem a target poses and how to score it."""

from mlpilot.tasks._metrics import METRICS, Metric, get_metric, metric_names
from mlpilot.tasks._task import (
    MAX_JUNK_SHARE,
    TASKS,
    NonNumericValues,
    TargetEncoding,
    default_metric,
    detect_task,
    drop_non_numeric_target,
    encode_target,
    find_non_numeric,
)

__all__ = [
    "MAX_JUNK_SHARE",
    "METRICS",
    "TASKS",
    "Metric",
    "NonNumericValues",
    "TargetEncoding",
    "default_metric",
    "detect_task",
    "drop_non_numeric_target",
    "encode_target",
    "find_non_numeric",
    "get_metric",
    "metric_names",
]
