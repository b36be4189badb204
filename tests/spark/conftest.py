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


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The tests' one session on ``local[2]``, with a PostgreSQL JDBC driver when one is on the machine."""
    from mlpilot.spark import get_session

    with pytest.MonkeyPatch.context() as mp:
        if not Path("/usr/share/java/postgresql.jar").exists() and _M2_JARS:
            mp.setenv("MLPILOT_SPARK_JARS", str(_M2_JARS[-1]))
        session = get_session("local[2]", app_name="mlpilot-tests")
    # the tests' tables are small: one shuffle partition per core, not get_session's eight (fewer tiny tasks)
    session.conf.set("spark.sql.shuffle.partitions", "2")
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
def churn_workspace(churn_rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a model mlpilot trained on the churn rows (deterministic, one family)."""
    import mlpilot

    root = tmp_path_factory.mktemp("ws")
    mlpilot.train(churn_rows, "churn", name="churn", workspace=root, deterministic=True, n_trials=0,
                  families=("linear",), report=False)
    return root


@pytest.fixture(autouse=True)
def _no_env_master(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPILOT_SPARK_MASTER", raising=False)
