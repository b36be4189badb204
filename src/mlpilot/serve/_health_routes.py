"""``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, PlainTextResponse

from mlpilot.serve._deps import MetricsDep, ModelsDep, SettingsDep
from mlpilot.serve._middleware import authorized

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Models are loaded",
    description="Ready or not for anyone; with `MLPILOT_API_KEY` set, the served models and versions only "
    "for an authenticated request.",
    responses={503: {"description": "Still loading"}},
)
async def readyz(request: Request, models: ModelsDep, settings: SettingsDep) -> JSONResponse:
    status_code = 200 if models.ready else 503
    body: dict[str, Any] = {"status": "ready" if models.ready else "loading"}
    key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
    if not key or authorized(request.scope, key.encode()):
        body["models"] = {f"{name}@{alias}": v for (name, alias), v in sorted(models.aliases().items())}
    return JSONResponse(body, status_code=status_code)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(metrics: MetricsDep) -> PlainTextResponse:
    return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
