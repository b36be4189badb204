"""Bad input on the Spark engine: clear errors, exit code 2, no password shown, nothing half-registered."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import mlpilot
from mlpilot.cli import app
from mlpilot.exceptions import InvalidParameterError, SourceConnectionError, SourceNotFoundError
from mlpilot.registry import Registry, Workspace
from mlpilot.spark import SparkJobError, get_session, read_spark
from tests.spark.conftest import GROUP_FIT

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group(GROUP_FIT)]
runner = CliRunner()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_or_unknown_master_is_refused_before_starting(spark: Any) -> None:
    with pytest.raises(SourceConnectionError, match=r"spark://127\.0\.0\.1:\d+ cannot be reached"):
        get_session(f"spark://127.0.0.1:{_closed_port()}")
    with pytest.raises(InvalidParameterError, match="Unknown Spark master 'mesos-ish'"):
        get_session("mesos-ish")


def test_cli_missing_path_exits_2_with_the_path(spark: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.parquet"
    result = runner.invoke(app, ["profile", str(missing), "--engine", "spark", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 2
    assert "No file or folder" in result.output and "nowhere.parquet" in result.output
    with pytest.raises(SourceNotFoundError):
        read_spark(str(missing))


def test_jdbc_that_cannot_connect_names_the_server_not_the_password(spark: Any) -> None:
    url = f"postgresql://alice:s3cret-pw@127.0.0.1:{_closed_port()}/shop"
    with pytest.raises(SourceConnectionError) as caught:
        read_spark(url, table="orders")
    assert "127.0.0.1" in str(caught.value) and "s3cret-pw" not in str(caught.value)
    result = runner.invoke(app, ["predict", "m", url, "--table", "orders", "--engine", "spark", "-o", "x.parquet"])
    assert result.exit_code == 2 and "s3cret-pw" not in result.output


@pytest.mark.postgres
def test_a_postgresql_table_is_read_over_jdbc(spark: Any, postgres_url: str, churn_rows: pd.DataFrame) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    churn_rows.head(300).to_sql("churn", engine, index=False)
    engine.dispose()
    frame = read_spark(postgres_url.replace("postgres@", "postgres:any-pw@"), table="churn")
    assert frame.count() == 300 and set(frame.columns) == set(churn_rows.columns)
    picked = read_spark(postgres_url, query="SELECT state, churn FROM churn WHERE churn = 'yes'")
    assert picked.columns == ["state", "churn"]
    assert picked.count() == int((churn_rows.head(300)["churn"] == "yes").sum())


def test_a_job_failing_on_an_executor_registers_nothing(spark: Any, churn_rows: pd.DataFrame,
                                                       tmp_path: Path) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    def fail_above_300(value):  # type: ignore[no-untyped-def]  # no hints: a plain (not an Arrow) UDF
        if value > 300:
            raise RuntimeError("disk on fire")
        return value

    broken = F.udf(fail_above_300, T.DoubleType())
    frame = spark.createDataFrame(churn_rows).withColumn("total_day_minutes", broken("total_day_minutes"))
    ws = Workspace.open(tmp_path / "ws")
    with pytest.raises(SparkJobError, match="disk on fire"):
        mlpilot.train(frame, "churn", workspace=ws, deterministic=True, n_trials=0, families=("linear",))
    registry = Registry(ws)
    try:
        assert registry.list_models() == [] and registry.list_datasets() == [] and registry.list_runs() == []
    finally:
        registry.close()
    assert [p.name for p in ws.snapshots_dir.iterdir()] == []
