"""The compiler learns how a `Learner` predicts from its ``prediction_parts()`` hook, not from its family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_wine

from mlpilot.runtime._compile_final import LearnerFinal, LinearFinal
from mlpilot.search import FAMILIES, Learner, PredictionParts
from mlpilot.search._families import Linear


@pytest.fixture(scope="module")
def wine() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_wine(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


@dataclass(frozen=True)
class _Opaque(Linear):
    """A linear family that tells the compiler nothing: only ``predict_values`` predicts."""

    def prediction_parts(self, learner: Any) -> PredictionParts:
        return PredictionParts(None, None, int(learner.n_classes))


def test_the_hook_decides_what_is_compiled(wine: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = wine
    # class 1 is never seen: the compiled probabilities are spread over the hook's class codes
    seen = y != 1
    learner = Learner(family="linear", task="multiclass", n_classes=3).fit(X[seen], y[seen])
    final = LearnerFinal(learner)
    assert isinstance(final.inner, LinearFinal) and final.fast
    np.testing.assert_allclose(final.values(X), learner.predict_values(X), rtol=0, atol=1e-12)
    assert not final.values(X)[:, 1].any()

    monkeypatch.setitem(FAMILIES, "linear", _Opaque())
    opaque = LearnerFinal(learner)
    assert opaque.inner is None and not opaque.fast  # the general path, on the encoded matrix
    np.testing.assert_array_equal(opaque.values(X), learner.predict_values(X))


def test_families_without_a_compiled_form_predict_through_the_learner(wine: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = wine
    learner = Learner(family="hist_gradient_boosting", task="multiclass", n_classes=3, params={"n_estimators": 5},
                      n_jobs=1).fit(X, y)
    parts = learner.prediction_parts()
    assert parts.estimator is None and parts.classes is not None and parts.classes.tolist() == [0, 1, 2]
    final = LearnerFinal(learner)
    assert final.inner is None and not final.fast
    np.testing.assert_array_equal(final.values(X[:3]), learner.predict_values(X[:3]))
