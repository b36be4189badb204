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
from mlpilot.tasks._threshold import (
    THRESHOLD_METRICS,
    ThresholdChoice,
    ThresholdRule,
    choose_threshold,
    holdout_summary,
    labels_at,
)

__all__ = [
    "MAX_JUNK_SHARE",
    "METRICS",
    "TASKS",
    "THRESHOLD_METRICS",
    "Metric",
    "NonNumericValues",
    "TargetEncoding",
    "ThresholdChoice",
    "ThresholdRule",
    "choose_threshold",
    "default_metric",
    "detect_task",
    "drop_non_numeric_target",
    "encode_target",
    "find_non_numeric",
    "get_metric",
    "holdout_summary",
    "labels_at",
    "metric_names",
]
