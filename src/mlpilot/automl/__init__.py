"""Orchestration: `train`, `load`, `TrainingRun` and the scikit-learn estimators."""

from mlpilot.automl._config import TrainConfig, parse_duration
from mlpilot.automl._datasets import load_and_record, record_snapshot
from mlpilot.automl._estimators import AutoClassifier, AutoRegressor
from mlpilot.automl._run import TrainingRun, load, train

__all__ = [
    "AutoClassifier",
    "AutoRegressor",
    "TrainConfig",
    "TrainingRun",
    "load",
    "load_and_record",
    "parse_duration",
    "record_snapshot",
    "train",
]
