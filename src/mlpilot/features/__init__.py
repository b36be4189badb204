"""Preprocessing fitted per model family, and checks on features before training."""

from mlpilot.features._dates import as_datetime
from mlpilot.features._leakage import find_leaks
from mlpilot.features._preprocess import TabularPreprocessor, column_roles

__all__ = ["TabularPreprocessor", "as_datetime", "column_roles", "find_leaks"]
