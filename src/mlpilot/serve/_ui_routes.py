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
from mlpilot.evaluate import read_card
from mlpilot.exceptions import (
    InvalidParameterError,
    MlpilotError,
    ModelNotFoundError,
    SchemaValidationError,
)
from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime import LoadedModel, ModelCache, predict_payload, score_csv
from mlpilot.runtime._explain import contribution_table, explain_payload
from mlpilot.serve._deps import ModelsDep, RegistryDep, SettingsDep, VersionQuery
from mlpilot.serve._middleware import COOKIE
from mlpilot.serve._predict_routes import record_flags

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_IMAGE = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")
_TOKEN = re.compile(r"^[0-9a-f]{32}\.csv$")
EXPLAIN_FIELD = "__explain"  # the form's explain toggle (a name no feature column is given by the form)


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


def _compact(value: Any) -> str:
    """One line: lists joined by commas, mappings as compact JSON."""
    if isinstance(value, list | tuple):
        return ", ".join(_compact(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return _fmt(value)


def _short(value: Any) -> str:
    """A table cell: like `_fmt`, cut to 120 characters."""
    text = _fmt(value)
    return text if len(text) <= 120 else text[:119] + "…"


templates.env.filters["fmt"] = _fmt
templates.env.filters["short"] = _short


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
    """Each metric once, with its interval: a ``NAME_ci`` entry is shown on ``NAME``'s row."""
    out = []
    for name, value in mv.metrics.items():
        if name == "tests" or (name.endswith("_ci") and name[: -len("_ci")] in mv.metrics):
            continue
        if name.endswith(("_ci_low", "_ci_high")):
            continue
        point, interval = _interval(value)
        low, high = mv.metrics.get(f"{name}_ci_low"), mv.metrics.get(f"{name}_ci_high")
        if not interval and isinstance(low, int | float) and isinstance(high, int | float):
            interval = f"[{_fmt(low)}, {_fmt(high)}]"
        if isinstance(mv.metrics.get(f"{name}_ci"), list | tuple) and len(mv.metrics[f"{name}_ci"]) == 2:
            low, high = mv.metrics[f"{name}_ci"]
            interval = f"[{_fmt(low)}, {_fmt(high)}]"
        out.append({"name": name, "value": point, "interval": interval})
    return out


def _headline(mv: ModelVersion, metrics: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The version's headline metric (its holdout score) with its interval."""
    name = mv.headline_metric or (f"holdout_{mv.info['metric']}" if mv.info.get("metric") else None)
    return next((m for m in metrics if m["name"] == name), None)


#: The leaderboard columns shown, in order, when a board has them (others are in the JSON file).
_BOARD_COLUMNS = ("rank", "name", "model", "cv_{m}", "cv_std", "holdout_{m}", "holdout_ci", "validation_ndcg@{k}",
                  "ndcg@{k}", "recall@{k}", "coverage@{k}", "weight", "fit_seconds", "trials", "status")


def _leaderboard(info: dict[str, Any]) -> dict[str, Any] | None:
    board = info.get("leaderboard")
    if not isinstance(board, list) or not board or not all(isinstance(r, dict) for r in board):
        return None
    present: list[str] = []
    for row in board:
        present.extend(k for k in row if k not in present)
    metric, k = info.get("metric", ""), info.get("protocol", {}).get("k", 10) if isinstance(info.get("protocol"), dict) else 10
    wanted = [c.format(m=metric, k=k) for c in _BOARD_COLUMNS]
    scalar = [c for c in present if c not in wanted and any(
        isinstance(r.get(c), int | float | str) and not isinstance(r.get(c), bool) for r in board)]
    columns = ([c for c in wanted if c in present] + scalar)[:12]
    rows = []
    for row in board[:100]:
        cells = [row.get(c) for c in columns]
        rows.append({"cells": cells, "champion": bool(row.get("champion") or row.get("chosen"))})
    return {"columns": [c.replace("_", " ") for c in columns], "rows": rows, "n_hidden": max(0, len(board) - 100)}


def _plot_title(file_name: str) -> str:
    """``roc_curve.png`` → ``ROC curve``."""
    words = Path(file_name).stem.replace("-", "_").split("_")
    known = {"roc": "ROC", "pr": "PR", "shap": "SHAP", "cv": "CV", "ndcg": "NDCG"}
    title = " ".join(known.get(w.lower(), w) for w in words if w)
    return title[:1].upper() + title[1:]


def _history(registry: Registry, name: str) -> list[dict[str, Any]]:
    """The decisions recorded for ``name``, newest first: registrations, alias moves, archives, deletions."""
    out = []
    for event in reversed(registry.list_events(name=name)[-200:]):
        payload = event.get("payload") or {}
        detail = "; ".join(f"{k.replace('_', ' ')}: {_compact(v)}" for k, v in payload.items() if v not in (None, "", [], {}))
        out.append({"kind": str(event["kind"]).replace("_", " "), "at": event["created_at"], "detail": detail[:400]})
    return out


def _page_context(registry: Registry, mv: ModelVersion) -> dict[str, Any]:
    from mlpilot.data import Schema

    schema = Schema.from_dict(mv.schema) if mv.schema else None
    base = f"/ui/models/{mv.name}/files"
    files = sorted(mv.files)
    info = mv.info
    profile = info.get("profile") if isinstance(info.get("profile"), dict) else None
    card = read_card(info.get("model_card"))
    metrics = _metrics(mv)
    return {
        "mv": mv,
        "task": info.get("task"),
        "target": info.get("target") or (schema.target if schema else None),
        "features": schema.features if schema else [],
        "metrics": metrics,
        "headline": _headline(mv, metrics),
        "leaderboard": _leaderboard(info),
        "tests": _tests(mv),
        "history": _history(registry, mv.name),
        "plots": [{"name": f, "title": _plot_title(f), "url": f"{base}/{f}?version={mv.version}"}
                  for f in files if f.lower().endswith(_IMAGE)],
        "reports": [{"name": f, "url": f"{base}/{f}?version={mv.version}"} for f in files if f.lower().endswith(".html")],
        "profile": profile,
        "model_card": card,
        "threshold": info.get("threshold") if isinstance(info.get("threshold"), dict) else None,
        "versions": registry.list_versions(mv.name),
        "form_values": {},
        "errors": [],
        "batch_errors": [],
        "empty_fields": [],
        "result": None,
        "batch": None,
    }


def _tests(mv: ModelVersion) -> list[dict[str, Any]]:
    """Paired tests as table rows, from a tabular version's ``info`` or a recommender's ``metrics``."""
    tests = mv.info.get("tests") if mv.kind == "tabular" else mv.metrics.get("tests")
    if not isinstance(tests, dict):
        return []
    rows = []
    for label, test in tests.items():
        if not isinstance(test, dict):
            continue
        against = test.get("against", test.get("other"))
        if "mean_difference" in test:  # a recommender's paired test over users
            rows.append({"label": label.replace("_", " "), "against": against, "test": "paired over users",
                         "difference": test.get("mean_difference"),
                         "interval": f"[{_fmt(test.get('ci_low'))}, {_fmt(test.get('ci_high'))}]",
                         "p": test.get("p_value")})
            continue
        for kind in ("cv", "holdout"):
            part = test.get(kind)
            if isinstance(part, dict):
                rows.append({"label": label.replace("_", " "), "against": against,
                             "test": part.get("method", kind), "difference": part.get("difference"),
                             "interval": "", "p": part.get("p_value")})
    return rows


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
    page = "recommender.html" if mv.kind == "recommender" else "model.html"
    return templates.TemplateResponse(request, page, context, status_code=status)


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
        empty = [c.name for c in features if row.get(c.name) is None]
        explain = values.get(EXPLAIN_FIELD) == "on"
        answer, prepared, predictions = await run_in_threadpool(
            explain_payload if explain else predict_payload, loaded, {"rows": [row]}, settings.max_rows
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
    explanation = contribution_table(answer["explanations"][0], predictions[0]) if explain else None
    return await _render_model(request, registry, name, loaded.version.version, form_values=values, result=answer,
                               empty_fields=empty, explanation=explanation)


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
                                   batch_errors=[str(p) for p in problems])
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


def _local_path(target: str | None) -> str:
    """``target`` if it is a path on this server (``/ui/models/x?version=2``), else ``/``: no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    next_page = _local_path(request.query_params.get("next"))
    return templates.TemplateResponse(request, "login.html", {"error": None, "next": next_page})


@router.get("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, settings: SettingsDep) -> Response:
    form = await request.form(max_files=0, max_fields=5)
    given = str(form.get("api_key", "")).encode()
    next_page = _local_path(str(form.get("next", "")))
    expected = settings.api_key.get_secret_value().encode() if settings.api_key is not None else b""
    if not expected or hmac.compare_digest(given, expected):
        response = RedirectResponse(next_page, status_code=303)
        if expected:
            response.set_cookie(COOKIE, given.decode(), httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
        return response
    return templates.TemplateResponse(request, "login.html", {"error": "That key is not right.", "next": next_page},
                                      status_code=401)


__all__ = ["form_row", "router"]
