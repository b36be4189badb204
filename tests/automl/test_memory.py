"""Training refuses, before any fit, a table whose working set would not fit this machine's memory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import psutil
import pytest
from typer.testing import CliRunner

import mlpilot
from mlpilot import config_context
from mlpilot.automl._config import TrainConfig
from mlpilot.automl._engine import WORKING_FACTOR, check_fits_memory, frame_bytes
from mlpilot.cli import app
from mlpilot.exceptions import ResourceLimitError
from mlpilot.registry import Registry, Workspace


@pytest.fixture
def rows(churn: pd.DataFrame) -> pd.DataFrame:
    return churn.drop(columns=["rownames"], errors="ignore")


def _fraction(rows: pd.DataFrame, times: float) -> float:
    """The memory_fraction that allows ``times`` the table's frame."""
    return times * frame_bytes(rows) / psutil.virtual_memory().total


def test_the_frame_size_counts_its_strings(rows: pd.DataFrame) -> None:
    size = frame_bytes(rows)
    assert size == pytest.approx(rows.memory_usage(deep=True, index=False).sum(), rel=0.01)  # 5,000 rows: all measured
    big = pd.concat([rows] * 4, ignore_index=True)  # past the sampled rows: scaled from the first ones
    assert frame_bytes(big) == pytest.approx(4 * size, rel=0.05)


def test_the_check_refuses_only_what_does_not_fit(rows: pd.DataFrame) -> None:
    with config_context(memory_fraction=_fraction(rows, WORKING_FACTOR * 1.5)):
        check_fits_memory(rows, TrainConfig())  # fits: no error
    with config_context(memory_fraction=_fraction(rows, WORKING_FACTOR / 2)), pytest.raises(
            ResourceLimitError, match=rf"Training on 5,000 rows .* needs about .* GiB on one machine \(about "
                                      rf"{WORKING_FACTOR}x the table\).*--engine spark"):
        check_fits_memory(rows, TrainConfig())
    # the option of the call wins over the global setting
    with config_context(memory_fraction=_fraction(rows, WORKING_FACTOR / 2)):
        check_fits_memory(rows, TrainConfig(memory_fraction=min(1.0, _fraction(rows, WORKING_FACTOR * 1.5))))


def test_train_refuses_before_anything_is_registered(rows: pd.DataFrame, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with config_context(memory_fraction=_fraction(rows, 4)), pytest.raises(ResourceLimitError, match="--engine spark"):
        mlpilot.train(rows, "churn", name="churn", workspace=ws, deterministic=True, n_trials=0)
    path = tmp_path / "churn.parquet"
    rows.to_parquet(path, index=False)
    with config_context(memory_fraction=_fraction(rows, 4)):  # the file is read (1.5x its size), training refused
        result = CliRunner().invoke(app, ["train", str(path), "--target", "churn", "-w", str(ws), "--deterministic"])
    assert result.exit_code == 2, result.output
    assert "needs about" in result.output and "--engine spark" in result.output
    registry = Registry(Workspace.open(ws))
    try:
        assert registry.list_models() == []
    finally:
        registry.close()
