"""``--engine spark`` of ``predict``, ``profile`` and ``train``: the commands' Spark branches.

Each reads the source with `mlpilot.spark.read_spark` (lazily: nothing is collected)
on the session of ``--spark-master`` and calls the library; the printed results match
the local engine's.
"""

from __future__ import annotations

from pathlib import Path

from mlpilot.cli._common import check_output_path, console, open_registry


def _check_output(path: str, option: str) -> None:
    """A local output folder must be creatable; a remote one (hdfs://, s3a://) is Spark's to check."""
    if "://" not in path and not Path(path).is_dir():
        check_output_path(Path(path), option)


def predict_on_spark(name: str, source: str, output: str, *, rejects: str | None, table: str | None,
                     query: str | None, workspace: Path | None, master: str | None) -> None:
    """``mlpilot predict NAME SOURCE --engine spark``: score on the cluster, bad rows to the rejects output."""
    from mlpilot.spark import get_session, predict_spark, read_spark

    _check_output(output, "--output")
    if rejects is not None:
        _check_output(rejects, "--rejects")
    registry = open_registry(workspace)
    try:
        mv = registry.get_version(name)
        frame = read_spark(source, spark=get_session(master), table=table, query=query)
        result = predict_spark(registry, mv, frame, output, rejects=rejects)
    finally:
        registry.close()
    console.print(f"Wrote {result.n_scored:,} predictions from {mv.ref} to {result.output}", highlight=False)
    if result.rejects is not None:
        console.print(f"[yellow]![/] {result.n_rejected:,} rows failed validation and were written, with "
                      f"their errors, to {result.rejects}", highlight=False)
