"""``mlpilot models``: list registered models and show one version."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from mlpilot.cli._common import WorkspaceOption, console, open_registry

models_app = typer.Typer(help="List and inspect registered models.", no_args_is_help=False)


@models_app.callback(invoke_without_command=True)
def list_models(ctx: typer.Context, workspace: WorkspaceOption = None) -> None:
    """List model names with their versions, aliases and headline metric."""
    if ctx.invoked_subcommand is not None:
        return
    registry = open_registry(workspace)
    summaries = registry.list_models()
    if not summaries:
        console.print("No models registered yet. Train one with: mlpilot train SOURCE --target COLUMN")
        return
    table = Table(header_style="bold")
    for header in ("name", "kind", "versions", "latest", "aliases", "metric", "value"):
        table.add_column(header)
    for s in summaries:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(s.aliases.items()))
        value = f"{s.headline_value:.4f}" if s.headline_value is not None else ""
        table.add_row(s.name, s.kind, str(s.n_versions), str(s.latest_version), aliases, s.headline_metric or "", value)
    console.print(table)


@models_app.command("show")
def show_model(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Show one model version: metrics, aliases, schema, artifact and environment."""
    registry = open_registry(workspace)
    mv = registry.get_version(ref)
    if as_json:
        record = {
            "name": mv.name,
            "version": mv.version,
            "kind": mv.kind,
            "aliases": list(mv.aliases),
            "metrics": mv.metrics,
            "headline_metric": mv.headline_metric,
            "artifact": str(mv.artifact_path),
            "sha256": mv.sha256,
            "dataset_id": mv.dataset_id,
            "run_id": mv.run_id,
            "environment": mv.environment,
            "schema": mv.schema,
            "created_at": mv.created_at.isoformat(),
            "champion_reason": mv.info.get("champion_reason"),
            "promotion": mv.info.get("promotion"),
        }
        typer.echo(json.dumps(record, indent=2, default=str))
        return
    console.print(f"[bold]{mv.name}:{mv.version}[/] ({mv.kind})  aliases: {', '.join(mv.aliases) or '-'}", highlight=False)
    console.print(f"created {mv.created_at:%Y-%m-%d %H:%M:%S} UTC, dataset {mv.dataset_id or '-'}, run {mv.run_id or '-'}", highlight=False)
    console.print(f"artifact {mv.artifact_path} ({mv.artifact_format}, sha256 {mv.sha256[:16]}...)", highlight=False)
    if mv.info.get("champion_reason"):
        console.print(f"champion decision at registration: {mv.info['champion_reason']}", highlight=False)
    if mv.metrics:
        table = Table("metric", "value", header_style="bold")
        for key, value in mv.metrics.items():
            shown = f"{value:.4f}" if isinstance(value, float) else json.dumps(value, default=str)
            style = "bold" if key == mv.headline_metric else ""
            table.add_row(f"[{style}]{key}[/]" if style else key, shown)
        console.print(table)
    if mv.schema:
        cols = mv.schema.get("columns", [])
        target = mv.schema.get("target")
        feats = [c for c in cols if c["name"] != target and c["role"] not in ("id", "constant")]
        console.print(f"input: {len(feats)} features; target {target!r}", highlight=False)
    env = mv.environment
    console.print(f"trained with Python {env.get('python')}, mlpilot {env.get('mlpilot')}", highlight=False)


def rollback_model(
    name: Annotated[str, typer.Argument(help="Model name.")],
    to: Annotated[int | None, typer.Option("--to", help="Version to go back to (default: the previous champion).")] = None,
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the move as JSON.")] = False,
) -> None:
    """Point NAME@champion back at the previous champion; a running server hot-swaps to it."""
    from mlpilot.autopilot import rollback

    registry = open_registry(workspace)
    old, new = rollback(registry, name, to=to, reason="rolled back by hand (mlpilot models rollback)")
    if as_json:
        typer.echo(json.dumps({"name": name, "from_version": old, "to_version": new}))
        return
    console.print(f"{name}: champion rolled back from v{old} to v{new}", highlight=False)


_HISTORY_KINDS = ("model_registered", "alias_set", "promotion", "rollback", "watch.step", "retrain.failed")


def model_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as a JSON list.")] = False,
) -> None:
    """Show NAME's timeline: versions registered, alias moves, watch decisions, promotions, rollbacks."""
    registry = open_registry(workspace)
    registry.list_versions(name)  # a clear error for an unknown name
    events = [e for e in registry.list_events(name=name) if e["kind"] in _HISTORY_KINDS]
    if as_json:
        typer.echo(json.dumps([{"at": e["created_at"].isoformat(), "kind": e["kind"], **e["payload"]}
                               for e in events], default=str))
        return
    table = Table("when (UTC)", "event", "what", header_style="bold")
    for e in events:
        p = e["payload"]
        if e["kind"] == "model_registered":
            what = f"v{p.get('version')} registered" + (f" as {', '.join(p['aliases'])}" if p.get("aliases") else "")
        elif e["kind"] == "alias_set":
            what = f"{p.get('alias')} → v{p.get('version')}"
        elif e["kind"] in ("promotion", "rollback"):
            start = f"v{p['from_version']}" if p.get("from_version") is not None else "none"
            what = f"{start} → v{p.get('to_version')}: {p.get('reason', '')}"
        elif e["kind"] == "watch.step":
            what = f"{p.get('decision')}: {p.get('reason', '')}"
        else:
            what = str(p.get("reason", ""))
        table.add_row(f"{e['created_at']:%Y-%m-%d %H:%M:%S}", e["kind"], what)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``models`` group to ``app``."""
    from mlpilot.cli._serve import promote

    models_app.command("promote")(promote)
    models_app.command("rollback")(rollback_model)
    models_app.command("history")(model_history)
    app.add_typer(models_app, name="models")
