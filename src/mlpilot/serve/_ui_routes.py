"""The web UI: server-rendered pages, no JavaScript build step."""

from __future__ import annotations

import hmac
import json
import mimetypes
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from mlpilot.data import ColumnSchema, Problem
from mlpilot.exceptions import (
    InvalidParameterError,
    MlpilotError,
    ModelNotFoundError,
    SchemaValidationError,
)
from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime import LoadedModel, ModelCache, predict_payload, score_csv
from mlpilot.serve._deps import ModelsDep, RegistryDep, SettingsDep, VersionQuery
from mlpilot.serve._middleware import COOKIE
from mlpilot.serve._predict_routes import record_flags

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_IMAGE = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")
_TOKEN = re.compile(r"^[0-9a-f]{32}\.csv$")


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, indent=1, default=str)[:2000]
    return str(value)


templates.env.filters["fmt"] = _fmt


def _interval(value: Any) -> tuple[Any, str]:
    """A metric's value and its interval text, for the shapes evaluation may record."""
    if isinstance(value, dict):
        point = next((value[k] for k in ("value", "mean", "estimate", "score") if k in value), None)
        low = next((value[k] for k in ("ci_low", "low", "lower") if k in value), None)
        high = next((value[k] for k in ("ci_high", "high", "upper") if k in value), None)
        if low is None and isinstance(value.get("ci"), list | tuple) and len(value["ci"]) == 2:
            low, high = value["ci"]
        text = f"[{_fmt(low)}, {_fmt(high)}]" if low is not None and high is not None else ""
        return (point if point is not None else value), text
    return value, ""


def _metrics(mv: ModelVersion) -> list[dict[str, Any]]:
    out = []
    for name, value in mv.metrics.items():
        point, interval = _interval(value)
        if not interval and f"{name}_ci" in mv.metrics:
            continue
        if isinstance(mv.metrics.get(f"{name}_ci"), list | tuple) and len(mv.metrics[f"{name}_ci"]) == 2:
            low, high = mv.metrics[f"{name}_ci"]
            interval = f"[{_fmt(low)}, {_fmt(high)}]"
        out.append({"name": name, "value": point, "interval": interval})
    return out


def _leaderboard(info: dict[str, Any]) -> dict[str, Any] | None:
    board = info.get("leaderboard")
    if not isinstance(board, list) or not board or not all(isinstance(r, dict) for r in board):
        return None
    columns: list[str] = []
    for row in board:
        columns.extend(k for k in row if k not in columns)
    return {"columns": columns, "rows": [[row.get(c) for c in columns] for row in board[:100]]}


def _page_context(registry: Registry, mv: ModelVersion) -> dict[str, Any]:
    from mlpilot.data import Schema

    schema = Schema.from_dict(mv.schema) if mv.schema else None
    base = f"/ui/models/{mv.name}/files"
    files = sorted(mv.files)
    info = mv.info
    profile = info.get("profile") if isinstance(info.get("profile"), dict) else None
    card = info.get("model_card") if isinstance(info.get("model_card"), dict) else None
    return {
        "mv": mv,
        "task": info.get("task"),
        "target": info.get("target") or (schema.target if schema else None),
        "features": schema.features if schema else [],
        "metrics": _metrics(mv),
        "leaderboard": _leaderboard(info),
        "plots": [{"name": f, "url": f"{base}/{f}?version={mv.version}"} for f in files if f.lower().endswith(_IMAGE)],
        "reports": [{"name": f, "url": f"{base}/{f}?version={mv.version}"} for f in files if f.lower().endswith(".html")],
        "profile": profile,
        "model_card": card,
        "versions": registry.list_versions(mv.name),
        "form_values": {},
        "errors": [],
        "result": None,
        "batch": None,
    }


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, registry: RegistryDep, models: ModelsDep) -> Response:
    summaries = await run_in_threadpool(registry.list_models)
    served = models.aliases()
    rows = [
        {**s.__dict__, "served": served.get((s.name, "champion"), s.aliases.get("champion", s.latest_version))}
        for s in summaries
    ]
    return templates.TemplateResponse(request, "index.html", {"models": rows})


def _version(registry: Registry, name: str, version: int | None) -> ModelVersion:
    from mlpilot.registry._ref import check_name

    check_name(name)
    return registry.get_version(f"{name}:{version}" if version is not None else name)


async def _render_model(
    request: Request, registry: Registry, name: str, version: int | None, status: int = 200, **extra: Any
) -> Response:
    try:
        mv = await run_in_threadpool(_version, registry, name, version)
        context = await run_in_threadpool(_page_context, registry, mv)
    except (ModelNotFoundError, InvalidParameterError) as exc:
        return HTMLResponse(f"<!doctype html><title>Not found</title><p>{_escape(str(exc))}</p><p><a href='/'>All models</a></p>",
                            status_code=404)
    context.update(extra)
    return templates.TemplateResponse(request, "model.html", context, status_code=status)


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


@router.get("/ui/models/{name}", response_class=HTMLResponse)
async def model_page(request: Request, name: str, registry: RegistryDep, version: VersionQuery = None) -> Response:
    return await _render_model(request, registry, name, version)


