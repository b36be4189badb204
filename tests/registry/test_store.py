"""The registry on SQLite and on a real PostgreSQL: versions, aliases, hashes, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlpilot.exceptions import (
    ArtifactIntegrityError,
    InvalidParameterError,
    ModelNotFoundError,
    SourceConnectionError,
)
from mlpilot.registry import ModelRef, Registry, Workspace


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    if request.param == "sqlite":
        return Registry(Workspace.open(tmp_path / "ws"))
    url = request.getfixturevalue("postgres_url")
    return Registry(Workspace.open(tmp_path / "ws", db_url=url))


def _model(seed: int = 0) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 3))
    return LogisticRegression().fit(x, x[:, 0] > 0)


def test_versions_aliases_and_listing(any_registry: Registry) -> None:
    reg = any_registry
    run_id = reg.start_run("churn", kind="tabular", config={"seed": 0})
    v1 = reg.register_model("churn", _model(0), kind="tabular", metrics={"auc": 0.81}, headline_metric="auc",
                            run_id=run_id, aliases=("champion",), files={"report.html": b"<html>1</html>"})
    v2 = reg.register_model("churn", _model(1), kind="tabular", metrics={"auc": 0.85}, headline_metric="auc")
    reg.finish_run(run_id, metrics={"auc": 0.81})
    assert (v1.version, v2.version) == (1, 2)
    assert v1.artifact_format == "skops"
    assert reg.get_version("churn").version == 1  # bare name -> champion
    assert reg.get_version("churn:2").aliases == ()
    reg.set_alias("churn", "champion", 2)
    assert reg.get_version("churn@champion").version == 2
    assert reg.get_aliases("churn") == {"champion": 2}
    [summary] = reg.list_models()
    assert (summary.n_versions, summary.headline_value, summary.aliases) == (2, 0.85, {"champion": 2})
    loaded = reg.load_model("churn:1")
    x = np.random.default_rng(5).normal(size=(10, 3))
    np.testing.assert_array_equal(loaded.predict(x), v1_model_predict(x))
    assert reg.read_file(reg.get_version("churn:1"), "report.html") == b"<html>1</html>"
    assert reg.get_run(run_id).status == "finished"
    kinds = [e["kind"] for e in reg.list_events(name="churn")]
    assert kinds == ["model_registered", "model_registered", "alias_set"]


def v1_model_predict(x: np.ndarray) -> np.ndarray:
    return _model(0).predict(x)


def test_unknown_models_and_aliases(registry: Registry) -> None:
    registry.register_model("churn", _model(), kind="tabular")
    with pytest.raises(ModelNotFoundError, match="Did you mean 'churn'"):
        registry.get_version("chrun")
    with pytest.raises(ModelNotFoundError, match="No model version churn:9"):
        registry.get_version("churn:9")
    with pytest.raises(ModelNotFoundError, match="has no alias 'staging'"):
        registry.get_version("churn@staging")
    with pytest.raises(ModelNotFoundError):
        registry.set_alias("churn", "champion", 4)


@pytest.mark.parametrize("bad", ["", "has space", "../escape", "a/b", "-x", "x" * 200])
def test_invalid_names_are_refused(registry: Registry, bad: str) -> None:
    with pytest.raises(InvalidParameterError, match="not valid"):
        registry.register_model(bad, _model(), kind="tabular")


def test_model_ref_parsing() -> None:
    assert ModelRef.parse("m:3") == ModelRef("m", 3, None)
    assert ModelRef.parse("m@staging") == ModelRef("m", None, "staging")
    with pytest.raises(InvalidParameterError, match="positive integer"):
        ModelRef.parse("m:0")


def test_tampered_artifact_is_refused(registry: Registry) -> None:
    mv = registry.register_model("churn", _model(), kind="tabular", files={"card.json": b"{}"})
    data = bytearray(mv.artifact_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    mv.artifact_path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="was modified"):
        registry.load_model("churn:1")
    (mv.directory / "card.json").write_bytes(b'{"x": 1}')
    with pytest.raises(ArtifactIntegrityError, match=r"card\.json"):
        registry.read_file(mv, "card.json")
    mv.artifact_path.unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        registry.load_model("churn:1")


def test_unreachable_database_hides_password(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://bob:hunter2pw@127.0.0.1:{port}/registry"
    with pytest.raises(SourceConnectionError, match="Cannot connect to the registry") as info:
        Registry(Workspace.open(tmp_path, db_url=url))
    assert "hunter2pw" not in str(info.value)


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mlpilot.registry import Registry, Workspace

    reg = Registry(Workspace.open(sys.argv[1]))
    payload = np.random.default_rng(0).random(6_000_000)  # ~48 MB per version
    for i in range(1000):
        reg.register_model("big", {"weights": payload + i}, kind="test", artifact_format="joblib",
                           files={"notes.txt": b"x" * 1_000_000})
    """
)


def test_kill_9_mid_write_leaves_no_half_version(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.open(root)
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(root)])
    try:
        deadline = time.time() + 120
        killed_mid_write = False
        while time.time() < deadline and proc.poll() is None:
            registered = Registry(Workspace.open(root)).list_models()
            in_progress = list((root / "artifacts" / "big").glob(".tmp-*")) if (root / "artifacts" / "big").exists() else []
            if registered and registered[0].n_versions >= 1 and in_progress:
                os.kill(proc.pid, signal.SIGKILL)
                killed_mid_write = True
                break
            time.sleep(0.01)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed_mid_write, "the writer never was caught mid-write"
    reg = Registry(Workspace.open(root))
    versions = reg.list_versions("big")
    assert versions, "completed versions survive"
    for mv in versions:
        weights = reg.load_model(mv)["weights"]  # every recorded version is whole and verified
        assert weights.shape == (6_000_000,)
    # The interrupted write is not a version; the next registration continues cleanly.
    nxt = reg.register_model("big", {"weights": np.zeros(3)}, kind="test")
    assert nxt.version == versions[-1].version + 1

