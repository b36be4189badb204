"""Streaming inference: score a Kafka topic or a Redis stream with a registered model, at-least-once.

`stream` (also ``mlpilot.stream(...)``) consumes JSON messages (one row each,
or ``{"rows": [...]}``), scores them in micro-batches through `mlpilot.runtime`
(the API's validation and scoring), produces one output per row carrying the
input's ``key`` and a ``request_id``, sends bad messages to a dead-letter topic,
logs every scored row to the prediction log (``source="stream"``), and commits
only after the broker confirmed the outputs. The broker clients
(``confluent-kafka``, ``redis``) come with ``pip install 'mlpilot[stream]'`` and
are imported only here, when a transport is opened.
"""

from __future__ import annotations

from mlpilot.stream._api import callable_package as _callable_package
from mlpilot.stream._api import stream
from mlpilot.stream._config import StreamConfig, stream_config
from mlpilot.stream._consumer import StreamConsumer, StreamStats, make_transport, open_consumer
from mlpilot.stream._kafka import KafkaTransport
from mlpilot.stream._metrics import StreamMetrics
from mlpilot.stream._redis import RedisTransport
from mlpilot.stream._scoring import Limits, score_messages
from mlpilot.stream._transport import Message, Record, Transport

_callable_package(__name__)  # ``mlpilot.stream(...)`` calls `stream`

__all__ = [
    "KafkaTransport",
    "Limits",
    "Message",
    "Record",
    "RedisTransport",
    "StreamConfig",
    "StreamConsumer",
    "StreamMetrics",
    "StreamStats",
    "Transport",
    "make_transport",
    "open_consumer",
    "score_messages",
    "stream",
    "stream_config",
]
