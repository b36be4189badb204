"""What every export format shares: the output directory written whole or not at all, pinned requirements."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from mlpilot.exceptions import InvalidParameterError
from mlpilot.registry import ModelVersion

#: The file beside an exported artifact that describes the version (`version_from_record` reads it).
VERSION_FILE = "mlpilot-version.json"


@contextlib.contextmanager
def staged_directory(out: Path, *, force: bool) -> Iterator[Path]:
    """A fresh directory beside ``out`` that becomes ``out`` only when the block succeeds.

    An existing non-empty ``out`` is refused unless ``force`` (then it is replaced, after the
    new one is complete). On any error the staged directory is removed and ``out`` is untouched.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"{out} is a file; give a directory to export into (-o DIR).")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InvalidParameterError(
            f"{out} exists and is not empty. Choose another directory, or pass --force to replace it. "
            "Nothing was written.")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def version_record(mv: ModelVersion, artifact_name: str) -> dict[str, Any]:
    """The registry's record of ``mv`` as JSON, with the artifact's file name in the export."""
    return {
        "name": mv.name,
        "version": mv.version,
        "kind": mv.kind,
        "artifact": artifact_name,
        "artifact_format": mv.artifact_format,
        "sha256": mv.sha256,
        "metrics": mv.metrics,
        "headline_metric": mv.headline_metric,
        "headline_value": mv.headline_value,
        "schema": mv.schema,
        "environment": mv.environment,
        "info": mv.info,
        "created_at": mv.created_at.isoformat(),
    }


def write_version_record(mv: ModelVersion, directory: Path, artifact_name: str) -> None:
    (directory / VERSION_FILE).write_text(json.dumps(version_record(mv, artifact_name), indent=2, default=str))


def version_from_record(directory: Path) -> ModelVersion:
    """The `ModelVersion` an export describes, its artifact path inside ``directory``."""
    record = json.loads((directory / VERSION_FILE).read_text())
    return ModelVersion(
        name=record["name"], version=int(record["version"]), kind=record["kind"], run_id=None,
        dataset_id=None, artifact_path=directory / record["artifact"],
        artifact_format=record["artifact_format"], sha256=record["sha256"], files={},
        metrics=record["metrics"], headline_metric=record["headline_metric"],
        headline_value=record["headline_value"], schema=record["schema"],
        environment=record["environment"], info=record["info"],
        created_at=datetime.fromisoformat(record["created_at"]),
    )


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def pinned_requirements(extra: tuple[str, ...] = ()) -> list[str]:
    """``name==version`` for mlpilot's dependencies and theirs, as installed now (mlpilot itself excluded).

    ``extra`` adds distributions the model needs beyond mlpilot's own (a family's library).
    """
    from packaging.requirements import Requirement

    env = {"extra": ""}
    pins: dict[str, str] = {}
    todo = [Requirement(r) for r in metadata.requires("mlpilot") or []]
    todo = [r for r in todo if r.marker is None or r.marker.evaluate(env)]
    todo += [Requirement(name) for name in extra]
    while todo:
        req = todo.pop()
        key = _canonical(req.name)
        if key in pins:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency that is not installed
        pins[key] = f"{dist.metadata['Name']}=={dist.version}"
        for spec in dist.requires or []:
            sub = Requirement(spec)
            wanted = [{"extra": e} for e in req.extras] or [env]
            if sub.marker is None or any(sub.marker.evaluate({**env, **w}) for w in wanted):
                todo.append(sub)
    return sorted(pins.values(), key=str.lower)


def python_version() -> str:
    return ".".join(str(p) for p in sys.version_info[:3])


def libraries_of(model: Any, *, depth: int = 8) -> tuple[str, ...]:
    """The distributions whose classes make up ``model`` (walked through attributes and containers)."""
    seen: set[int] = set()
    modules: set[str] = set()

    def walk(obj: Any, level: int) -> None:
        if level > depth or id(obj) in seen or isinstance(obj, str | bytes | int | float | bool | type(None)):
            return
        seen.add(id(obj))
        modules.add(type(obj).__module__.split(".")[0])
        children: Any = ()
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            children = list(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            children = list(vars(obj).values())
        for child in children[:10_000]:
            walk(child, level + 1)

    walk(model, 0)
    by_module = metadata.packages_distributions()
    return tuple(sorted({dist for module in modules for dist in by_module.get(module, ()) if dist != "mlpilot"}))
