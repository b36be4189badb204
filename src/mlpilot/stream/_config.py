"""The stream consumer's settings, checked before any broker is contacted."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlpilot._config import build_settings
from mlpilot.exceptions import InvalidParameterError

Name = Annotated[str, Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._:\-]+$")]


class StreamConfig(BaseModel):
    """What `mlpilot stream` consumes, where it writes, and how it batches.

    ``dlq`` defaults to ``INPUT.dlq`` and ``group`` to ``mlpilot-stream-NAME``.
    ``options`` are client settings passed through (librdkafka keys for Kafka).
    ``claim_idle_ms`` (Redis) is how long an entry stays with a dead consumer
    before another member of the group takes it over. ``pipeline`` 2 (the
    default) scores each batch in a second thread while the one before is
    sent; 1 does everything in the consuming thread.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1)]
    brokers: Annotated[str, Field(min_length=1)]
    input: Name
    output: Name
    group: Name | None = None
    dlq: Name | None = None
    transport: Literal["kafka", "redis"] = "kafka"
    batch: Annotated[int, Field(ge=1, le=100_000)] = 500
    max_wait_ms: Annotated[float, Field(ge=0, le=60_000)] = 20
    metrics_port: Annotated[int, Field(ge=0, le=65_535)] | None = None
    metrics_host: str = "127.0.0.1"
    max_message_bytes: Annotated[int, Field(ge=16)] = 1_048_576
    max_rows_per_message: Annotated[int, Field(ge=1)] = 10_000
    poll_interval: Annotated[float, Field(gt=0)] = 1.0
    claim_idle_ms: Annotated[int, Field(ge=1)] = 30_000
    pipeline: Literal[1, 2] = 2
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def dead_letter_topic(self) -> str:
        return self.dlq or f"{self.input}.dlq"

    @property
    def group_id(self) -> str:
        return self.group or f"mlpilot-stream-{self.name}"


def stream_config(**values: Any) -> StreamConfig:
    """A `StreamConfig`, or `InvalidParameterError` naming each bad setting."""
    config = build_settings(StreamConfig, values, "stream settings")
    if config.output in (config.input, config.dead_letter_topic) or config.input == config.dead_letter_topic:
        raise InvalidParameterError(
            f"--input ({config.input}), --output ({config.output}) and --dlq ({config.dead_letter_topic}) "
            "must be three different topics; outputs written to the input would be scored again."
        )
    return config


__all__ = ["StreamConfig", "stream_config"]
