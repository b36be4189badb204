"""Shared resources of the routes, as ``Annotated`` dependencies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError

from mlpilot.monitor import PredictionLog
from mlpilot.registry import Registry
from mlpilot.runtime import ModelCache
from mlpilot.serve._metrics import Metrics
from mlpilot.serve._settings import ServeSettings


# Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread,
# a hop that costs more than the lookup.
async def _settings(request: Request) -> ServeSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def _registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


async def _models(request: Request) -> ModelCache:
    return request.app.state.models  # type: ignore[no-any-return]


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


async def _prediction_log(request: Request) -> Any:
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


# The predict route is the hot path: there FastAPI's dependency and parameter
# machinery costs a sizeable share of a one-row prediction, so it reads
# ``app.state`` and its path itself and validates its two optional pins here,
# with the same rules and the same 422 body as `VersionQuery` and
# `AliasQuery`; these describe its parameters in the OpenAPI document.
_VERSION = TypeAdapter(Annotated[int, Field(ge=1, le=2**31 - 1)])
_ALIAS = TypeAdapter(Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")])
NAME_PARAMETER: dict[str, Any] = {"name": "name", "in": "path", "required": True,
                                  "schema": {"type": "string", "title": "Name"}}
PIN_PARAMETERS: list[dict[str, Any]] = [
    {"name": "version", "in": "query", "required": False, "description": "Pin this version.",
     "schema": {"anyOf": [{"type": "integer", "maximum": 2**31 - 1, "minimum": 1}, {"type": "null"}],
                "title": "Version", "description": "Pin this version."}},
    {"name": "alias", "in": "query", "required": False, "description": "Pin the version this alias points at.",
     "schema": {"anyOf": [{"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_-]{0,63}$"}, {"type": "null"}],
                "title": "Alias", "description": "Pin the version this alias points at."}},
]


def query_pins(request: Request) -> tuple[int | None, str | None]:
    """``?version=`` and ``?alias=`` of ``request``, validated like `VersionQuery` and `AliasQuery`."""
    if not request.scope.get("query_string"):
        return None, None
    params = request.query_params
    errors: list[Any] = []
    pins: list[Any] = []
    for name, adapter in (("version", _VERSION), ("alias", _ALIAS)):
        raw = params.get(name)
        if raw is None:
            pins.append(None)
            continue
        try:
            pins.append(adapter.validate_python(raw))
        except ValidationError as exc:
            errors.extend({**e, "loc": ("query", name, *e["loc"])} for e in exc.errors(include_url=False))
            pins.append(None)
    if errors:
        raise RequestValidationError(errors)
    return pins[0], pins[1]
