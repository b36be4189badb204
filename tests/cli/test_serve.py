"""``mlpilot serve`` and ``mlpilot promote`` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.registry import Registry, Workspace
from tests.serve.conftest import fit_churn_pipeline, free_port, register_churn


def _registry(tmp_path: Path, churn: pd.DataFrame) -> Registry:
    frame = churn.drop(columns=["rownames"]).head(1500)
    registry = Registry(Workspace.open(tmp_path / "ws"))
    model = fit_churn_pipeline(frame)
    register_churn(registry, frame, model)
    register_churn(registry, frame, model, aliases=())
    return registry


def test_promote_moves_the_champion(tmp_path: Path, churn: pd.DataFrame) -> None:
    registry = _registry(tmp_path, churn)
    runner = CliRunner()
    result = runner.invoke(app, ["promote", "churn", "2", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    assert "churn@champion -> version 2 (was version 1)" in result.output
    assert registry.get_aliases("churn")["champion"] == 2
    missing = runner.invoke(app, ["promote", "churn", "9", "--workspace", str(tmp_path / "ws")])
    assert missing.exit_code == 2 and "churn:9" in missing.output


def test_serve_answers_on_localhost(tmp_path: Path, churn: pd.DataFrame) -> None:
    _registry(tmp_path, churn)
    port = free_port()
    env = {**os.environ, "MLPILOT_HOME": str(tmp_path / "ws")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mlpilot.cli import main; main()", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(port, proc)
        row = churn.drop(columns=["rownames", "churn"]).head(1).to_dict("records")
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/models/churn/predict", json={"rows": row}).json()
        assert answer["version"] == 1 and answer["predictions"][0] in ("yes", "no")
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:  # never hide the test's own failure behind the shutdown
        proc.kill()
        proc.wait()


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    # Generous: a server's start-up takes 80-95 s on a loaded 2-core machine; this only bounds a hang.
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "the server did not become ready within 300 s"
        time.sleep(0.2)


def test_workers_serve_the_workspace_given_on_the_command_line(tmp_path: Path, churn: pd.DataFrame) -> None:
    """With --workers the workers get --workspace from the factory string, not from MLPILOT_HOME."""
    _registry(tmp_path, churn)
    port = free_port()
    env = {**os.environ, "MLPILOT_HOME": str(tmp_path / "elsewhere")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mlpilot.cli import main; main()", "serve", "--port", str(port), "--workers", "2",
         "--workspace", str(tmp_path / "ws"), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(port, proc)
        row = churn.drop(columns=["rownames", "churn"]).head(1).to_dict("records")
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/models/churn/predict", json={"rows": row}).json()
        assert answer["version"] == 1
    finally:
        _stop(proc)
    assert not (tmp_path / "elsewhere").exists()


def test_serve_with_workers_writes_no_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI used to set os.environ['MLPILOT_HOME'] for its workers; the settings now travel in the factory."""
    import uvicorn

    from mlpilot.cli import _serve

    launched: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: launched.update(app=app, **options))
    monkeypatch.setenv("MLPILOT_HOME", str(tmp_path / "elsewhere"))
    result = CliRunner().invoke(app, ["serve", "--port", "0", "--workers", "3", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    assert os.environ["MLPILOT_HOME"] == str(tmp_path / "elsewhere")
    target = str(launched["app"])
    assert launched["factory"] is True and launched["workers"] == 3
    module, _, attribute = target.partition(":")
    assert module == "mlpilot.cli._serve"
    served = getattr(_serve, attribute)()  # what uvicorn does in each worker
    try:
        assert served.state.settings.home == (tmp_path / "ws").resolve()
        assert served.state.settings.workers == 3 and served.state.settings.port == 0
        assert served.state.registry.workspace.root == (tmp_path / "ws").resolve()
    finally:
        served.state.registry.close()
    with pytest.raises(AttributeError):
        _serve.no_such_name  # noqa: B018
