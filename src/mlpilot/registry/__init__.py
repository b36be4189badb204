"""Workspace and registry: datasets, runs, model versions, aliases and events."""

from mlpilot._workspace import Workspace
from mlpilot.registry._ref import ModelRef
from mlpilot.registry._store import (
    DatasetRecord,
    ModelSummary,
    ModelVersion,
    Registry,
    RunRecord,
    environment,
    safe_url,
)

__all__ = [
    "DatasetRecord",
    "ModelRef",
    "ModelSummary",
    "ModelVersion",
    "Registry",
    "RunRecord",
    "Workspace",
    "environment",
    "safe_url",
]
