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
from typer.core import TyperArgument, TyperGroup, TyperOption

from mlpilot._version import __version__
from mlpilot.cli._common import WorkspaceOption, set_group_workspace
from mlpilot.exceptions import MlpilotError


def report_error(exc: MlpilotError) -> None:
    """Print an mlpilot error as one clean message on stderr."""
    Console(stderr=True).print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)


class _Argument(TyperArgument):
    """An argument shown as ``SOURCE`` (``[NAME]`` when optional) in usage lines, as click does."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def _plain_help(command: Any) -> None:
    """Drop typer's ``<bool>`` after flags and ``{source}`` in usage lines, in ``command`` and below."""
    for param in command.params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
        elif isinstance(param, TyperArgument):
            param.metavar = param.metavar or (param.name or "").upper()
            param.__class__ = _Argument
    command.__class__ = _without_help_type(type(command))
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


_PLAIN_HELP_TYPES: dict[type, type] = {}


def _without_help_type(cls: type) -> type:
    """``cls`` whose ``--help`` option shows no ``<bool>``."""
    if cls in _PLAIN_HELP_TYPES.values():
        return cls

    def get_help_option(self: Any, ctx: Any) -> Any:
        option = cls.get_help_option(self, ctx)  # type: ignore[attr-defined]
        if option is not None:
            option.metavar = ""
        return option

    return _PLAIN_HELP_TYPES.setdefault(cls, type(cls.__name__, (cls,), {"get_help_option": get_help_option}))


class _Group(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_help(self)

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
    workspace: WorkspaceOption = None,
) -> None:
    set_group_workspace(workspace)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register_all() -> None:
    from mlpilot.cli import (
        _data,
        _demo,
        _export,
        _feedback,
        _models,
        _monitor,
        _recommend,
        _serve,
        _stream,
        _train,
        _watch,
    )

    for module in (_data, _models, _train, _serve, _recommend, _demo, _feedback, _monitor, _watch, _stream, _export):
        module.register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()
