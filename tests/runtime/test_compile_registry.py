"""The compiler knows what it compiles by class (a registry), never by a class's name."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from mlpilot.data import infer_schema
from mlpilot.registry import Registry
from mlpilot.runtime import load_version, register_final
from mlpilot.runtime._compile import compile_model
from mlpilot.runtime._compile_final import _FINALS, LinearFinal
from mlpilot.runtime._compile_steps import CompileError
from tests.serve.conftest import register_churn


class TabularEnsemble:
    """Not mlpilot's ensemble: the same name and an mlpilot module, as a string check would accept."""

    __module__ = "mlpilot.search._ensemble"

    def __init__(self) -> None:
        self.members_: list[Any] = []
        self.weights_: list[float] = []
        self.task = "binary"
        self.classes_ = np.array(["no", "yes"], dtype=object)

    def predict(self, X: Any) -> Any:
        return np.full(len(X), "no", dtype=object)


class TunedLogistic(LogisticRegression):
    """A subclass the compiler does not know until it is registered."""


def test_a_class_named_like_mlpilots_ensemble_is_not_compiled_as_one(churn_frame: pd.DataFrame) -> None:
    schema = infer_schema(churn_frame, target="churn")
    with pytest.raises(CompileError):
        compile_model(TabularEnsemble(), schema, with_proba=True)


def test_a_registered_final_estimator_class_is_compiled_and_verified(
    registry: Registry, churn_frame: pd.DataFrame, churn_pipeline: Pipeline, rows: list[dict[str, Any]],
) -> None:
    model = TunedLogistic(max_iter=2000)
    pipeline = Pipeline([("pre", churn_pipeline.named_steps["pre"]), ("model", model)])
    X, y = churn_frame.drop(columns=["churn"]), churn_frame["churn"]
    model.fit(churn_pipeline.named_steps["pre"].transform(X), y)
    before = load_version(registry, register_churn(registry, churn_frame, pipeline))
    assert before.compiled is None and "TunedLogistic" in before.fast_path
    register_final(TunedLogistic, lambda estimator, classifier: LinearFinal(estimator, classifier=classifier))
    try:
        after = load_version(registry, register_churn(registry, churn_frame, pipeline))
    finally:
        _FINALS.pop(TunedLogistic, None)
    assert after.compiled is not None, after.fast_path
    assert after.fast_path.startswith("compiled:") and "LinearFinal" in after.fast_path
    _labels, proba = after.compiled.predict(rows, len(rows))
    np.testing.assert_allclose(proba, pipeline.predict_proba(pd.DataFrame(rows)), rtol=1e-9)
