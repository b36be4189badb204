"""Shared resources of the routes, as ``Annotated`` dependencies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request

from mlpilot.monitor import PredictionLog
from mlpilot.registry import Registry
from mlpilot.serve._metrics import Metrics
from mlpilot.serve._models import ModelCache
from mlpilot.serve._settings import ServeSettings


def _settings(request: Request) -> ServeSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


def _models(request: Request) -> ModelCache:
    return request.app.state.models  # type: ignore[no-any-return]


def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


def _prediction_log(request: Request) -> Any:
    return request.app.state.prediction_log


SettingsDep = Annotated[ServeSettings, Depends(_settings)]
RegistryDep = Annotated[Registry, Depends(_registry)]
ModelsDep = Annotated[ModelCache, Depends(_models)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
PredictionLogDep = Annotated[PredictionLog, Depends(_prediction_log)]
VersionQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Pin this version.")]
AliasQuery = Annotated[
    str | None,
    Query(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", description="Pin the version this alias points at."),
]
