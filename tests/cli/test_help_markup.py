"""Every option's help reads on the terminal as written: rich markup does not swallow a bracket.

Typer renders help through rich, where ``[spark]`` in "pip install 'mlpilot[spark]'" or
``[default: INPUT.dlq]`` is a style tag and disappears; such text is written ``\\[spark]``.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import render

from mlpilot.cli._app import app


def _commands(command: Any, path: str = "mlpilot") -> list[tuple[str, Any]]:
    found = [(path, command)]
    if hasattr(command, "list_commands"):  # a group (typer's own copy of click's, not click.Group)
        ctx = command.context_class(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                found.extend(_commands(sub, f"{path} {name}"))
    return found


def test_no_help_text_loses_a_bracket_to_rich_markup() -> None:
    swallowed = []
    commands = _commands(typer.main.get_command(app))
    for path, command in commands:
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            shown = render(text).plain
            if shown != text.replace("\\[", "["):
                swallowed.append(f"{path}: {text!r} shows as {shown!r}")
    assert len(commands) > 20 and not swallowed
