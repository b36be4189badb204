"""Clear errors before any work: a missing extra, bad settings, an unknown model, an unreachable broker."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.exceptions import (
    InvalidParameterError,
    MissingDependencyError,
    ModelNotFoundError,
    SourceConnectionError,
)
from mlpilot.registry import Workspace
from mlpilot.stream import KafkaTransport, RedisTransport, open_consumer, stream_config
from tests.stream.conftest import free_port


@pytest.mark.parametrize(("module", "transport"), [("confluent_kafka", KafkaTransport), ("redis", RedisTransport)])
def test_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch, module: str, transport: type) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an environment without the extra sees
    with pytest.raises(MissingDependencyError, match=r"pip install 'mlpilot\[stream\]'"):
        transport("127.0.0.1:1", "in", "out", "in.dlq", "g")


def test_settings_are_checked_before_connecting() -> None:
    with pytest.raises(InvalidParameterError, match="batch"):
        stream_config(name="churn", brokers="h:1", input="in", output="out", batch=0)
    with pytest.raises(InvalidParameterError, match="three different topics"):
        stream_config(name="churn", brokers="h:1", input="in", output="in")
    with pytest.raises(InvalidParameterError, match="transport"):
        stream_config(name="churn", brokers="h:1", input="in", output="out", transport="nats")
    with pytest.raises(InvalidParameterError, match="pipeline"):
        stream_config(name="churn", brokers="h:1", input="in", output="out", pipeline=3)


def test_unknown_model_fails_before_the_broker(stream_workspace: Workspace) -> None:
    config = stream_config(name="nope", brokers="127.0.0.1:1", input="in", output="out")
    with pytest.raises(ModelNotFoundError):
        open_consumer(config, stream_workspace)


def test_unreachable_redis_says_so() -> None:
    with pytest.raises(SourceConnectionError, match="cannot be reached"):
        RedisTransport(f"127.0.0.1:{free_port()}", "in", "out", "in.dlq", "g")


def test_cli_errors_exit_2_with_the_message(stream_workspace: Workspace) -> None:
    runner = CliRunner()
    base = ["stream", "churn", "--brokers", "127.0.0.1:1", "--input", "in", "--output", "out",
            "-w", str(stream_workspace.root)]
    result = runner.invoke(app, [*base, "--option", "no-equals-sign"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output
    result = runner.invoke(app, [*base, "--transport", "redis", "--brokers", "localhost:abc"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output
