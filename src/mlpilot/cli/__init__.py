"""The ``mlpilot`` command line."""

from mlpilot.cli._app import app, main

__all__ = ["app", "main"]
