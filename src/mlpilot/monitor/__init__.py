"""Monitoring: the prediction log and its ground truth (and drift checks against the training snapshot)."""

from mlpilot.monitor._feedback import (
    FeedbackResult,
    labelled_predictions,
    read_feedback,
    record_feedback,
)
from mlpilot.monitor._log_store import LOG_COLUMNS, CompactionResult, parse_keep
from mlpilot.monitor._prediction_log import (
    PredictionLog,
    compact_prediction_log,
    iter_prediction_log,
    predictions_dir,
    prune_prediction_log,
    read_prediction_log,
)

__all__ = [
    "LOG_COLUMNS",
    "CompactionResult",
    "FeedbackResult",
    "PredictionLog",
    "compact_prediction_log",
    "iter_prediction_log",
    "labelled_predictions",
    "parse_keep",
    "predictions_dir",
    "prune_prediction_log",
    "read_feedback",
    "read_prediction_log",
    "record_feedback",
]
