"""The Typer application and its error handling.

Each group of commands lives in its own module with a ``register(app)``
function; this module wires them and turns mlpilot errors into a clean
message on stderr with exit code 2.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from mlpilot._version import __version__
from mlpilot.exceptions import MlpilotError


def report_error(exc: MlpilotError) -> None:
    """Print an mlpilot error as one clean message on stderr."""
    Console(stderr=True).print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)


class _Group(TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MlpilotError as exc:
            report_error(exc)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    name="mlpilot",
    cls=_Group,
    help="mlpilot: data in, evaluated models out, served and monitored.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_short=True,
)
console = Console()
err_console = Console(stderr=True)

def _version_callback(value: bool) -> None:
    if value:
        console.print(f"mlpilot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register_all() -> None:
    from mlpilot.cli import _data, _demo, _models, _recommend, _serve, _stream, _train

    for module in (_data, _models, _train, _serve, _recommend, _demo, _stream):
        module.register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()
