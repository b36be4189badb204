"""The watcher's lease and state in the registry, on SQLite and PostgreSQL: one owner at a time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlpilot.exceptions import ConflictError
from mlpilot.registry import Registry, Workspace


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def workspace_any(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    if request.param == "sqlite":
        return Workspace.open(tmp_path / "ws")
    return Workspace.open(tmp_path / "ws", db_url=request.getfixturevalue("postgres_url"))


def test_one_of_many_concurrent_watchers_gets_the_lease(workspace_any: Workspace) -> None:
    registries = [Registry(workspace_any) for _ in range(6)]
    won: list[str] = []
    barrier = threading.Barrier(len(registries))

    def contend(i: int) -> None:
        barrier.wait()
        if registries[i].acquire_lease("m", f"w{i}", ttl=60)["acquired"]:
            won.append(f"w{i}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(registries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert len(won) == 1
        owner, other = won[0], Registry(workspace_any)
        holder = other.acquire_lease("m", "late", ttl=60)
        assert not holder["acquired"] and holder["owner"] == owner
        assert other.acquire_lease("m", owner, ttl=60)["acquired"]  # the owner renews its own lease
        # state is saved only under the lease, and read back by a restarted watcher
        other.set_watch_state("m", owner, {"snapshot": "abc", "last_retrain_at": 1.5})
        with pytest.raises(ConflictError, match="no longer holds the lease"):
            other.set_watch_state("m", "late", {"snapshot": "other"})
        assert registries[0].get_watch_state("m") == {"snapshot": "abc", "last_retrain_at": 1.5}
        # an expired lease goes to the next watcher; a released one at once
        later = datetime.now(UTC) + timedelta(seconds=61)
        assert other.acquire_lease("m", "late", ttl=60, now=later)["acquired"]
        other.release_lease("m", "late")
        assert other.acquire_lease("m", "third", ttl=60)["acquired"]
        other.close()
    finally:
        for r in registries:
            r.close()
