"""``mlpilot monitor``: drift, estimated and real performance of a served model, in the terminal, JSON or HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlpilot.cli._common import (
    EngineOption,
    QueryOption,
    SparkMasterOption,
    TableOption,
    WorkspaceOption,
    check_output_path,
    console,
    open_workspace,
    use_spark,
)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def monitor_command(
    name: Annotated[str, typer.Argument(help="Model name (its champion is monitored).")],
    since: Annotated[str | None, typer.Option("--since", help="Window start: '7d', '12h' back, or an ISO time. "
                                              "Default: the whole log.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Window end ('1d' back or an ISO time). Default: now.")]
    = None,
    window: Annotated[str | None, typer.Option("--window", help="Periods of the metric over time, e.g. '1d'.")] = None,
    version: Annotated[int | None, typer.Option("--version", min=1, help="Monitor this version instead.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML report with plots to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    workspace: WorkspaceOption = None,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="With --engine spark: the live window as any table Spark reads (logged predictions: "
        "a Parquet folder, JDBC, a catalog table). Default: the workspace's log of NAME.")] = None,
    source_table: TableOption = None,
    query: QueryOption = None,
) -> None:
    """Check NAME's logged traffic against its training snapshot: drift per feature, predictions, performance."""
    from mlpilot.monitor import monitor

    check_output_path(html, "--html")
    options: dict[str, Any] = {"workspace": open_workspace(workspace), "since": since, "until": until, "window": window,
               "version": version}
    if use_spark(engine):
        from mlpilot.cli._spark import monitor_on_spark

        report = monitor_on_spark(name, source, table=source_table, query=query, master=spark_master, **options)
    else:
        report = monitor(name, **options)
    if html is not None:
        from mlpilot.monitor._html import render_html

        html.expanduser().write_text(render_html(report), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    data = report.to_dict()
    w = data["window"]
    console.print(f"[bold]{report.name}:{report.version}[/] {w['start'][:19]} → {w['end'][:19]}: {w['rows']} rows "
                  f"against the training snapshot ({report.reference_rows} rows)", highlight=False)
    table = Table(header_style="bold")
    for header in ("feature", "role", "aspect", "drift", "effect [95%]", "threshold", "p (BH)", "importance"):
        table.add_column(header)
    shown = [f for f in report.features if f.drift or f.aspect != "missing" or (f.effect or 0) != 0]
    for f in sorted(shown, key=lambda f: (not f.drift, -f.importance, f.name)):
        interval = f" [{_fmt(f.interval[0])}, {_fmt(f.interval[1])}]" if f.interval else ""
        table.add_row(f.name, f.role, f.aspect, "[red]yes[/]" if f.drift else "no",
                      f"{_fmt(f.effect)}{interval} {f.statistic}" if f.effect is not None else f.note,
                      _fmt(f.threshold), _fmt(f.p_adjusted), _fmt(f.importance))
    console.print(table)
    if report.prediction_drift is not None:
        p = report.prediction_drift
        console.print(f"predictions: {p.statistic} {_fmt(p.effect)} (threshold {_fmt(p.threshold)}): "
                      f"{'drift' if p.drift else 'no drift'}", highlight=False)
    for kind, estimate in report.performance.items():
        if estimate is not None and estimate.value is not None:
            interval = f" [{_fmt(estimate.interval[0])}, {_fmt(estimate.interval[1])}]" if estimate.interval else ""
            console.print(f"{kind} {estimate.metric}: {_fmt(estimate.value)}{interval} ({estimate.method})",
                          highlight=False)
    if report.rows_flagged:
        flags = ", ".join(f"{k} {sum(v.values())}" for k, v in report.quality.items())
        console.print(f"data-quality flags: {report.rows_flagged} row(s): {flags}", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    if report.model_at_risk:
        console.print("[bold red]model at risk:[/] " + "; ".join(report.risk_reasons), highlight=False)
    else:
        console.print("[green]model not at risk[/]")
    if html is not None:
        console.print(f"HTML report: {html}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``monitor`` to ``app``."""
    app.command("monitor")(monitor_command)
