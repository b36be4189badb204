"""``mlpilot export``: a registered version as an MLflow model, an ONNX graph or a self-contained bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlpilot.cli._common import JsonOption, WorkspaceOption, console, open_registry, print_json


def export_command(
    ref: Annotated[str, typer.Argument(help="NAME (its champion), NAME:VERSION or NAME@ALIAS.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="mlflow, onnx or bundle (see docs/export.md).")],
    out: Annotated[Path, typer.Option("--output", "-o", help="Directory to create.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty output directory.")] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export a version to DIR, written whole or not at all: an MLflow pyfunc model, ONNX, or a bundle."""
    from mlpilot.export import export_model

    registry = open_registry(workspace)
    try:
        result = export_model(registry, ref, fmt, out, force=force)
    finally:
        registry.close()
    if as_json:
        print_json({"ref": result.ref, "format": result.format, "directory": str(result.directory), **result.details})
        return
    console.print(f"Exported {result.ref} as {result.format} to {result.directory}", highlight=False)
    for key, value in result.details.items():
        console.print(f"  {key}: {value}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``export`` to ``app``."""
    app.command("export")(export_command)


__all__ = ["export_command", "register"]
