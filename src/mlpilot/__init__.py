"""mlpilot: an ML engineer as software.

Data in from where it lives; evaluated models out, served, monitored and retrained.

Heavy submodules load on first use, so ``import mlpilot`` stays fast and free of
side effects.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlpilot._config import config_context, get_config, set_config
from mlpilot._version import __version__

_LAZY = {
    "train": "mlpilot.automl",
    "load": "mlpilot.automl",
    "AutoClassifier": "mlpilot.automl",
    "AutoRegressor": "mlpilot.automl",
    "TrainingRun": "mlpilot.automl",
    "Client": "mlpilot.client",
    "load_dataset": "mlpilot.data",
    "read_source": "mlpilot.data",
    "profile": "mlpilot.data",
    "Registry": "mlpilot.registry",
    "Workspace": "mlpilot.registry",
    "watch": "mlpilot.autopilot",
}
_SUBPACKAGES = ("recommend", "data", "registry", "exceptions", "monitor", "stream")

__all__ = [
    "AutoClassifier",
    "AutoRegressor",
    "Client",
    "Registry",
    "TrainingRun",
    "Workspace",
    "__version__",
    "config_context",
    "get_config",
    "load",
    "load_dataset",
    "monitor",
    "profile",
    "read_source",
    "recommend",
    "set_config",
    "stream",
    "train",
    "watch",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"mlpilot.{name}")
    raise AttributeError(f"module 'mlpilot' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
