"""A registered stack read back from the registry and scored by both serving paths (stacking tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import LoadedModel, load_version, score_compiled, score_frame


def load_stacked(root: Path, name: str) -> tuple[list[dict[str, Any]], LoadedModel]:
    """``name``'s ``stacking`` registry events and its version 1 as the server loads it."""
    registry = Registry(Workspace.open(root))
    try:
        events = registry.list_events(name=name, kind="stacking")
        return events, load_version(registry, registry.get_version(f"{name}:1"))
    finally:
        registry.close()


def assert_served_alike(loaded: LoadedModel, model: Any, rows: pd.DataFrame) -> None:
    """The library path gives the model's labels; the compiled path its labels and probabilities."""
    expected = model.predict(rows)
    assert score_frame(loaded, rows).predictions == expected.tolist()
    fast = score_compiled(loaded, rows.to_dict("records"), len(rows))
    assert fast is not None and fast[0] == expected.tolist()
    np.testing.assert_allclose(np.asarray(fast[1]), model.predict_proba(rows), atol=1e-6)  # the compiled rounding
