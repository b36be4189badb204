"""A minimal BentoML service around the same fitted pipeline (run in bench/.venv-serving/bentoml)."""

from __future__ import annotations

import os
from typing import Any

import bentoml
import joblib
import pandas as pd


@bentoml.service(workers=1)
class Churn:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL_PATH"])

    @bentoml.api
    def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        frame = pd.DataFrame(rows)
        proba = self.model.predict_proba(frame)
        labels = self.model.classes_[proba.argmax(axis=1)]
        return {"predictions": labels.tolist(), "probabilities": proba.tolist()}
