"""Public names of the serve, runtime and monitor packages."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["mlpilot.serve", "mlpilot.runtime", "mlpilot.monitor", "mlpilot.client"])
def test_all_matches_public_names(package: str) -> None:
    module = importlib.import_module(package)
    public = {n for n in vars(module) if not n.startswith("_") and getattr(getattr(module, n), "__module__", "").startswith(package)}
    assert set(module.__all__) >= public - {"annotations"}
    for name in module.__all__:
        assert hasattr(module, name)


def test_client_is_exported_lazily() -> None:
    import mlpilot

    assert mlpilot.Client.__module__ == "mlpilot.client"
