"""``POST /v1/models/{name}/predict`` (JSON) and ``/predict.csv`` (batch scoring)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse

from mlpilot.data import Problem
from mlpilot.exceptions import InvalidParameterError, ResourceLimitError, SchemaValidationError
from mlpilot.runtime import (
    LoadedModel,
    ModelCache,
    predict_body,
    predict_payload,
    prepare_body,
    score_compiled,
    score_csv,
    score_prepared,
    shape,
)
from mlpilot.runtime._explain import explain_flag, explain_payload
from mlpilot.runtime._json import dumps
from mlpilot.runtime._quality import flag_counts, row_flags
from mlpilot.serve._deps import (
    NAME_PARAMETER,
    PIN_PARAMETERS,
    AliasQuery,
    MetricsDep,
    ModelsDep,
    SettingsDep,
    VersionQuery,
    query_pins,
)
from mlpilot.serve._inputs import GZIP_MAGIC, Inflater, content_encoding, parse_json, read_body
from mlpilot.serve._middleware import request_id_of
from mlpilot.serve._settings import ServeSettings

router = APIRouter(tags=["predict"])

GENERIC_REQUEST = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON or parameters"},
    404: {"description": "No such model, version or alias"},
    413: {"description": "Body or row count over the limit"},
    422: {"description": "The rows do not match the model's schema, or a row has no value at all "
                         "(each problem names the field and rows)"},
}


async def resolve(models: ModelCache, name: str, version: int | None, alias: str | None) -> LoadedModel:
    """The loaded model, from memory or loaded in a worker thread."""
    loaded = models.get_cached(name, version, alias)
    if loaded is None:
        loaded = await run_in_threadpool(models.get, name, version, alias)
    return loaded


def check_predicts(loaded: LoadedModel) -> None:
    """Only models that predict rows (tabular ones) answer the predict routes."""
    if loaded.version.kind == "recommender" or not callable(getattr(loaded.model, "predict", None)):
        raise InvalidParameterError(
            f"Model {loaded.version.ref} is a {loaded.version.kind} model and does not predict rows; "
            f"use GET /v1/models/{loaded.name}/recommend for recommendations."
        )


def count_rejected(metrics: Any, model: str, exc: SchemaValidationError) -> None:
    """Count the row problems of a refused request in ``/metrics`` (``empty_row``, ...)."""
    counts = flag_counts(p for p in exc.problems if isinstance(p, Problem))
    if counts:
        metrics.count_input_flags(model, counts)


def record_flags(state: Any, loaded: LoadedModel, warnings: list[Problem], n_rows: int) -> list[str] | None:
    """Count a scored request's input flags in ``/metrics``; return each row's flags for the log."""
    if not warnings:
        return None
    counts = flag_counts(warnings)
    if counts:
        state.metrics.count_input_flags(loaded.name, counts)
    return row_flags(warnings, n_rows)


EXPLAIN_PARAMETER: dict[str, Any] = {
    "name": "explain", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
    "description": "Also return each row's per-column contributions (`explanations`, see docs/explanations.md).",
}

# Bodies up to this size are parsed on the event loop (tens of microseconds); a
# compiled model scores them there too when they have at most its measured
# `CompiledModel.inline_rows` (what fits a quarter millisecond, `mlpilot.runtime._dispatch`);
# other requests are micro-batched with concurrent ones in a worker thread.
# Larger bodies go to a thread whole.
_INLINE_BYTES = 16 * 1024


@router.post(
    "/v1/models/{name}/predict",
    summary="Predict rows",
    description=(
        'Send `{"rows": [{"feature": value, ...}, ...]}` or `{"columns": {"feature": [...]}}`. '
        "Each model's exact row schema is listed under `/v1/models/<name>/predict` below and "
        "in the components `<name>Row`."
    ),
    openapi_extra={"requestBody": GENERIC_REQUEST, "parameters": [NAME_PARAMETER, *PIN_PARAMETERS, EXPLAIN_PARAMETER]},
    responses={200: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictResponse"}}}}, **ERROR_RESPONSES},
    response_class=Response,
)
async def predict(request: Request) -> Response:
    # No declared parameters and no Depends here: see `query_pins`.
    start = time.perf_counter()
    name: str = request.path_params["name"]
    request_id = request_id_of(request)
    state = request.app.state
    settings: ServeSettings = state.settings
    models: ModelCache = state.models
    version, alias = query_pins(request)
    explain = explain_flag(request.query_params.get("explain")) if request.scope.get("query_string") else False
    headers = request.headers
    body = await read_body(request.stream(), headers.get("content-length"), settings.max_body_bytes,
                           headers.get("content-encoding"))
    loaded = await resolve(models, name, version, alias)
    check_predicts(loaded)
    try:
        if len(body) <= _INLINE_BYTES and loaded.schema is not None and not explain:
            prepared = prepare_body(loaded, body, settings.max_rows)
            compiled = loaded.compiled
            scored = None
            if compiled is not None and prepared.n_rows <= compiled.inline_rows:
                scored = score_compiled(loaded, prepared.table, prepared.n_rows)
            if scored is not None:
                predictions, probabilities = scored
            elif settings.batching:
                if compiled is not None:  # batched, and scored by the compiled model in the worker thread
                    data, json_values = prepared.json_columns(), True
                else:
                    data, json_values = prepared.converted(loaded.schema), False
                predictions, probabilities = await state.batcher.submit(
                    loaded, data, prepared.n_rows, json_values=json_values)
            else:
                predictions, probabilities = await run_in_threadpool(score_prepared, loaded, prepared)
            answer = shape(loaded, prepared, predictions, probabilities)
            answer["request_id"] = request_id
            content, inputs, warnings = dumps(answer), prepared.inputs, prepared.warnings
        else:

            def work() -> tuple[bytes, Any, list[Any], dict[str, Any], list[Problem]]:
                if explain:  # the full pipeline only
                    answer, prepared, predictions = explain_payload(loaded, parse_json(body), settings.max_rows)
                else:
                    answer, prepared, predictions = predict_body(loaded, body, settings.max_rows)
                answer["request_id"] = request_id
                return dumps(answer), prepared.inputs, predictions, answer, prepared.warnings

            content, inputs, predictions, answer, warnings = await run_in_threadpool(work)
    except SchemaValidationError as exc:
        count_rejected(state.metrics, loaded.name, exc)
        raise
    latency_ms = (time.perf_counter() - start) * 1000
    flags = record_flags(state, loaded, warnings, len(predictions)) if warnings else None
    state.prediction_log.log(
        loaded.name, loaded.version.version, inputs, predictions, latency_ms,
        probabilities=answer.get("probabilities"), warnings=flags, request_ids=request_id,
    )
    state.metrics.count_predictions(loaded.name, loaded.version.version, len(predictions))
    return Response(content, media_type="application/json")


def _spool_limit_error(limit: int) -> ResourceLimitError:
    return ResourceLimitError(f"The uploaded CSV exceeds the limit of {limit} bytes (MLPILOT_MAX_CSV_BYTES).")


def _gunzip_file(source: IO[bytes], limit: int) -> IO[bytes]:
    """A gzip-compressed upload as a spooled file of its decompressed bytes."""
    inflater = Inflater(limit, _spool_limit_error)
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - returned
    try:
        while block := source.read(1 << 16):
            spool.write(inflater.feed(block))
        inflater.finish()
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool  # type: ignore[return-value]


async def _csv_source(request: Request, settings: Any) -> IO[bytes]:
    """The uploaded CSV as a file object: a multipart upload's file, or the raw body spooled to disk.

    A gzip body (``Content-Encoding: gzip``, or a gzip file) is decompressed as
    it arrives; the size limit applies to the decompressed bytes.
    """
    encoding = content_encoding(request.headers.get("content-encoding"))
    content_type = request.headers.get("content-type", "")
    limit = settings.max_csv_bytes
    if content_type.startswith("multipart/form-data"):
        if encoding == "gzip":
            raise InvalidParameterError(
                "A multipart form cannot be sent with Content-Encoding: gzip; attach the gzip file as the "
                "form's 'file' field, or send the CSV as the raw body with Content-Encoding: gzip."
            )
        form = await request.form(max_files=1, max_fields=10)
        upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if upload is None:
            raise InvalidParameterError("The form has no file; attach the CSV as a file field named 'file'.")
        size = upload.size
        if size is not None and size > limit:
            raise _spool_limit_error(limit)
        upload.file.seek(0)
        if upload.file.read(2) == GZIP_MAGIC:
            upload.file.seek(0)
            return await run_in_threadpool(_gunzip_file, upload.file, limit)
        upload.file.seek(0)
        return upload.file
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _spool_limit_error(limit)
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - returned
    size = 0
    inflater = Inflater(limit, _spool_limit_error) if encoding == "gzip" else None
    try:
        async for chunk in request.stream():
            if inflater is None and size == 0 and chunk[:2] == GZIP_MAGIC:
                inflater = Inflater(limit, _spool_limit_error)  # a gzip file sent as the body, without the header
            size += len(chunk)
            if size > limit:
                raise _spool_limit_error(limit)
            spool.write(inflater.feed(chunk) if inflater is not None else chunk)
        if inflater is not None and size:
            inflater.finish()
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool  # type: ignore[return-value]


class RequestLog:
    """The prediction log bound to one request: its chunks share the id, their rows numbered on."""

    def __init__(self, log: Any, request_id: str) -> None:
        self._log = log
        self._request_id = request_id
        self._rows = 0

    def log(self, name: str, version: int, inputs: Any, outputs: Any, latency_ms: float, **kwargs: Any) -> None:
        self._log.log(name, version, inputs, outputs, latency_ms, request_ids=self._request_id,
                      first_row=self._rows, **kwargs)
        self._rows += len(outputs)


def _stream_file(path: str) -> Iterator[bytes]:
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 16):
                yield block
    finally:
        os.unlink(path)


@router.post(
    "/v1/models/{name}/predict.csv",
    summary="Score a CSV file",
    description=(
        "Upload a CSV (raw body with `Content-Type: text/csv`, or multipart field `file`); "
        "get the same CSV back with `prediction` (and `probability_<class>`) columns appended."
    ),
    openapi_extra={"requestBody": {"content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
    }}},
    responses={200: {"content": {"text/csv": {}}}, **ERROR_RESPONSES},
    response_class=StreamingResponse,
)
async def predict_csv(
    request: Request,
    name: str,
    models: ModelsDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    version: VersionQuery = None,
    alias: AliasQuery = None,
) -> StreamingResponse:
    loaded = await resolve(models, name, version, alias)
    check_predicts(loaded)
    source = await _csv_source(request, settings)
    log = RequestLog(request.app.state.prediction_log, request_id_of(request))
    try:
        path, n_rows, warnings = await run_in_threadpool(
            score_csv, loaded, source, settings.csv_chunk_rows, log, metrics
        )
    except SchemaValidationError as exc:
        count_rejected(metrics, loaded.name, exc)
        raise
    finally:
        source.close()
    metrics.count_predictions(loaded.name, loaded.version.version, n_rows)
    headers = {
        "content-disposition": f'attachment; filename="{loaded.name}-v{loaded.version.version}-predictions.csv"',
        "x-mlpilot-model": loaded.name,
        "x-mlpilot-version": str(loaded.version.version),
        "x-mlpilot-rows": str(n_rows),
    }
    if loaded.threshold is not None:
        headers["x-mlpilot-threshold"] = repr(loaded.threshold)
    if warnings:
        headers["x-mlpilot-warnings"] = json.dumps([w.message for w in warnings[:5]])[:2000].encode("ascii", "replace").decode()
    return StreamingResponse(_stream_file(path), media_type="text/csv", headers=headers)


__all__ = ["predict_payload", "record_flags", "resolve", "router", "score_csv"]
