"""``monitor --engine spark``: the live window counted on Spark gives the local monitor's report, exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.monitor import compact_prediction_log, monitor, predictions_dir
from mlpilot.registry import Registry, Workspace
from mlpilot.spark import monitor_spark
from mlpilot.spark._monitor import read_log
from tests.monitor.test_report import log_traffic
from tests.spark.conftest import GROUP_TRAIN

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group(GROUP_TRAIN)]
runner = CliRunner()


@pytest.fixture(scope="module")
def logged(churn_workspace: Path, churn: pd.DataFrame) -> tuple[int, pd.DataFrame]:
    """600 real rows the model never saw, a minutes feature shifted, logged as served traffic and compacted."""
    registry = Registry(Workspace.open(churn_workspace))
    try:
        mv = registry.get_version("churn")
        live = churn.drop(columns=["rownames", "churn"]).iloc[1200:1800].reset_index(drop=True)
        live["total_day_minutes"] += 0.5 * live["total_day_minutes"].std()
        log_traffic(registry, mv, live, prefix="s", batch=150)
    finally:
        registry.close()
    compact_prediction_log(churn_workspace, "churn")
    return mv.version, live


def test_the_spark_window_gives_the_local_report_exactly(spark: Any, churn_workspace: Path,
                                                          logged: tuple[int, pd.DataFrame]) -> None:
    version, live = logged
    now = datetime.now(UTC)
    local = monitor("churn", workspace=churn_workspace, version=version, window="1h", now=now)
    folder = predictions_dir(Workspace.open(churn_workspace)) / "churn"
    frame = read_log(str(folder), spark=spark).repartition(3)  # three partial windows, merged on the driver
    on_spark = monitor_spark("churn", frame, workspace=churn_workspace, version=version, window="1h", now=now)
    assert on_spark.rows == local.rows == len(live)
    assert on_spark.to_dict() == local.to_dict()
    assert {f.name for f in on_spark.drifted} >= {"total_day_minutes"}  # the shift is seen, not only counted


def test_a_window_without_the_log_columns_is_refused_with_exit_2(spark: Any, churn_parquet: Path,
                                                                churn_workspace: Path) -> None:
    result = runner.invoke(app, ["monitor", "churn", "--engine", "spark", "--source", str(churn_parquet),
                                 "-w", str(churn_workspace)])
    assert result.exit_code == 2, result.output
    assert "lacks the prediction log's column(s) timestamp" in result.output
