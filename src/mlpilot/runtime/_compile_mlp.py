"""The compiled MLP: scikit-learn's multi-layer perceptron as numpy matrix products and activations.

`MLPForward` computes what ``MLPClassifier.predict_proba`` / ``MLPRegressor.predict``
compute on the encoded matrix (the same forward pass: each hidden layer's
affine map and activation, then the output activation), without the input
checks that dominate a one-row call. Like every compiled form it is verified
against the model at load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlpilot.runtime._compile_steps import CompileError, RejectedInput


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def _activations() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    from scipy.special import expit

    return {"relu": _relu, "tanh": np.tanh, "logistic": expit, "identity": lambda x: x}


class MLPForward:
    """An ``MLPClassifier`` / ``MLPRegressor``'s forward pass through its weight matrices."""

    def __init__(self, estimator: Any, *, classifier: bool) -> None:
        from sklearn.utils.extmath import softmax

        activations = _activations()
        hidden, out = estimator.activation, estimator.out_activation_
        if hidden not in activations or out not in (*activations, "softmax"):
            raise CompileError(f"an MLP with activations {hidden!r} / {out!r}")
        self.coefs = [np.asarray(c, dtype=float) for c in estimator.coefs_]
        self.intercepts = [np.asarray(b, dtype=float) for b in estimator.intercepts_]
        self.hidden = activations[hidden]
        self.out = out
        self.output = softmax if out == "softmax" else activations[out]
        self.classifier = classifier
        self.n_features = int(self.coefs[0].shape[0])

    def values(self, X: np.ndarray) -> np.ndarray:
        if not np.isfinite(X).all():
            raise RejectedInput("an MLP does not accept missing values")
        layer = np.asarray(X, dtype=float)
        last = len(self.coefs) - 1
        for i, (coef, intercept) in enumerate(zip(self.coefs, self.intercepts, strict=True)):
            layer = layer @ coef  # scikit-learn's order: the product, then the intercept added in place
            layer += intercept
            if i < last:
                layer = self.hidden(layer)
        layer = np.asarray(self.output(layer), dtype=float)
        if not self.classifier:
            return layer.reshape(-1)
        if layer.shape[1] == 1:  # two classes: the second one's probability
            prob = layer.reshape(-1)
            out = np.empty((prob.shape[0], 2))
            np.subtract(1.0, prob, out=out[:, 0])
            out[:, 1] = prob
            return out
        return layer
