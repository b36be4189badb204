"""Monitoring: the prediction log (and, later, drift checks against the training snapshot)."""

from mlpilot.monitor._prediction_log import (
    LOG_COLUMNS,
    PredictionLog,
    predictions_dir,
    read_prediction_log,
)

__all__ = ["LOG_COLUMNS", "PredictionLog", "predictions_dir", "read_prediction_log"]
