"""``mlpilot stream``: score a Kafka topic or a Redis stream with a model's champion."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from mlpilot.cli._common import WorkspaceOption, console, open_workspace
from mlpilot.exceptions import InvalidParameterError


def _options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidParameterError(f"--option takes KEY=VALUE (such as session.timeout.ms=6000); got {pair!r}.")
        out[key.strip()] = value
    return out


def stream_command(
    name: Annotated[str, typer.Argument(help="Registered model; its champion scores (hot-swapped when it moves).")],
    brokers: Annotated[str, typer.Option("--brokers", help="HOST:PORT of the Kafka bootstrap broker or Redis server.")],
    input: Annotated[str, typer.Option("--input", help="Topic (or Redis stream) to consume.")],
    output: Annotated[str, typer.Option("--output", help="Topic (or Redis stream) for predictions.")],
    group: Annotated[str | None, typer.Option("--group", help="Consumer group \\[default: mlpilot-stream-NAME].",
                                              show_default=False)] = None,
    batch: Annotated[int, typer.Option("--batch", help="Rows scored together at most.")] = 500,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="Wait for more messages after a batch's first.")] = 20,
    transport: Annotated[str, typer.Option("--transport", help="kafka or redis.")] = "kafka",
    dlq: Annotated[str | None, typer.Option("--dlq", help="Dead-letter topic \\[default: INPUT.dlq].",
                                            show_default=False)] = None,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics here.")] = None,
    max_message_bytes: Annotated[int, typer.Option("--max-message-bytes", help="Larger messages are dead-lettered.")] = 1_048_576,
    pipeline: Annotated[int, typer.Option("--pipeline", help="1: score in the consuming thread; 2: score the "
                                          "next batch in a second thread while this one is sent.")] = 2,
    option: Annotated[list[str] | None, typer.Option("--option", help="Kafka client setting KEY=VALUE (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final counts as one JSON object.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Score messages from --input and write one prediction per row to --output, until SIGTERM/SIGINT.

    Each message is a JSON object of feature values, or {"rows": [...]}. Bad messages go to the
    dead-letter topic with the error and the original payload. At-least-once: inputs are committed
    only after the broker confirmed their outputs.
    """
    from mlpilot.stream import open_consumer, stream_config

    config = stream_config(name=name, brokers=brokers, input=input, output=output, group=group, batch=batch,
                           max_wait_ms=max_wait_ms, transport=transport, dlq=dlq, metrics_port=metrics_port,
                           max_message_bytes=max_message_bytes, pipeline=pipeline, options=_options(option or []))
    consumer = open_consumer(config, open_workspace(workspace))
    if not as_json:
        where = f", metrics on http://127.0.0.1:{metrics_port}/metrics" if metrics_port is not None else ""
        console.print(f"Streaming {config.input} → {config.output} with {name} ({config.transport}, "
                      f"group {config.group_id}, dead letters to {config.dead_letter_topic}{where}). "
                      "Stop with Ctrl-C.", highlight=False)
    stats = consumer.run(freeze_gc=True)  # this process is the consumer's alone
    summary = {"model": name, "consumed": stats.consumed, "produced": stats.produced,
               "dead_lettered": stats.dead_lettered, "batches": stats.batches, "swaps": stats.swaps,
               "versions": list(stats.versions)}
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"Stopped: {stats.consumed} messages consumed, {stats.produced} predictions produced, "
                      f"{stats.dead_lettered} dead-lettered, versions {list(stats.versions)}.", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("stream")(stream_command)
