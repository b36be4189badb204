"""A real model to serve: a scikit-learn pipeline trained on the mlc_churn table."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlpilot.data import infer_schema
from mlpilot.registry import ModelVersion, Registry
from mlpilot.serve import ServeSettings, create_app

with warnings.catch_warnings():
    # Starlette asks for its httpx fork 'httpx2'; until the dev extra has it, plain httpx works.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="session")
def churn_frame(churn: pd.DataFrame) -> pd.DataFrame:
    return churn.drop(columns=["rownames"])


def fit_churn_pipeline(frame: pd.DataFrame, C: float = 1.0) -> Pipeline:
    X, y = frame.drop(columns=["churn"]), frame["churn"]
    categorical = [c for c in X.columns if X[c].dtype == object or pd.api.types.is_string_dtype(X[c])]
    numeric = [c for c in X.columns if c not in categorical]
    pre = ColumnTransformer(
        [
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), categorical),
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        ]
    )
    return Pipeline([("pre", pre), ("model", LogisticRegression(C=C, max_iter=2000))]).fit(X, y)


@pytest.fixture(scope="session")
def churn_pipeline(churn_frame: pd.DataFrame) -> Pipeline:
    return fit_churn_pipeline(churn_frame)


def register_churn(registry: Registry, frame: pd.DataFrame, model: Any, *, aliases: tuple[str, ...] = ("champion",),
                   name: str = "churn") -> ModelVersion:
    schema = infer_schema(frame, target="churn")
    return registry.register_model(
        name,
        model,
        kind="tabular",
        metrics={"roc_auc": {"value": 0.83, "ci_low": 0.80, "ci_high": 0.86}, "accuracy": 0.87},
        headline_metric="accuracy",
        schema=schema.to_dict(),
        info={
            "task": "binary",
            "target": "churn",
            "classes": ["no", "yes"],
            "leaderboard": [
                {"model": "logistic_regression", "roc_auc": 0.83, "fit_seconds": 0.4},
                {"model": "dummy", "roc_auc": 0.5, "fit_seconds": 0.0},
            ],
            "model_card": {"intended_use": "Demo churn model for tests.", "training_rows": len(frame)},
        },
        files={"report.html": b"<!doctype html><h1>Evaluation report</h1>"},
        aliases=aliases,
    )


@pytest.fixture
def churn_model(registry: Registry, churn_frame: pd.DataFrame, churn_pipeline: Pipeline) -> ModelVersion:
    return register_churn(registry, churn_frame, churn_pipeline)


@pytest.fixture
def settings(registry: Registry) -> ServeSettings:
    return ServeSettings(home=registry.workspace.root, poll_interval=0.1, log_flush_interval=0.05)


@pytest.fixture
def app(settings: ServeSettings, registry: Registry, churn_model: ModelVersion) -> FastAPI:
    return create_app(settings, registry=registry)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def rows(churn_frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Five real input rows as JSON objects."""
    return churn_frame.drop(columns=["churn"]).head(5).to_dict("records")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on 127.0.0.1 in a thread; yield its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
