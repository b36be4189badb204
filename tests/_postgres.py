"""A throwaway PostgreSQL 15 cluster for the tests.

The cluster is created with ``initdb`` in a temp directory, run as the
``postgres`` system user when the tests run as root (``initdb`` refuses root),
on a free port of 127.0.0.1, and removed at the end of the session. Tests
that need it take the ``postgres_url`` fixture and carry the ``postgres`` marker.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest


def _pg_bin() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(cmd: list[str], as_postgres: bool) -> subprocess.CompletedProcess[str]:
    if as_postgres:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Start PostgreSQL; yield a superuser URL without a database name."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; `make test` installs it (scripts/install-system-deps.sh).")
        pytest.skip("PostgreSQL is not installed; run scripts/install-system-deps.sh")
    as_postgres = os.geteuid() == 0
    base = tempfile.mkdtemp(prefix="mlpilot-pg-")
    data_dir = os.path.join(base, "data")
    if as_postgres:
        shutil.chown(base, "postgres", "postgres")
    port = _free_port()
    _run([f"{bin_dir}/initdb", "-D", data_dir, "-U", "postgres", "--auth=trust", "-E", "UTF8"], as_postgres)
    log = os.path.join(base, "server.log")
    _run(
        [
            f"{bin_dir}/pg_ctl", "-D", data_dir, "-l", log, "-w", "-t", "60", "start",
            "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
        ],
        as_postgres,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            (["runuser", "-u", "postgres", "--"] if as_postgres else [])
            + [f"{bin_dir}/pg_ctl", "-D", data_dir, "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's server."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{postgres_server}/{name}"
