"""``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, PlainTextResponse

from mlpilot.serve._deps import MetricsDep, ModelsDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Models are loaded", responses={503: {"description": "Still loading"}})
async def readyz(models: ModelsDep) -> JSONResponse:
    served = {f"{name}@{alias}": v for (name, alias), v in sorted(models.aliases().items())}
    if not models.ready:
        return JSONResponse({"status": "loading", "models": served}, status_code=503)
    return JSONResponse({"status": "ready", "models": served})


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(metrics: MetricsDep) -> PlainTextResponse:
    return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
