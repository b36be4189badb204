"""``python -m mlpilot`` runs the command line."""

from mlpilot.cli import main

main()
