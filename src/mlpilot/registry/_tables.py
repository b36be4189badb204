"""SQLAlchemy Core tables of the registry."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("n_rows", Integer, nullable=False),
    Column("n_columns", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("schema", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("config", JSON, nullable=False),
    Column("dataset_id", String(64), ForeignKey("datasets.id"), nullable=True),
    Column("metrics", JSON, nullable=True),
    Column("timings", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("dataset_id", String(64), ForeignKey("datasets.id"), nullable=True),
    Column("artifact_path", Text, nullable=False),
    Column("artifact_format", String(16), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("files", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("headline_metric", String(64), nullable=True),
    Column("headline_value", Float, nullable=True),
    Column("schema", JSON, nullable=True),
    Column("environment", JSON, nullable=False),
    Column("info", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("name", "version", name="uq_model_version"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False, index=True),
    Column("name", String(128), nullable=True, index=True),
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: One row per watched model: the watcher's state (so a restarted watcher resumes)
#: and its lease (``owner`` until ``expires_at``), so two watchers never retrain one model at once.
watchers = Table(
    "watchers",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("owner", String(128), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
