"""``GET /v1/models`` and ``GET /v1/models/{name}``: what is served and what it expects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from mlpilot.data import ColumnSchema
from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime import ModelCache
from mlpilot.serve._deps import AliasQuery, ModelsDep, RegistryDep, VersionQuery

router = APIRouter(tags=["models"])


def feature_dict(col: ColumnSchema) -> dict[str, Any]:
    return {
        "name": col.name,
        "dtype": col.dtype,
        "role": col.role,
        "nullable": col.nullable,
        "categories": list(col.categories) if col.categories is not None else None,
        "minimum": col.minimum,
        "maximum": col.maximum,
    }


def version_dict(mv: ModelVersion, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": mv.version,
        "kind": mv.kind,
        "aliases": list(mv.aliases),
        "created_at": mv.created_at.isoformat(),
        "headline_metric": mv.headline_metric,
        "headline_value": mv.headline_value,
        "sha256": mv.sha256,
    }
    if full:
        info = mv.info
        from mlpilot.data import Schema
        from mlpilot.evaluate import read_card

        schema = Schema.from_dict(mv.schema) if mv.schema else None
        out.update(
            metrics=mv.metrics,
            task=info.get("task"),
            target=info.get("target") or (schema.target if schema else None),
            classes=info.get("classes"),
            features=[feature_dict(c) for c in schema.features] if schema else None,
            model_card=read_card(info.get("model_card")),
            leaderboard=info.get("leaderboard"),
            files=sorted(mv.files),
            environment=mv.environment,
        )
    return out


def _list(registry: Registry, models: ModelCache) -> dict[str, Any]:
    served = models.aliases()
    return {
        "models": [
            {
                "name": s.name,
                "kind": s.kind,
                "latest_version": s.latest_version,
                "n_versions": s.n_versions,
                "aliases": s.aliases,
                "served_version": served.get((s.name, "champion")),
                "headline_metric": s.headline_metric,
                "headline_value": s.headline_value,
            }
            for s in registry.list_models()
        ]
    }


@router.get("/v1/models", summary="List the registered models")
async def list_models(registry: RegistryDep, models: ModelsDep) -> dict[str, Any]:
    return await run_in_threadpool(_list, registry, models)


def _detail(registry: Registry, name: str, version: int | None, alias: str | None) -> dict[str, Any]:
    from mlpilot.exceptions import InvalidParameterError
    from mlpilot.registry._ref import check_name

    check_name(name)
    if version is not None and alias is not None:
        raise InvalidParameterError(f"Pin a version or an alias, not both. Got version={version} and alias={alias!r}.")
    versions = registry.list_versions(name)
    ref = f"{name}:{version}" if version is not None else f"{name}@{alias}" if alias else name
    selected = registry.get_version(ref)
    return {
        "name": name,
        "aliases": registry.get_aliases(name),
        "versions": [version_dict(v) for v in versions],
        "selected": version_dict(selected, full=True),
    }


@router.get("/v1/models/{name}", summary="A model: versions, aliases, metrics, input schema, model card")
async def get_model(
    name: str, registry: RegistryDep, models: ModelsDep, version: VersionQuery = None, alias: AliasQuery = None
) -> dict[str, Any]:
    detail = await run_in_threadpool(_detail, registry, name, version, alias)
    # How the server scores this version, when it has it loaded: compiled, or why not.
    loaded = next((lm for lm in [*models.loaded(), *models.pinned()]
                   if lm.name == name and lm.version.version == detail["selected"]["version"]), None)
    detail["selected"]["fast_path"] = loaded.fast_path if loaded is not None else None
    detail["selected"]["dispatch"] = loaded.dispatch if loaded is not None else None
    return detail
