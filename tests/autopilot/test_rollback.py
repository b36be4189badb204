"""The live check behind a rollback compares classes by value: an old champion's 0.0/1.0 are a new one's 0/1."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpilot.automl import train
from mlpilot.automl._promote import ROWS_FILE
from mlpilot.autopilot._rollback import _score_logged, live_check
from mlpilot.autopilot._shadow import logged_scores
from mlpilot.autopilot._timecut import encode_target
from mlpilot.registry import ModelVersion, Registry, Workspace

FAST: dict[str, Any] = {"deterministic": True, "n_trials": 0, "families": ("linear",), "report": False}


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    """scikit-learn's bundled breast cancer table, shuffled, its 0/1 target as floats (as from Parquet with gaps)."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame = frame.iloc[:, [0, 1, 2, 3, 6, 7, 20, 21, 22, 27, 30]]
    return frame.assign(target=frame["target"].astype(float))


def _float_class_copy(registry: Registry, mv: ModelVersion) -> ModelVersion:
    """``mv`` registered again as a model trained before float targets became ints: its classes 0.0 and 1.0."""
    model = registry.load_model(mv)
    model.classes_ = model.classes_.astype(float)
    files = {ROWS_FILE: registry.read_file(mv, ROWS_FILE)}
    return registry.register_model(mv.name, model, kind="tabular", schema=mv.schema, files=files,
                                   info={**mv.info, "classes": [0.0, 1.0]})


def test_a_champion_of_float_classes_is_checked_against_one_of_int_classes(
    cancer: pd.DataFrame, workspace: Workspace,
) -> None:
    train(cancer.iloc[:300], "target", name="bc", workspace=workspace, **FAST)
    registry = Registry(workspace)
    try:
        new = registry.get_version("bc:1")
        old = _float_class_copy(registry, new)
        assert new.info["classes"] == [0, 1] and old.info["classes"] == [0.0, 1.0]
        check = live_check(registry, "bc", cancer, new, old)
        rows = cancer.iloc[400:460].drop(columns=["target"]).reset_index(drop=True)
        old_proba = _score_logged(registry, old, rows, "binary", [0, 1])
        new_proba = _score_logged(registry, new, rows, "binary", [0, 1])
        reversed_proba = _score_logged(registry, old, rows, "binary", [1, 0])
    finally:
        registry.close()
    # every fresh row counts (a label 1.0 is the class 1), and the same model scores the same in either form
    assert check["rows"] == len(cancer) - 300 and check["rollback"] is False, check
    assert check["new"] == pytest.approx(check["old"], abs=1e-12)
    np.testing.assert_allclose(old_proba, new_proba, atol=1e-12)
    np.testing.assert_allclose(reversed_proba, new_proba[:, ::-1], atol=1e-12)
    assert np.allclose(new_proba.sum(axis=1), 1) and 0 < new_proba[:, 1].mean() < 1


def test_labels_and_logged_probabilities_match_the_classes_by_value() -> None:
    known, codes = encode_target(pd.Series([0.0, 1.0, 1.0, 2.0]), [0, 1])
    assert known.tolist() == [True, True, True, False] and codes.tolist() == [0, 1, 1]
    logged = pd.DataFrame({"label": [1.0, 0, "1", 7],
                           "probabilities": [{"0.0": 0.2, "1.0": 0.8}, {"0": 0.9, "1": 0.1}, [0.3, 0.7], [0.5, 0.5]]})
    y, proba, kept = logged_scores(logged, "binary", [0, 1])
    assert kept.tolist() == [True, True, True, False] and y.tolist() == [1, 0, 1]
    np.testing.assert_allclose(proba, [[0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
