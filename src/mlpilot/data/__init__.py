"""The data stage: sources, snapshots, schema, validation and profile."""

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
