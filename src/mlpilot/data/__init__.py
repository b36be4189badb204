"""The data stage: sources, snapshots, schema, validation and profile.

Names load on first use: ``import mlpilot.data._sql`` (the registry's, on every command) runs this
file, and the profile pulls scikit-learn and scipy, seconds of start-up a command may not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlpilot.data._dataset import Dataset, load_dataset, read_source, snapshot_source, to_pandas
    from mlpilot.data._leakage import LeakScore, find_leaks, leak_suspects, leakage_scores
    from mlpilot.data._profile import ColumnProfile, Profile, profile, target_task
    from mlpilot.data._report import render_profile_html
    from mlpilot.data._schema import (
        ColumnSchema,
        Problem,
        Schema,
        ValidationResult,
        check_target,
        infer_schema,
        validate,
    )
    from mlpilot.data._snapshot import Snapshot, content_hash, read_snapshot
    from mlpilot.data._sources import SourceSpec, describe_source, read_table

_LAZY = {
    "ColumnProfile": "mlpilot.data._profile",
    "ColumnSchema": "mlpilot.data._schema",
    "Dataset": "mlpilot.data._dataset",
    "LeakScore": "mlpilot.data._leakage",
    "Problem": "mlpilot.data._schema",
    "Profile": "mlpilot.data._profile",
    "Schema": "mlpilot.data._schema",
    "Snapshot": "mlpilot.data._snapshot",
    "SourceSpec": "mlpilot.data._sources",
    "ValidationResult": "mlpilot.data._schema",
    "check_target": "mlpilot.data._schema",
    "content_hash": "mlpilot.data._snapshot",
    "describe_source": "mlpilot.data._sources",
    "find_leaks": "mlpilot.data._leakage",
    "infer_schema": "mlpilot.data._schema",
    "leak_suspects": "mlpilot.data._leakage",
    "leakage_scores": "mlpilot.data._leakage",
    "load_dataset": "mlpilot.data._dataset",
    "profile": "mlpilot.data._profile",
    "read_snapshot": "mlpilot.data._snapshot",
    "read_source": "mlpilot.data._dataset",
    "read_table": "mlpilot.data._sources",
    "render_profile_html": "mlpilot.data._report",
    "snapshot_source": "mlpilot.data._dataset",
    "target_task": "mlpilot.data._profile",
    "to_pandas": "mlpilot.data._dataset",
    "validate": "mlpilot.data._schema",
}

__all__ = [
    "ColumnProfile",
    "ColumnSchema",
    "Dataset",
    "LeakScore",
    "Problem",
    "Profile",
    "Schema",
    "Snapshot",
    "SourceSpec",
    "ValidationResult",
    "check_target",
    "content_hash",
    "describe_source",
    "find_leaks",
    "infer_schema",
    "leak_suspects",
    "leakage_scores",
    "load_dataset",
    "profile",
    "read_snapshot",
    "read_source",
    "read_table",
    "render_profile_html",
    "snapshot_source",
    "target_task",
    "to_pandas",
    "validate",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mlpilot.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # the next look-up finds it here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
