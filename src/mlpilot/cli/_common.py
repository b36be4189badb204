"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from mlpilot.registry import Registry, Workspace

console = Console()

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace directory (default: $MLPILOT_HOME or ./mlpilot-workspace).",
        show_default=False,
    ),
]
TableOption = Annotated[str | None, typer.Option("--table", help="Table to read, for a SQL URL source.")]
QueryOption = Annotated[str | None, typer.Option("--query", help="SELECT statement, for a SQL URL source.")]


def open_workspace(path: Path | None) -> Workspace:
    return Workspace.open(path)


def open_registry(path: Path | None) -> Registry:
    return Registry(Workspace.open(path))


@contextmanager
def file_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar fed with (bytes read, total bytes); hidden for small files."""
    progress = Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task(description, total=None, visible=False)
    started = False

    def update(done: int, total: int) -> None:
        nonlocal started
        if not started and total > (8 << 20):
            progress.start()
            progress.update(task, visible=True)
            started = True
        progress.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if started:
            progress.stop()
