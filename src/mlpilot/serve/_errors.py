"""One place that turns exceptions into HTTP responses.

An `MlpilotError` answers with its ``status_code`` and message (and, for schema
problems, each problem's field, kind and rows). Anything else is a bug: it is
logged with its traceback and the client gets a 500 without one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from mlpilot.exceptions import MlpilotError, SchemaValidationError
from mlpilot.runtime import problem_dict

logger = logging.getLogger(__name__)


def error_body(exc: MlpilotError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": type(exc).__name__, "detail": str(exc)}
    if isinstance(exc, SchemaValidationError):
        body["problems"] = [problem_dict(p) for p in exc.problems]
    return body


async def _mlpilot_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MlpilotError)
    if exc.status_code >= 500:
        logger.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    return JSONResponse(error_body(exc), status_code=exc.status_code)


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        location = ".".join(str(p) for p in err.get("loc", ()))
        problems.append({"field": location, "kind": err.get("type"), "message": f"{location}: {err.get('msg')}", "rows": []})
    detail = "; ".join(p["message"] for p in problems) or "The request is not valid."
    return JSONResponse({"error": "RequestValidationError", "detail": detail, "problems": problems}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"error": "HTTPError", "detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"error": "InternalServerError", "detail": "The server failed on this request; the error is in its log."},
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MlpilotError, _mlpilot_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
