"""The one way mlpilot gets a SparkSession: the lazy pyspark import, the master, quiet defaults.

pyspark is imported here (and by the other ``spark/`` modules, after `require_pyspark`)
and nowhere else in mlpilot. A missing install is a `MissingDependencyError` naming the
``[spark]`` extra.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpilot.exceptions import (
    InvalidParameterError,
    MissingDependencyError,
    MlpilotError,
    SourceConnectionError,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[*]"
#: Where Debian's libpostgresql-jdbc-java puts the PostgreSQL JDBC driver.
_JDBC_JARS = (Path("/usr/share/java/postgresql.jar"),)
_CONNECT_TIMEOUT_S = 5.0


def require_pyspark(purpose: str = "The Spark engine") -> Any:
    """Import and return the ``pyspark`` module, or raise `MissingDependencyError` naming the extra."""
    try:
        import pyspark
    except ImportError as exc:
        raise MissingDependencyError("pyspark", "spark", purpose) from exc
    return pyspark


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence pyspark's notices about pandas 3 (its support notice, its deprecated ``copy=`` keyword).

    pyspark 4 warns on every pandas conversion under pandas 3; the conversions mlpilot
    makes (numbers, strings, booleans through Arrow) are tested here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*PySpark does not yet fully support pandas.*")
        # pyspark's Arrow conversion passes pandas 3 its deprecated copy= keyword
        warnings.filterwarnings("ignore", message=".*The copy keyword is deprecated.*")
        yield


def _check_master(master: str) -> None:
    """Refuse a master URL Spark cannot parse, and a cluster master that does not answer, before starting."""
    if master.startswith("local") or master in ("yarn",) or master.startswith("k8s://"):
        return
    if not master.startswith("spark://"):
        raise InvalidParameterError(
            f"Unknown Spark master {master!r}. Accepted: local, local[N], local[*], spark://HOST:PORT, "
            "yarn or k8s://URL (--spark-master or MLPILOT_SPARK_MASTER)."
        )
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
                return
        except (OSError, ValueError):
            continue
    raise SourceConnectionError(
        f"The Spark master {master} cannot be reached (no answer within {_CONNECT_TIMEOUT_S:.0f} s). "
        "Check that the cluster is running and the address is right, or use --spark-master 'local[*]'."
    )


def jdbc_jars() -> list[str]:
    """The JDBC driver jars found on this machine (Debian's PostgreSQL driver), for ``spark.jars``."""
    extra = [p for p in os.environ.get("MLPILOT_SPARK_JARS", "").split(",") if p]
    return [*extra, *(str(p) for p in _JDBC_JARS if p.exists())]


def get_session(master: str | None = None, *, app_name: str = "mlpilot",
                config: Mapping[str, str] | None = None) -> SparkSession:
    """The active SparkSession, or a new one on ``master`` (default ``local[*]``).

    Parameters
    ----------
    master : str, optional
        ``local[*]``, ``local[N]``, ``spark://HOST:PORT``, ``yarn`` or ``k8s://...``. The
        CLI passes ``--spark-master`` / ``MLPILOT_SPARK_MASTER``; an active session is
        reused as it is.
    config : mapping, optional
        Spark settings for a new session, over mlpilot's defaults (``spark.sql.warehouse.dir``,
        ``spark.driver.extraJavaOptions``, ...); an active session keeps its own.

    Raises
    ------
    MissingDependencyError
        When pyspark is not installed.
    InvalidParameterError, SourceConnectionError
        When the master is not a Spark master URL, or a standalone master does not answer.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    if master is not None:
        _check_master(master)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    master = master or DEFAULT_MASTER
    # Spark starts its Python workers with $PYSPARK_PYTHON (else 'python3', which may lack
    # mlpilot's packages): point it at this interpreter unless the user chose one.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master).appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        # scoring has a fixed cost per batch (validation, the model's own setup): fewer, larger batches
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50000")
    )
    if master.startswith("local"):
        builder = builder.config("spark.sql.shuffle.partitions", "8")
    jars = jdbc_jars()
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise SourceConnectionError(
            f"Spark could not start on master {master}: {type(exc).__name__}: {str(exc)[:300]}. "
            "Check that Java 17 is installed (scripts/install-system-deps.sh) and the master is right."
        ) from None
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkJobError(MlpilotError, RuntimeError):
    """A Spark job failed on the cluster (an executor lost, a task that kept failing)."""

    status_code = 500


_MLPILOT_ERROR = re.compile(r"mlpilot\.exceptions\.(\w+): (.*)")
_PYTHON_ERROR = re.compile(r"^((?:[A-Za-z_][\w.]*)?(?:Error|Exception): .*)$", re.M)


@contextlib.contextmanager
def spark_job(what: str) -> Iterator[None]:
    """Run Spark actions for ``what``; turn a failed job into a `SparkJobError` that says what failed.

    An mlpilot error raised inside a task keeps its message (the first line of the
    worker's traceback); Java stack traces are cut to their first line.
    """
    try:
        yield
    except MlpilotError:
        raise
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("pyspark", "py4j"):
            raise
        text = str(exc)
        inner = _MLPILOT_ERROR.search(text)
        raised = [line for line in _PYTHON_ERROR.findall(text)  # a worker traceback's last line: what the task raised
                  if not line.startswith(("org.", "java.", "scala.", "py4j.", "pyspark."))]
        detail = (f"{inner.group(1)}: {inner.group(2)}" if inner else raised[-1].strip() if raised
                  else next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__))
        raise SparkJobError(
            f"The Spark job that {what} failed: {detail[:400]}. Nothing was written or registered; "
            "fix the cause (the executor logs have the whole trace) and run it again."
        ) from None


def is_spark_frame(data: object) -> bool:
    """Whether ``data`` is a pyspark DataFrame (classic or Connect), without importing pyspark."""
    return type(data).__module__.startswith("pyspark.") and type(data).__name__ == "DataFrame"


__all__ = [
    "DEFAULT_MASTER", "SparkJobError", "get_session", "is_spark_frame", "jdbc_jars", "quiet", "require_pyspark",
    "spark_job",
]
