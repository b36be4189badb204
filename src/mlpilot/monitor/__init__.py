"""Monitoring: the prediction log, drift against the training snapshot, live performance.

``mlpilot.monitor`` is both this package and a function: the package is
callable, so ``mlpilot.monitor("churn")`` is ``mlpilot.monitor.monitor("churn")``
whether or not the package was imported before.
"""

import sys
import types
from typing import Any as _Any

from mlpilot.monitor._drift import FeatureDrift
from mlpilot.monitor._performance import MetricEstimate
from mlpilot.monitor._prediction_log import (
    LOG_COLUMNS,
    PredictionLog,
    predictions_dir,
    read_prediction_log,
)
from mlpilot.monitor._report import MonitorReport, monitor

__all__ = [
    "LOG_COLUMNS",
    "FeatureDrift",
    "MetricEstimate",
    "MonitorReport",
    "PredictionLog",
    "monitor",
    "predictions_dir",
    "read_prediction_log",
]


class _CallablePackage(types.ModuleType):
    def __call__(self, name: str, **kwargs: _Any) -> MonitorReport:
        return monitor(name, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
