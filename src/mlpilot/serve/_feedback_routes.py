"""``POST /v1/models/{name}/feedback``: true labels of logged predictions, joined by request id."""

from __future__ import annotations

from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from mlpilot.exceptions import InvalidParameterError, ResourceLimitError, SchemaValidationError
from mlpilot.monitor import record_feedback
from mlpilot.serve._deps import NAME_PARAMETER
from mlpilot.serve._inputs import parse_json, read_body
from mlpilot.serve._settings import ServeSettings

router = APIRouter(tags=["monitor"])

_REQUEST = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "array",
        "items": {"type": "object", "required": ["request_id", "label"], "properties": {
            "request_id": {"type": "string", "description": "The request_id of the predict answer."},
            "label": {"description": "The true value: one of the model's classes, or a number."},
            "row": {"type": "integer", "minimum": 0, "description": "The row within the request (from 0)."},
        }},
    }}},
}
_ANSWER = {"type": "object", "properties": {
    "accepted": {"type": "integer"},
    "unknown_ids": {"type": "array", "items": {"type": "object"}},
    "duplicates": {"type": "array", "items": {"type": "object"}},
    "wrong_type": {"type": "array", "items": {"type": "object"}},
    "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
    "message": {"type": "string"},
}}


def labels_frame(payload: Any, limit: int) -> pd.DataFrame:
    """The labels of a feedback body (a JSON list of ``{request_id, label[, row]}``), checked in shape.

    Raises
    ------
    InvalidParameterError
        The body is not a list of objects.
    ResourceLimitError
        More than ``limit`` labels.
    SchemaValidationError
        An item lacks ``request_id`` or ``label`` (each such item is named).
    """
    if isinstance(payload, dict) and isinstance(payload.get("labels"), list):
        payload = payload["labels"]
    if not isinstance(payload, list):
        raise InvalidParameterError(
            'The feedback body must be a JSON list such as [{"request_id": "...", "label": "yes"}, ...] '
            f"(optionally with 'row'); got a JSON {type(payload).__name__}."
        )
    if len(payload) > limit:
        raise ResourceLimitError(f"The feedback has {len(payload)} labels; the limit is {limit} per request "
                                 "(MLPILOT_MAX_FEEDBACK_ITEMS). Send them in several requests.")
    if not payload:
        raise InvalidParameterError("The feedback list is empty; send at least one {request_id, label}.")
    problems = []
    for i, item in enumerate(payload):
        if not isinstance(item, dict):
            problems.append(f"item {i} is a {type(item).__name__}, not an object")
        elif "request_id" not in item or "label" not in item:
            missing = " and ".join(k for k in ("request_id", "label") if k not in item)
            problems.append(f"item {i} has no {missing}")
        if len(problems) >= 10:
            break
    if problems:
        raise SchemaValidationError(
            "The feedback items must each be an object with request_id and label (and optionally row): "
            + "; ".join(problems) + ". Nothing was recorded."
        )
    return pd.DataFrame({
        "request_id": pd.Series([item["request_id"] for item in payload], dtype=object),
        "label": pd.Series([item["label"] for item in payload], dtype=object),
        "row": pd.Series([item.get("row") for item in payload], dtype=object),
    })


@router.post(
    "/v1/models/{name}/feedback",
    summary="Send true labels of predictions",
    description=(
        "Send a JSON list of `{\"request_id\": ..., \"label\": ...}` (and `row` for a request of several rows). "
        "The answer says how many were accepted, and which were unknown, duplicates or of the wrong type."
    ),
    openapi_extra={"requestBody": _REQUEST, "parameters": [NAME_PARAMETER]},
    responses={200: {"content": {"application/json": {"schema": _ANSWER}}},
               400: {"description": "Not a JSON list"}, 404: {"description": "No such model"},
               413: {"description": "Body or label count over the limit"},
               422: {"description": "An item without request_id or label"}},
    response_class=JSONResponse,
)
async def feedback(request: Request) -> JSONResponse:
    name: str = request.path_params["name"]
    state = request.app.state
    settings: ServeSettings = state.settings
    headers = request.headers
    body = await read_body(request.stream(), headers.get("content-length"), settings.max_body_bytes,
                           headers.get("content-encoding"))
    labels = labels_frame(parse_json(body), settings.max_feedback_items)

    def work() -> dict[str, Any]:
        state.prediction_log.flush(timeout=2.0)  # this worker's last predictions are on disk, so found
        result = record_feedback(state.registry.workspace, name, labels, registry=state.registry)
        state.registry.log_event("feedback", name, {**result.counts, "source": "api"})
        return result.to_dict()

    return JSONResponse(await run_in_threadpool(work))
