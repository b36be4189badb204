"""ONNX export of CatBoost (categorical CTR splits included) and XGBoost members, in mlpilot's ensembles."""

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
from tests._sharing import once_per_run
from tests.export.conftest import ensemble, onnx_outputs, runtime_outputs


@pytest.fixture(scope="module")
@once_per_run
def tree_registry(tmp_path_factory: pytest.TempPathFactory, churn_rows: pd.DataFrame) -> Iterator[Registry]:
    """``trees``: CatBoost + XGBoost + linear at a threshold of 0.35 (the demo champion is CatBoost + linear)."""
    schema = infer_schema(churn_rows, target="churn")
    X = churn_rows.drop(columns=["churn"])
    y = (churn_rows["churn"] == "yes").to_numpy(dtype=int)
    roles = {c.name: c.role for c in schema.features}
    registry = Registry(Workspace.open(tmp_path_factory.mktemp("trees") / "ws"))
    info = {"task": "binary", "target": "churn", "classes": ["no", "yes"]}
    model = ensemble(X, y, roles, ("catboost", "xgboost", "linear"), 0.35)
    registry.register_model("trees", model, kind="tabular", schema=schema.to_dict(), metrics={"accuracy": 0.9},
                            headline_metric="accuracy", info=info, aliases=("champion",))
    yield registry
    registry.close()


def test_catboost_and_xgboost_members_export_and_predict_what_the_runtime_does(
        tree_registry: Registry, churn: pd.DataFrame, tmp_path: Path) -> None:
    name = "trees"
    result = export_model(tree_registry, name, "onnx", tmp_path / name)
    assert result.details["verified_rows"] > 100
    frame = churn.drop(columns=["rownames", "churn"]).iloc[800:2300].reset_index(drop=True)  # rows never trained on
    frame.loc[::7, "total_day_minutes"] = np.nan
    frame.loc[::5, "state"] = None  # missing categories reach the CTR tables' missing state
    frame.loc[3::9, "area_code"] = "area_code_999"  # and an unseen one
    schema = Schema.from_dict(tree_registry.get_version(name).schema or {})
    want = runtime_outputs(tree_registry, name, frame)
    got = onnx_outputs(tmp_path / name / "model.onnx", frame, schema)
    labels, proba = got["label"], got["probabilities"]
    np.testing.assert_allclose(proba, want[["probability_no", "probability_yes"]].to_numpy(), rtol=0, atol=ATOL)
    assert list(labels) == list(want["prediction"]) and len(set(labels)) == 2
    between = (proba[:, 1] >= 0.35) & (proba[:, 1] < 0.5)
    assert between.any() and set(labels[between]) == {"yes"}  # labelled at the model's threshold


def test_a_catboost_member_with_split_less_trees_exports(churn_rows: pd.DataFrame, tmp_path: Path) -> None:
    """Deep trees on few rows (``catboost_deep``'s settings on 300 churn rows) leave some trees without a
    split, which CatBoost stores as ``"splits": null``: the export once failed on them."""
    import json

    rows = churn_rows.iloc[:300]
    schema = infer_schema(rows, target="churn")
    X, y = rows.drop(columns=["churn"]), (rows["churn"] == "yes").to_numpy(dtype=int)
    deep = {"catboost": {"n_estimators": 300, "depth": 8, "learning_rate": 0.05, "l2_leaf_reg": 5.0}}
    model = ensemble(X, y, {c.name: c.role for c in schema.features}, ("catboost",), params=deep)
    booster = model.members[0][1].estimator_
    booster.save_model(str(tmp_path / "cb.json"), format="json")
    trees = json.loads((tmp_path / "cb.json").read_text())["oblivious_trees"]
    assert any(not tree.get("splits") for tree in trees), "the premise: some trees have no split"
    registry = Registry(Workspace.open(tmp_path / "ws"))
    registry.register_model("deep", model, kind="tabular", schema=schema.to_dict(), metrics={"accuracy": 0.9},
                            headline_metric="accuracy", info={"task": "binary", "target": "churn",
                                                              "classes": ["no", "yes"]}, aliases=("champion",))
    result = export_model(registry, "deep", "onnx", tmp_path / "deep")
    assert result.details["verified_rows"] > 100
    frame = X.iloc[:50].reset_index(drop=True)
    want = runtime_outputs(registry, "deep", frame)
    got = onnx_outputs(tmp_path / "deep" / "model.onnx", frame, Schema.from_dict(schema.to_dict()))
    np.testing.assert_allclose(got["probabilities"], want[["probability_no", "probability_yes"]].to_numpy(),
                               rtol=0, atol=ATOL)
    registry.close()
