"""Each package's __all__ names exactly its public members, and they all exist."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import mlpilot

PACKAGES = sorted(
    name for _, name, is_pkg in pkgutil.iter_modules(mlpilot.__path__, "mlpilot.") if is_pkg
)


@pytest.mark.parametrize("package", ["mlpilot", *PACKAGES])
def test_all_names_exist(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", [])
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == []
    public = {n for n in vars(module) if not n.startswith("_")} - {"annotations"}
    submodules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
    if package != "mlpilot" and exported:
        assert public - submodules <= set(exported) | {"logger"}


def test_import_has_no_side_effects() -> None:
    import subprocess
    import sys

    code = (
        "import os, logging, warnings, sys; before=dict(os.environ); "
        "warnings.simplefilter('error'); import mlpilot; "
        "assert dict(os.environ)==before; assert logging.getLogger().handlers==[]; "
        "assert 'sklearn' not in sys.modules and 'lightgbm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
