"""``mlpilot models delete`` killed with SIGKILL between its transaction and the file removal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.exceptions import ModelNotFoundError
from mlpilot.registry import Registry, Workspace

# The child runs the real CLI; its os.replace pauses (and says so) where delete moves the
# artifact directory aside, i.e. after the registry row is gone and before any file is removed.
CHILD = """
import os, sys, time
from pathlib import Path
ready = Path(sys.argv[2])
real_replace = os.replace
def pausing_replace(src, dst, *args, **kwargs):
    if Path(dst).name.startswith(".deleted-"):
        ready.write_text(str(src))
        time.sleep(120)
    return real_replace(src, dst, *args, **kwargs)
os.replace = pausing_replace
from mlpilot.cli import main
sys.argv = ["mlpilot", "models", "delete", "demo:1", "-w", sys.argv[1]]
main()
"""


@pytest.mark.timeout(120)
def test_kill_mid_delete_leaves_a_consistent_registry_and_the_next_delete_sweeps(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    registry = Registry(Workspace.open(ws))
    first = registry.register_model("demo", {"w": [1, 2]}, kind="test")
    registry.register_model("demo", {"w": [3, 4]}, kind="test", aliases=("champion",))
    registry.close()
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ws), str(ready)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while not ready.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"the delete never reached its file removal: {child.communicate()[0]!r}")
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL

    # the row is gone, its directory is still there (the crash point), nothing else moved
    assert Path(ready.read_text()) == first.directory and first.directory.is_dir()
    registry = Registry(Workspace.open(ws))
    try:
        with pytest.raises(ModelNotFoundError):
            registry.get_version("demo:1")
        assert [mv.version for mv in registry.list_versions("demo")] == [2]
        assert registry.load_model("demo") == {"w": [3, 4]}
    finally:
        registry.close()
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list", "-w", str(ws), "--json"])
    assert listed.exit_code == 0 and '"demo"' in listed.output

    # the next delete removes the orphan too, and the numbers are never reused
    deleted = runner.invoke(app, ["models", "delete", "demo:2", "--force", "-w", str(ws)])
    assert deleted.exit_code == 0, deleted.output
    assert not first.directory.exists()
    assert list((ws / "artifacts" / "demo").iterdir()) == []
    registry = Registry(Workspace.open(ws))
    try:
        assert registry.register_model("demo", {"w": [5]}, kind="test").version == 3
    finally:
        registry.close()
