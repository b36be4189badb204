"""Save the fitted pipeline as an MLflow model (run in bench/.venv-serving/mlflow)."""

from __future__ import annotations

import shutil
import sys

import joblib
import mlflow.sklearn
import pandas as pd

model_path, out_dir, sample_path = sys.argv[1:4]
model = joblib.load(model_path)
sample = pd.read_json(sample_path, orient="records")
shutil.rmtree(out_dir, ignore_errors=True)
signature = mlflow.models.infer_signature(sample, model.predict(sample))
mlflow.sklearn.save_model(
    model, out_dir, signature=signature, pyfunc_predict_fn="predict_proba", serialization_format="cloudpickle"
)
print("saved", out_dir)
