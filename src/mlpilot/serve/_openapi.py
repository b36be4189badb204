"""The OpenAPI document, with a request schema generated from each model's data schema."""

from __future__ import annotations

import copy
import logging
import re
import time
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mlpilot.data import ColumnSchema, Schema

logger = logging.getLogger(__name__)

_JSON_TYPES = {"integer": "number", "float": "number", "boolean": "boolean", "string": "string", "datetime": "string"}
_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_CACHE_SECONDS = 5.0


def feature_property(col: ColumnSchema) -> dict[str, Any]:
    """JSON schema of one input feature (null is accepted: the pipeline imputes it)."""
    prop: dict[str, Any] = {"type": [_JSON_TYPES.get(col.dtype, "string"), "null"], "title": col.name}
    notes = [f"{col.role} ({col.dtype})"]
    if col.dtype == "datetime":
        prop["format"] = "date-time"
    if col.categories:
        prop["examples"] = list(col.categories[:20])
        shown = ", ".join(col.categories[:20]) + (" ..." if len(col.categories) > 20 else "")
        notes.append(f"categories seen in training: {shown}; others are accepted and flagged")
    if col.minimum is not None and col.maximum is not None:
        notes.append(f"training range [{col.minimum:g}, {col.maximum:g}]")
        prop["examples"] = [col.minimum, col.maximum]
    prop["description"] = "; ".join(notes)
    return prop


def _component(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def model_components(name: str, schema: Schema, max_rows: int) -> dict[str, Any]:
    row_name = f"{_component(name)}Row"
    row = {
        "type": "object",
        "title": row_name,
        "description": f"One input row of model {name!r}; unknown fields are ignored with a warning.",
        "properties": {c.name: feature_property(c) for c in schema.features},
        "required": schema.feature_names,
    }
    request = {
        "type": "object",
        "title": f"{_component(name)}PredictRequest",
        "properties": {
            "rows": {"type": "array", "items": {"$ref": f"#/components/schemas/{row_name}"},
                     "minItems": 1, "maxItems": max_rows},
            "columns": {"type": "object", "description": "Column-oriented form: each feature to a list of values.",
                        "additionalProperties": {"type": "array", "items": _SCALAR}},
        },
    }
    return {row_name: row, f"{_component(name)}PredictRequest": request}


GENERIC = {
    "PredictRequest": {
        "type": "object",
        "title": "PredictRequest",
        "description": 'Exactly one of "rows" or "columns".',
        "properties": {
            "rows": {"type": "array", "minItems": 1,
                     "items": {"type": "object", "additionalProperties": _SCALAR}},
            "columns": {"type": "object", "additionalProperties": {"type": "array", "items": _SCALAR}},
        },
    },
    "PredictResponse": {
        "type": "object",
        "title": "PredictResponse",
        "required": ["model", "version", "predictions"],
        "properties": {
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "request_id": {"type": "string", "description": "Also the X-Request-ID header; send it with feedback."},
            "predictions": {"type": "array", "items": {}},
            "probabilities": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "number"}}},
            "explanations": {
                "type": "array",
                "description": "With ?explain=true: per row, contributions that add up with base_value to output.",
                "items": {"type": "object", "properties": {
                    "contributions": {"type": "object"}, "base_value": {}, "output": {},
                    "space": {"type": "string", "examples": ["log_odds", "raw_score", "prediction", "probability"]},
                    "method": {"type": "string"}, "exact": {"type": "boolean"}}},
            },
            "warnings": {
                "type": "array",
                "description": "Inputs unlike the training data; the predictions are still given.",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": ["string", "null"]},
                        "kind": {"type": "string", "examples": [
                            "out_of_range", "missing_value", "unseen_category", "extra_column"]},
                        "message": {"type": "string"},
                        "rows": {"type": "array", "items": {"type": "integer"},
                                 "description": "Rows concerned (from 0; the first 100)."},
                    },
                },
            },
        },
    },
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """Generate (and cache for a few seconds) the OpenAPI document with per-model schemas."""
    cached = getattr(app.state, "openapi_cache", None)
    models = app.state.models
    if cached is not None and cached[0] == models.generation and time.monotonic() - cached[1] < _CACHE_SECONDS:
        return cached[2]  # type: ignore[no-any-return]
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.update(copy.deepcopy(GENERIC))
    settings = app.state.settings
    template = doc["paths"].get("/v1/models/{name}/predict", {}).get("post")
    try:
        summaries = app.state.registry.list_models()
    except Exception:
        logger.exception("could not list models for the OpenAPI document")
        summaries = []
    for summary in summaries:
        try:
            mv = app.state.registry.get_version(summary.name)
        except Exception:
            continue
        if not mv.schema or template is None:
            continue
        schema = Schema.from_dict(mv.schema)
        comps = model_components(summary.name, schema, settings.max_rows)
        components.update(comps)
        operation = copy.deepcopy(template)
        operation["operationId"] = f"predict_{_component(summary.name)}"
        operation["summary"] = f"Predict with {summary.name}"
        operation["parameters"] = [p for p in operation.get("parameters", []) if p.get("name") != "name"]
        request_ref = f"#/components/schemas/{_component(summary.name)}PredictRequest"
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": request_ref}}}}
        doc["paths"][f"/v1/models/{summary.name}/predict"] = {"post": operation}
    if settings.api_key is not None:
        components_root = doc["components"]
        components_root["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    app.state.openapi_cache = (models.generation, time.monotonic(), doc)
    return doc
