"""Monitoring: the prediction log and its ground truth, drift against the training snapshot, live performance.

``mlpilot.monitor`` is both this package and a function: the package is
callable, so ``mlpilot.monitor("churn")`` is ``mlpilot.monitor.monitor("churn")``
whether or not the package was imported before.
"""

import sys
import types
from typing import Any as _Any

from mlpilot.monitor._drift import FeatureDrift
from mlpilot.monitor._feedback import (
    FeedbackResult,
    labelled_predictions,
    read_feedback,
    record_feedback,
)
from mlpilot.monitor._log_store import LOG_COLUMNS, CompactionResult, parse_keep
from mlpilot.monitor._performance import MetricEstimate
from mlpilot.monitor._prediction_log import (
    PredictionLog,
    compact_prediction_log,
    iter_prediction_log,
    predictions_dir,
    prune_prediction_log,
    read_prediction_log,
)
from mlpilot.monitor._report import MonitorReport, monitor

__all__ = [
    "LOG_COLUMNS",
    "CompactionResult",
    "FeatureDrift",
    "FeedbackResult",
    "MetricEstimate",
    "MonitorReport",
    "PredictionLog",
    "compact_prediction_log",
    "iter_prediction_log",
    "labelled_predictions",
    "monitor",
    "parse_keep",
    "predictions_dir",
    "prune_prediction_log",
    "read_feedback",
    "read_prediction_log",
    "record_feedback",
]


class _CallablePackage(types.ModuleType):
    def __call__(self, name: str, **kwargs: _Any) -> MonitorReport:
        return monitor(name, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
