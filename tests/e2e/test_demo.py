"""The whole flow as `make demo` runs it: ingest, profile, train, register, serve, query."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlpilot.registry import Registry, Workspace


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "mlpilot", "demo", "--time-budget", "8", "--workspace", str(ws)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "5,000 rows, 21 columns" in out
    predictions = re.findall(r"row\s+\d+: predicted\s+(yes|no) \(no: ([0-9.]+), yes: ([0-9.]+)\)\s+actual (yes|no)", out)
    assert len(predictions) == 5
    for _, p_no, p_yes, _ in predictions:
        assert abs(float(p_no) + float(p_yes) - 1.0) < 2e-3
    assert "mlpilot serve" in out
    registry = Registry(Workspace.open(ws))
    champion = registry.get_version("churn@champion")
    assert champion.kind == "tabular"
    assert champion.dataset_id is not None
    assert registry.get_dataset(champion.dataset_id) is not None
