"""SQL engines: one way to connect to a database, with clear errors and no password in messages.

Used by the SQL source reader and by the registry (which imports it from here).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlpilot.exceptions import MissingDependencyError, SourceConnectionError


def safe_url(url: str) -> str:
    """Render a database URL without its password."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Write-ahead logging: readers (a running server) never block the writer (a training run),
    and a commit costs one append instead of a journal round trip. A killed process loses
    nothing it committed; ``synchronous=NORMAL`` is SQLite's recommended pairing with WAL."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_engine(url: str) -> Engine:
    """Create an engine for ``url`` with clear errors for missing drivers."""
    try:
        parsed = sa.make_url(url)
    except Exception as exc:
        raise SourceConnectionError(
            "The database URL could not be parsed; expected e.g. "
            "'postgresql://user:password@host:5432/db' or 'sqlite:///path.db'."
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = sa.create_engine(parsed, connect_args={"timeout": 30})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return sa.create_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            exc.name or "psycopg", "postgres", f"The database {safe_url(url)}"
        ) from exc
