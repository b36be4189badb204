"""Without pyspark, every Spark entry point names the extra to install (exit code 2 on the CLI)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.exceptions import MissingDependencyError

runner = CliRunner()


def test_without_pyspark_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlpilot.spark import SparkExecutor, get_session

    monkeypatch.setitem(sys.modules, "pyspark", None)  # what an install without the extra gives: ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'mlpilot\[spark\]'"):
        get_session()
    with pytest.raises(MissingDependencyError, match="SparkExecutor"):
        SparkExecutor()
    result = runner.invoke(app, ["profile", str(tmp_path), "--engine", "spark", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 2 and "pip install 'mlpilot[spark]'" in result.output


def test_an_unknown_engine_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["profile", str(tmp_path), "--engine", "dask"])
    assert result.exit_code == 2 and "Unknown --engine 'dask'. Accepted: local, spark." in result.output
