"""A bundle installed into a fresh virtual environment serves the model without the workspace it came from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.registry import Registry
from mlpilot.runtime import load_version, predict_payload
from tests.serve.conftest import free_port

pytestmark = [pytest.mark.xdist_group("export_venv")]


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.mark.slow  # a fresh virtual environment, an install and a server: its group is queued early (tests/_sharing.py)
@pytest.mark.timeout(240)
def test_bundle_installs_in_a_fresh_venv_and_serves(export_registry: Registry, churn_rows: pd.DataFrame,
                                                    tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["export", "churn", "--format", "bundle", "-o", str(bundle),
                                      "-w", str(export_registry.workspace.root)])
    assert result.exit_code == 0, result.output
    assert "pip install -r requirements.txt" in (bundle / "README.md").read_text()
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv is not None, "uv (in the dev extra) makes the fresh environment"
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MLPILOT_HOME")}
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env, timeout=60)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), "-r", "requirements.txt"],
                   cwd=bundle, check=True, env=env, timeout=180)
    # the fresh environment has no mlpilot of its own: the bundle's lib/ is what serves
    assert subprocess.run([python, "-c", "import mlpilot"], env=env, cwd=tmp_path).returncode != 0

    port = free_port()
    server = subprocess.Popen([python, "serve.py", "--host", "127.0.0.1", "--port", str(port), "--log-level",
                               "warning"], cwd=bundle, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rows = churn_rows.drop(columns=["churn"]).head(5).to_dict("records")
    try:
        url = f"http://127.0.0.1:{port}/v1/models/churn/predict"
        deadline = time.monotonic() + 90
        while True:
            try:
                answer = _post(url, {"rows": rows})
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.communicate(timeout=5)[0].decode()[-2000:]) from None
                time.sleep(0.3)
    finally:
        server.kill()
        server.wait(30)
    expected, _prepared, _labels = predict_payload(load_version(export_registry, export_registry.get_version("churn")),
                                                   {"rows": rows}, 100)
    assert answer["predictions"] == expected["predictions"]
    assert answer["probabilities"] == expected["probabilities"]
