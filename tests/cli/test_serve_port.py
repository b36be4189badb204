"""``mlpilot serve`` on a port it cannot use: exit 2 with the reason, before it loads anything."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from mlpilot.cli import app
from tests.serve.conftest import free_port


def test_taken_port_is_exit_2_before_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port), "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 2, result.output
    assert f"Port {port} on 127.0.0.1 is already in use" in result.output
    assert "--port" in result.output and "serving" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "ws").exists()  # nothing was opened or loaded


def test_host_that_is_not_local_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--host", "192.0.2.1", "--port", str(free_port()),
                                      "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 2, result.output
    assert "is not an address of this machine" in result.output
