"""Deployment settings of the server, read from ``MLPILOT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServeSettings(BaseSettings):
    """Settings of `create_app`; each field reads ``MLPILOT_<FIELD>`` from the environment.

    Examples
    --------
    >>> ServeSettings(home="/tmp/ws", max_rows=100).max_rows
    100
    """

    model_config = SettingsConfigDict(env_prefix="MLPILOT_", extra="ignore", frozen=True)

    home: Path | None = Field(default=None, description="Workspace directory (default ./mlpilot-workspace).")
    db_url: str | None = Field(default=None, description="Registry database URL (default: SQLite in the workspace).")
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    api_key: SecretStr | None = Field(default=None, description="When set, every non-health request needs 'Authorization: Bearer <key>'.")
    max_body_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    max_rows: Annotated[int, Field(ge=1)] = 10_000
    max_csv_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024 * 1024
    csv_chunk_rows: Annotated[int, Field(ge=1)] = 50_000
    poll_interval: Annotated[float, Field(gt=0)] = 1.0
    max_loaded_versions: Annotated[int, Field(ge=1)] = 16
    preload: bool = True
    prediction_log: bool = True
    log_queue_size: Annotated[int, Field(ge=1)] = 10_000
    log_flush_interval: Annotated[float, Field(gt=0)] = 0.2
    log_keep: str | None = Field(default=None, description="Delete prediction log days older than this ('30d').")
    max_feedback_items: Annotated[int, Field(ge=1)] = 100_000
    ui: bool = True
    batching: bool = Field(default=True, description="Score concurrent small requests together.")
    max_batch_rows: Annotated[int, Field(ge=1)] = 1024
    batch_workers: Annotated[int, Field(ge=1, le=64)] = 2
    fast_path: bool = Field(default=True, description="Compile each model for small requests, verified against it at load.")
    tune_gc: bool = Field(default=False, description="Freeze the loaded models out of the garbage collector's sight and "
                          "collect young objects less often (what `mlpilot serve` does: the process is the server's).")

    @field_validator("log_keep")
    @classmethod
    def _check_keep(cls, value: str | None) -> str | None:
        if value is not None:
            from mlpilot.monitor import parse_keep

            parse_keep(value)
        return value
