"""Preprocessing fitted per model family, and checks on features before training."""

from mlpilot.features._leakage import find_leaks
from mlpilot.features._preprocess import TabularPreprocessor, column_roles

__all__ = ["TabularPreprocessor", "column_roles", "find_leaks"]
