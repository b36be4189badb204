"""One SparkSession (``local[2]``) for every Spark test, and real tables written as multi-file Parquet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pyspark = pytest.importorskip("pyspark")

#: Where a Maven-resolved PostgreSQL JDBC driver may sit when Debian's jar is not installed.
_M2_JARS = sorted(Path.home().glob(".m2/repository/org/postgresql/postgresql/*/postgresql-*.jar"))


#: Settings for the tests' small tables: one shuffle partition per core, not get_session's eight (fewer tiny
#: tasks). Measured and left out: C1-only JIT, serial GC, no whole-stage code generation and no adaptive
#: planning made the SQL steps of a profile-like probe slower, not faster (970 s against 726 s at nice 19).
TEST_CONFIG = {"spark.sql.shuffle.partitions": "2"}
#: The two xdist groups of the Spark tests, each on its own worker with its own session (one JVM each): the
#: tests around the shared `spark_train` workspace, and the rest (ALS, the cluster fit, the executor, errors).
GROUP_TRAIN, GROUP_FIT = "spark", "spark-fit"


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The tests' one session on ``local[2]`` (one per xdist worker), with a PostgreSQL JDBC driver when one is
    on the machine and its catalog's tables in a temporary folder."""
    from mlpilot.spark import get_session

    config = {**TEST_CONFIG, "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse"))}
    with pytest.MonkeyPatch.context() as mp:
        if not Path("/usr/share/java/postgresql.jar").exists() and _M2_JARS:
            mp.setenv("MLPILOT_SPARK_JARS", str(_M2_JARS[-1]))
        session = get_session("local[2]", app_name="mlpilot-tests", config=config)
    assert session.conf.get("spark.sql.shuffle.partitions") == "2"  # the settings reached the new session
    yield session
    session.stop()


@pytest.fixture(scope="session")
def churn_rows(churn: pd.DataFrame) -> pd.DataFrame:
    """1,200 real rows of mlc_churn (enough for a holdout, small enough for two busy cores)."""
    return churn.drop(columns=["rownames"]).head(1200).reset_index(drop=True)


def write_parts(frame: pd.DataFrame, folder: Path, n_parts: int = 3) -> Path:
    """``frame`` as a Parquet dataset of ``n_parts`` files, as Spark and Hadoop tools write them."""
    folder.mkdir(parents=True)
    size = -(-len(frame) // n_parts)
    for i in range(n_parts):
        frame.iloc[i * size : (i + 1) * size].to_parquet(folder / f"part-{i:05d}.parquet", index=False)
    (folder / "_SUCCESS").touch()
    return folder


@pytest.fixture(scope="session")
def churn_parquet(churn_rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parts(churn_rows, tmp_path_factory.mktemp("churn") / "churn.parquet")


@pytest.fixture(scope="session")
def spark_train(spark: Any, churn_parquet: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``mlpilot train --engine spark`` on the churn dataset (deterministic, one family): the workspace and the
    command's output. The CLI test checks the run; the scoring and monitoring tests use its model."""
    from typer.testing import CliRunner

    from mlpilot.cli import app

    root = tmp_path_factory.mktemp("ws")
    result = CliRunner().invoke(app, ["train", str(churn_parquet), "--target", "churn", "--engine", "spark",
                                      "--name", "churn", "--deterministic", "--n-trials", "0", "--families",
                                      "linear", "--driver-memory", "8g", "-w", str(root)])
    assert result.exit_code == 0, result.output
    return root, result.output


@pytest.fixture(scope="session")
def churn_workspace(spark_train: tuple[Path, str]) -> Path:
    """A workspace with the model ``churn`` that mlpilot trained on the churn rows on Spark."""
    return spark_train[0]


@pytest.fixture(autouse=True)
def _no_env_master(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPILOT_SPARK_MASTER", raising=False)
