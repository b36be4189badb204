"""Class labels keep their kind end to end: bool targets predict bools, whole-number floats become ints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpilot.automl import train
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version, score_frame

FAST = {"deterministic": True, "n_trials": 0, "families": ("linear",), "report": False}


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    """scikit-learn's bundled breast cancer table (569 rows), its 0/1 target as ``malignant``."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.iloc[:, :8].copy()
    frame["malignant"] = (bunch.target == 0).astype(np.int64)
    return frame


def test_a_bool_target_predicts_bools_from_the_run_the_registry_and_the_runtime(
    cancer: pd.DataFrame, workspace: Workspace,
) -> None:
    frame = cancer.assign(malignant=cancer["malignant"].astype(bool))
    rows = frame.drop(columns=["malignant"]).head(40)
    run = train(frame, "malignant", name="cancer", workspace=workspace, **FAST)
    assert run.model.classes_.dtype == bool and run.model.classes_.tolist() == [False, True]
    labels = run.model.predict(rows)
    assert labels.dtype == bool and set(labels.tolist()) == {False, True}  # not 0/1, not "True"/"False"
    registry = Registry(workspace)
    try:
        mv = registry.get_version("cancer")
        assert mv.info["classes"] == [False, True] and all(type(c) is bool for c in mv.info["classes"])
        assert mv.info["model_card"]["threshold"]["positive_class"] is True
        assert registry.load_model(mv).predict(rows).tolist() == labels.tolist()
        scored = score_frame(load_version(registry, mv), rows)
    finally:
        registry.close()
    assert all(type(p) is bool for p in scored.predictions) and scored.predictions == labels.tolist()
    assert {"probability_False", "probability_True"} <= set(scored.frame.columns)
    np.testing.assert_allclose(scored.frame["probability_True"], run.model.predict_proba(rows)[:, 1], atol=1e-6)


def test_a_float_target_of_whole_numbers_read_from_parquet_gets_int_classes(
    cancer: pd.DataFrame, workspace: Workspace, tmp_path: Path,
) -> None:
    frame = cancer.assign(malignant=cancer["malignant"].astype(float))
    frame.loc[[3, 50, 200], "malignant"] = np.nan  # an integer column with gaps: Parquet keeps it as doubles
    path = tmp_path / "cancer.parquet"
    frame.to_parquet(path, index=False)
    assert pd.read_parquet(path)["malignant"].dtype == np.float64
    with pytest.warns(Warning, match="target 'malignant' is missing"):
        run = train(str(path), "malignant", name="cancer", workspace=workspace, **FAST)
    assert run.task == "binary"
    assert run.model.classes_.dtype == np.int64 and run.model.classes_.tolist() == [0, 1]
    labels = run.model.predict(frame.drop(columns=["malignant"]).head(40))
    assert labels.dtype == np.int64 and set(labels.tolist()) == {0, 1}
    registry = Registry(workspace)
    try:
        mv = registry.get_version("cancer")
    finally:
        registry.close()
    assert mv.info["classes"] == [0, 1] and all(type(c) is int for c in mv.info["classes"])
    assert mv.info["model_card"]["threshold"]["positive_class"] == 1


def test_a_float_target_with_fractions_stays_float_classes(workspace: Workspace) -> None:
    # edge case: a float target of three levels, one not whole, is classes of floats as given
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = np.select([x < -0.4, x < 0.4], [0.0, 0.5], 1.0)
    run = train(pd.DataFrame({"x": x, "y": y}), "y", task="multiclass", workspace=workspace, register=False,
                **FAST)
    assert run.model.classes_.tolist() == [0.0, 0.5, 1.0]
    assert {type(c) for c in run.model.classes_} == {float}