def form_row(features: list[ColumnSchema], form: dict[str, str]) -> dict[str, Any]:
    """Turn the form's strings into JSON-typed values; empty fields become missing values."""
    row: dict[str, Any] = {}
    problems = []
    for col in features:
        raw = form.get(col.name, "").strip()
        if raw == "":
            row[col.name] = None
            continue
        try:
            if col.dtype in ("integer", "float"):
                number = float(raw)
                row[col.name] = int(number) if col.dtype == "integer" and number.is_integer() else number
            elif col.dtype == "boolean":
                if raw.lower() not in ("true", "false"):
                    raise ValueError(raw)
                row[col.name] = raw.lower() == "true"
            else:
                row[col.name] = raw
        except ValueError:
            problems.append(Problem(col.name, "wrong_type", f"Field {col.name!r} expects {col.dtype} values; got {raw[:40]!r}."))
    if problems:
        raise SchemaValidationError(problems)
    return row


async def _loaded(models: ModelCache, name: str, version: int | None) -> LoadedModel:
    from mlpilot.serve._predict_routes import resolve

    return await resolve(models, name, version, None)


@router.post("/ui/models/{name}/predict", response_class=HTMLResponse)
async def predict_form(
    request: Request, name: str, registry: RegistryDep, models: ModelsDep, settings: SettingsDep,
    version: VersionQuery = None,
) -> Response:
    form = await request.form(max_files=0, max_fields=2000)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        loaded = await _loaded(models, name, version)
        features = loaded.schema.features if loaded.schema else []
        row = form_row(features, values)
        answer, prepared, predictions = await run_in_threadpool(
            predict_payload, loaded, {"rows": [row]}, settings.max_rows
        )
    except ModelNotFoundError:
        return await _render_model(request, registry, name, version)
    except MlpilotError as exc:
        problems = getattr(exc, "problems", None) or [exc]
        return await _render_model(request, registry, name, version, status=exc.status_code,
                                   form_values=values, errors=[str(p) for p in problems])
    flags = record_flags(request.app.state, loaded, prepared.warnings, len(predictions))
    request.app.state.prediction_log.log(loaded.name, loaded.version.version, prepared.inputs, predictions, 0.0,
                                         probabilities=answer.get("probabilities"), warnings=flags,
                                         request_ids=request.state.request_id, source="ui")
    return await _render_model(request, registry, name, loaded.version.version, form_values=values, result=answer)


_DOWNLOAD_SECONDS = 3600


def _downloads_dir(registry: Registry) -> Path:
    path = registry.workspace.tmp_dir / "scored"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _expire_downloads(directory: Path) -> None:
    """Scored files are kept an hour for their download link, then removed."""
    cutoff = time.time() - _DOWNLOAD_SECONDS
    for old in directory.glob("*.csv"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            continue


def _score_upload(loaded: LoadedModel, upload: UploadFile, registry: Registry, chunk_rows: int) -> dict[str, Any]:
    upload.file.seek(0)
    path, n_rows, _warnings = score_csv(loaded, upload.file, chunk_rows)
    token = f"{uuid.uuid4().hex}.csv"
    _expire_downloads(_downloads_dir(registry))
    shutil.move(path, _downloads_dir(registry) / token)
    preview = pd.read_csv(_downloads_dir(registry) / token, nrows=10)
    return {
        "n_rows": n_rows,
        "url": f"/ui/downloads/{token}",
        "preview": preview.to_html(index=False, classes="grid", border=0, na_rep="", escape=True),
    }


@router.post("/ui/models/{name}/score", response_class=HTMLResponse)
async def score_form(
    request: Request, name: str, registry: RegistryDep, models: ModelsDep, settings: SettingsDep,
    version: VersionQuery = None,
) -> Response:
    form = await request.form(max_files=1, max_fields=10)
    upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
    try:
        if upload is None:
            raise InvalidParameterError("Choose a CSV file to score.")
        loaded = await _loaded(models, name, version)
        batch = await run_in_threadpool(_score_upload, loaded, upload, registry, settings.csv_chunk_rows)
    except ModelNotFoundError:
        return await _render_model(request, registry, name, version)
    except MlpilotError as exc:
        problems = getattr(exc, "problems", None) or [exc]
        return await _render_model(request, registry, name, version, status=exc.status_code,
                                   errors=[str(p) for p in problems])
    return await _render_model(request, registry, name, loaded.version.version, batch=batch)


@router.get("/ui/downloads/{token}")
async def download(token: str, registry: RegistryDep) -> Response:
    path = _downloads_dir(registry) / token
    if not _TOKEN.match(token) or not path.is_file():
        return HTMLResponse("<p>This download has expired or does not exist.</p>", status_code=404)
    return FileResponse(path, media_type="text/csv", filename="predictions.csv")


@router.get("/ui/models/{name}/files/{file_name}")
async def model_file(name: str, file_name: str, registry: RegistryDep, version: VersionQuery = None) -> Response:
    try:
        mv = await run_in_threadpool(_version, registry, name, version)
        data = await run_in_threadpool(registry.read_file, mv, file_name)
    except ModelNotFoundError as exc:
        return HTMLResponse(_escape(str(exc)), status_code=404)
    media_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    headers = {"x-content-type-options": "nosniff"}
    if media_type == "text/html":
        # Reports are self-contained HTML written by mlpilot; keep them from running scripts here.
        headers["content-security-policy"] = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return Response(data, media_type=media_type, headers=headers)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, settings: SettingsDep) -> Response:
    form = await request.form(max_files=0, max_fields=5)
    given = str(form.get("api_key", "")).encode()
    expected = settings.api_key.get_secret_value().encode() if settings.api_key is not None else b""
    if not expected or hmac.compare_digest(given, expected):
        response = RedirectResponse("/", status_code=303)
        if expected:
            response.set_cookie(COOKIE, given.decode(), httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
        return response
    return templates.TemplateResponse(request, "login.html", {"error": "That key is not right."}, status_code=401)


__all__ = ["form_row", "router"]
