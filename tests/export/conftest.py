"""A registry of real models to export: an ensemble of LightGBM and a linear model, as `mlpilot train` builds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpilot.data import Schema, infer_schema
from mlpilot.features import TabularPreprocessor
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version, score_frame
from mlpilot.search import Learner, TabularEnsemble
from tests._sharing import once_per_run

CLASSES = ["no", "yes"]


def ensemble(X: pd.DataFrame, y: np.ndarray, roles: dict[str, str], families: tuple[str, ...],
             threshold: float | None = None, *, task: str = "binary",
             classes: list[Any] | None = CLASSES,
             params: dict[str, dict[str, Any]] | None = None) -> TabularEnsemble:
    """Members fitted in deterministic mode on ``X, y`` (class codes, or values for regression), weighted."""
    members = []
    encodings = {"lightgbm": "ordinal", "catboost": "ordinal", "xgboost": "ordinal", "linear": "onehot",
                 "knn": "onehot"}
    params = {"lightgbm": {"n_estimators": 30, "num_leaves": 15}, "catboost": {"n_estimators": 40, "depth": 4},
              "xgboost": {"n_estimators": 30, "max_depth": 4}, "linear": {}, "knn": {}} | (params or {})
    for family in families:
        pre = TabularPreprocessor(encoding=encodings[family], roles=roles, random_state=0)
        Xt = pre.fit_transform(X, y)
        learner = Learner(family=family, task=task, params=params[family], n_classes=len(classes or [0, 1]),
                          categorical_indices=tuple(pre.categorical_indices_), deterministic=True, n_jobs=1)
        members.append((pre, learner.fit(Xt, y)))
    weights = {1: [1.0], 2: [0.7, 0.3], 3: [0.5, 0.3, 0.2]}[len(families)]
    return TabularEnsemble(task=task, members=members, weights=weights, names=list(families),
                           classes=classes, feature_names=list(X.columns), threshold=threshold).fit()


@pytest.fixture(scope="session")
def churn_rows(churn: pd.DataFrame) -> pd.DataFrame:
    return churn.drop(columns=["rownames"]).iloc[:800].reset_index(drop=True)


@pytest.fixture(scope="session")
@once_per_run
def export_registry(tmp_path_factory: pytest.TempPathFactory, churn_rows: pd.DataFrame) -> Iterator[Registry]:
    """``churn`` (LightGBM + linear ensemble at a decision threshold of 0.3, as `train` makes binary
    models, champion), ``churn_knn`` and a recommender ``rec``."""
    schema = infer_schema(churn_rows, target="churn")
    X = churn_rows.drop(columns=["churn"])
    y = (churn_rows["churn"] == "yes").to_numpy(dtype=int)
    roles = {c.name: c.role for c in schema.features}
    registry = Registry(Workspace.open(tmp_path_factory.mktemp("export") / "ws"))
    info = {"task": "binary", "target": "churn", "classes": CLASSES}
    for name, families in (("churn", ("lightgbm", "linear")), ("churn_knn", ("knn",))):
        threshold = 0.3 if name == "churn" else None
        registry.register_model(name, ensemble(X, y, roles, families, threshold), kind="tabular", schema=schema.to_dict(),
                                metrics={"accuracy": 0.9}, headline_metric="accuracy", info=info,
                                aliases=("champion",))
    registry.register_model("rec", {"items": [1, 2]}, kind="recommender")
    yield registry
    registry.close()


@pytest.fixture(scope="session")
def workspace_root(export_registry: Registry) -> Path:
    return export_registry.workspace.root


def onnx_outputs(path: Path, frame: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray]:
    """Every output of the ONNX model at ``path`` on the rows of ``frame`` (missing values as None)."""
    import onnxruntime as ort

    from mlpilot.export._onnx import feeds

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    values = session.run(None, feeds(rows, schema, names))
    return dict(zip([o.name for o in session.get_outputs()], values, strict=True))


def runtime_outputs(registry: Registry, ref: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The registered model's own answer (its full pipeline, not the fast path) for ``frame``."""
    loaded = load_version(registry, registry.get_version(ref), fast_path=False)
    return score_frame(loaded, frame).frame.iloc[:, frame.shape[1]:].reset_index(drop=True)
