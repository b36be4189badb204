"""`Workspace` is a plain value of the base layer; the environment is read only by `Workspace.from_env`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpilot._workspace import Workspace


def test_open_reads_no_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPILOT_HOME", str(tmp_path / "from-env"))
    monkeypatch.setenv("MLPILOT_DB_URL", "sqlite:///" + str(tmp_path / "other.db"))
    monkeypatch.chdir(tmp_path)
    ws = Workspace.open()
    assert ws.root == (tmp_path / "mlpilot-workspace").resolve()
    assert ws.db_url == f"sqlite:///{ws.root / 'registry.db'}"
    assert Workspace.open(tmp_path / "given").db_url == f"sqlite:///{(tmp_path / 'given').resolve() / 'registry.db'}"
    assert not (tmp_path / "from-env").exists()


def test_from_env_is_the_one_reading_of_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "sqlite:///" + str(tmp_path / "other.db")
    monkeypatch.setenv("MLPILOT_HOME", str(tmp_path / "from-env"))
    monkeypatch.setenv("MLPILOT_DB_URL", url)
    ws = Workspace.from_env()
    assert (ws.root, ws.db_url) == ((tmp_path / "from-env").resolve(), url)
    given = Workspace.from_env(tmp_path / "given", db_url="sqlite:///x.db")
    assert (given.root, given.db_url) == ((tmp_path / "given").resolve(), "sqlite:///x.db")
    explicit = Workspace.from_env(environ={"MLPILOT_HOME": str(tmp_path / "mapping")})
    assert explicit.root == (tmp_path / "mapping").resolve() and explicit.db_url.endswith("mapping/registry.db")
    assert Workspace.resolve(ws) is ws


def test_the_old_import_paths_name_the_same_class() -> None:
    from mlpilot import registry
    from mlpilot.registry import _workspace

    assert registry.Workspace is Workspace is _workspace.Workspace


def test_public_entry_points_default_to_mlpilot_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Users who set MLPILOT_HOME see no change: `Registry.open()` and `mlpilot.load` still find it."""
    from mlpilot.registry import Registry

    monkeypatch.setenv("MLPILOT_HOME", str(tmp_path / "home"))
    registry = Registry.open()
    try:
        assert registry.workspace.root == (tmp_path / "home").resolve()
    finally:
        registry.close()
