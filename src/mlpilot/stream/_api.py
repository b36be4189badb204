"""``mlpilot.stream(...)``: score a broker topic with a registered model until stopped."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from typing import Any, Literal

from mlpilot._types import PathLike
from mlpilot._workspace import Workspace
from mlpilot.stream._config import stream_config
from mlpilot.stream._consumer import StreamStats, open_consumer


def stream(
    name: str,
    *,
    brokers: str,
    input: str,
    output: str,
    group: str | None = None,
    batch: int = 500,
    max_wait_ms: float = 20,
    transport: Literal["kafka", "redis"] = "kafka",
    dlq: str | None = None,
    metrics_port: int | None = None,
    workspace: Workspace | PathLike | None = None,
    options: Mapping[str, Any] | None = None,
    **settings: Any,
) -> StreamStats:
    """Score messages from ``input`` with model ``name``'s champion and write predictions to ``output``.

    Runs until SIGTERM or SIGINT (then finishes the batch in hand, acknowledges
    it and returns). Delivery is at-least-once: inputs are acknowledged only
    after the broker confirmed their outputs and dead letters.

    Parameters
    ----------
    name : str
        A registered tabular model; its ``champion`` (else its latest version) scores, swapped when the alias moves.
    brokers : str
        ``HOST:PORT`` of a Kafka bootstrap broker or of a Redis server.
    input, output : str
        Topics (Kafka) or streams (Redis) to read and write.
    group : str, optional
        Consumer group (default ``mlpilot-stream-NAME``): processes in one group share the input.
    batch : int
        Rows scored together at most.
    max_wait_ms : float
        How long a batch waits for more messages after its first one.
    transport : {"kafka", "redis"}
    dlq : str, optional
        Where bad messages go (default ``INPUT.dlq``), with the error and the original payload.
    metrics_port : int, optional
        Serve Prometheus metrics at ``http://127.0.0.1:PORT/metrics``.
    workspace : Workspace or path, optional
        Default: ``MLPILOT_HOME`` or ``./mlpilot-workspace``.
    options : mapping, optional
        Client settings passed to librdkafka (``session.timeout.ms``, ``security.protocol``, ...).
    **settings
        Other `StreamConfig` fields (``max_message_bytes``, ``poll_interval``, ``claim_idle_ms``,
        ``pipeline``: 2, the default, scores each batch in a second thread while the one before is sent).

    Returns
    -------
    StreamStats
        Counts of what was consumed, produced and dead-lettered, and the versions that scored.
    """
    config = stream_config(name=name, brokers=brokers, input=input, output=output, group=group, batch=batch,
                           max_wait_ms=max_wait_ms, transport=transport, dlq=dlq, metrics_port=metrics_port,
                           options=dict(options or {}), **settings)
    ws = workspace if isinstance(workspace, Workspace) else Workspace.from_env(workspace)
    return open_consumer(config, ws).run()


class _CallablePackage(types.ModuleType):
    """A package that, called, runs `stream`: ``mlpilot.stream`` is both the package and the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> StreamStats:
        return stream(*args, **kwargs)


def callable_package(name: str) -> None:
    """Make the package ``name`` callable as `stream`."""
    sys.modules[name].__class__ = _CallablePackage


__all__ = ["callable_package", "stream"]
