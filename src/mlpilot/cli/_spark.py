"""``--engine spark`` of ``predict``, ``profile``, ``train``, ``monitor`` and ``recommend train``: the commands' Spark branches.

Each reads the source with `mlpilot.spark.read_spark` (lazily: nothing is collected)
on the session of ``--spark-master`` and calls the library; the printed results match
the local engine's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpilot.cli._common import check_output_path, console, open_registry, print_json

if TYPE_CHECKING:
    from mlpilot.data import Profile
    from mlpilot.monitor import MonitorReport


def _check_output(path: str, option: str) -> None:
    """A local output folder must be creatable; a remote one (hdfs://, s3a://) is Spark's to check."""
    if "://" not in path and not Path(path).is_dir():
        check_output_path(Path(path), option)


def predict_on_spark(name: str, source: str, output: str, *, rejects: str | None, table: str | None,
                     query: str | None, workspace: Path | None, master: str | None,
                     output_table: str | None = None, overwrite: bool = False) -> None:
    """``mlpilot predict NAME SOURCE --engine spark``: score on the cluster, bad rows to the rejects output.

    With ``output_table`` the scores go to that catalog table (``saveAsTable``) instead of ``output``.
    """
    from mlpilot.spark import get_session, predict_spark, read_spark, recommend_spark

    if output_table is None:
        _check_output(output, "--output")
    if rejects is not None:
        _check_output(rejects, "--rejects")
    path = None if output_table is not None else output
    registry = open_registry(workspace)
    try:
        mv = registry.get_version(name)
        frame = read_spark(source, spark=get_session(master), table=table, query=query)
        if mv.kind == "recommender":
            ranked = recommend_spark(registry, mv, frame, path, output_table=output_table, overwrite=overwrite)
        else:
            result = predict_spark(registry, mv, frame, path, rejects=rejects, output_table=output_table,
                                   overwrite=overwrite)
    finally:
        registry.close()
    if mv.kind == "recommender":
        console.print(f"Wrote the top {ranked.k} items of {ranked.n_users:,} users ({ranked.n_rows:,} rows) from "
                      f"{mv.ref} to {ranked.output}", highlight=False)
        if ranked.n_fallback:
            console.print(f"[yellow]![/] {ranked.n_fallback:,} user(s) unknown to {mv.ref} got the most popular "
                          "items (as `recommend` gives them on one machine)", highlight=False)
        return
    console.print(f"Wrote {result.n_scored:,} predictions from {mv.ref} to {result.output}", highlight=False)
    if result.rejects is not None:
        console.print(f"[yellow]![/] {result.n_rejected:,} rows failed validation and were written, with "
                      f"their errors, to {result.rejects}", highlight=False)


def profile_on_spark(source: str, *, target: str | None, html: Path | None, table: str | None,
                     query: str | None, workspace: Path | None, master: str | None,
                     show: Callable[[Profile, str], None], as_json: bool = False) -> None:
    """``mlpilot profile SOURCE --engine spark``: snapshot and profile with Spark aggregates.

    ``as_json`` prints one object, the same keys as the single-machine ``--json``.
    """
    from mlpilot.automl._datasets import record_snapshot
    from mlpilot.cli._common import open_workspace
    from mlpilot.data import render_profile_html
    from mlpilot.registry import Registry
    from mlpilot.spark import describe, get_session, profile_spark, read_spark, snapshot_spark

    ws = open_workspace(workspace)
    frame = read_spark(source, spark=get_session(master), table=table, query=query)
    result = profile_spark(frame, target=target)
    snapshot = snapshot_spark(frame, ws, source=describe(source, table=table, query=query))
    registry = Registry(ws)
    try:
        record_snapshot(registry, snapshot, result.schema)
    finally:
        registry.close()
    if html is not None:
        html.write_text(render_profile_html(result.sample, result.profile, title=str(source)), encoding="utf-8")
    if as_json:
        print_json({"source": describe(source, table=table, query=query), "snapshot": snapshot.id,
                    "html": str(html) if html else None, "profile": result.profile.to_dict()})
        return
    show(result.profile, describe(source, table=table, query=query))
    console.print(f"Snapshot [bold]{snapshot.id}[/] stored in {ws.snapshots_dir} (a Parquet dataset)", highlight=False)
    if html is not None:
        console.print(f"HTML report written to {html} (charts from a sample of {len(result.sample):,} rows)",
                      highlight=False)


def read_on_spark(source: str, *, table: str | None, query: str | None, master: str | None) -> object:
    """``mlpilot train SOURCE --engine spark``: the source as a lazy Spark DataFrame for `mlpilot.train`."""
    from mlpilot.spark import get_session, read_spark

    return read_spark(source, spark=get_session(master), table=table, query=query)


def monitor_on_spark(name: str, source: str | None, *, table: str | None, query: str | None, master: str | None,
                     **options: Any) -> MonitorReport:
    """``mlpilot monitor NAME --engine spark``: the live window counted on the cluster, the local report.

    ``source`` defaults to the workspace's prediction log of ``name`` (compacted to Parquet first).
    """
    from mlpilot.monitor import compact_prediction_log, predictions_dir
    from mlpilot.spark import get_session, monitor_spark
    from mlpilot.spark._monitor import read_log

    if source is None:
        from mlpilot.exceptions import EmptyDataError

        compact_prediction_log(options["workspace"], name)
        folder = predictions_dir(options["workspace"]) / name
        if not any(folder.glob("date=*/*.parquet")):
            raise EmptyDataError(f"No compacted prediction log of {name!r} in {folder}; serve the model (its "
                                 "traffic is logged) or pass --source with the live window.")
        source = str(folder)
    frame = read_log(source, spark=get_session(master), table=table, query=query)
    return monitor_spark(name, frame, **options)
