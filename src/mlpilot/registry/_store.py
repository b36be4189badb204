"""The model registry: datasets, runs, model versions, aliases and events."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from mlpilot._config import fsync_dir
from mlpilot._workspace import Workspace
from mlpilot.data._sql import create_engine, safe_url
from mlpilot.exceptions import (
    ArtifactIntegrityError,
    ConflictError,
    InvalidParameterError,
    ModelNotFoundError,
    RegistryError,
    SourceConnectionError,
)
from mlpilot.registry import _artifacts, _tables
from mlpilot.registry._labels import recorded_label
from mlpilot.registry._ref import ModelRef, check_alias, check_name
from mlpilot.registry._tables import (
    aliases,
    datasets,
    events,
    metadata,
    model_versions,
    runs,
    watchers,
)

logger = logging.getLogger(__name__)

_ENV_PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "catboost", "implicit")


def _now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def environment() -> dict[str, Any]:
    """The software environment a model is trained in."""
    versions = {}
    for package in _ENV_PACKAGES:
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    from mlpilot._version import __version__

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "mlpilot": __version__,
        "packages": versions,
    }


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    source: str
    path: str
    n_rows: int
    n_columns: int
    sha256: str
    schema: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    kind: str
    status: str
    config: dict[str, Any]
    dataset_id: str | None
    metrics: dict[str, Any] | None
    timings: dict[str, Any] | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model.

    ``files`` maps extra artifact file names (reports, plots, leaderboards) to
    their sha256; they live beside the main artifact in ``directory``.
    """

    name: str
    version: int
    kind: str
    run_id: str | None
    dataset_id: str | None
    artifact_path: Path
    artifact_format: str
    sha256: str
    files: dict[str, str]
    metrics: dict[str, Any]
    headline_metric: str | None
    headline_value: float | None
    schema: dict[str, Any] | None
    environment: dict[str, Any]
    info: dict[str, Any]
    created_at: datetime
    aliases: tuple[str, ...] = field(default=())

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def directory(self) -> Path:
        return self.artifact_path.parent


@dataclass(frozen=True)
class ModelSummary:
    name: str
    kind: str
    latest_version: int
    n_versions: int
    aliases: dict[str, int]
    headline_metric: str | None
    headline_value: float | None
    n_archived: int = 0


def _recorded_info(info: Mapping[str, Any] | None) -> dict[str, Any]:
    """``info`` as the version keeps it: its ``classes`` as JSON holds them (numpy scalars as Python ones)."""
    out = dict(info or {})
    if out.get("classes") is not None:
        out["classes"] = [recorded_label(c) for c in out["classes"]]
    return out


class Registry:
    """Records of datasets, runs, model versions, aliases and events.

    Parameters
    ----------
    workspace : Workspace
        Where artifacts live and which database holds the records.

    Examples
    --------
    >>> import tempfile
    >>> reg = Registry(Workspace.open(tempfile.mkdtemp()))
    >>> mv = reg.register_model("demo", {"w": [1, 2]}, kind="test", metrics={"rmse": 1.5},
    ...                         headline_metric="rmse")
    >>> (mv.name, mv.version, reg.load_model("demo:1"))
    ('demo', 1, {'w': [1, 2]})
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.engine = create_engine(workspace.db_url)
        try:
            metadata.create_all(self.engine)
        except OperationalError as exc:
            raise SourceConnectionError(
                f"Cannot connect to the registry database {safe_url(workspace.db_url)}: "
                f"{type(exc.orig).__name__}. Check that the server is running and the URL "
                "(MLPILOT_DB_URL) is right."
            ) from None

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None) -> Registry:
        """Open the registry of the workspace at ``root`` (see `Workspace.from_env`)."""
        return cls(Workspace.from_env(root))

    def close(self) -> None:
        self.engine.dispose()

    # -- datasets -----------------------------------------------------------------

    def record_dataset(
        self,
        *,
        id: str,
        source: str,
        path: str,
        n_rows: int,
        n_columns: int,
        sha256: str,
        schema: Mapping[str, Any] | None = None,
    ) -> DatasetRecord:
        """Record a snapshot; the same id recorded again keeps the first record (adding a schema if it had none)."""
        existing = self.get_dataset(id, missing_ok=True)
        if existing is not None:
            if existing.schema is None and schema is not None:
                with self.engine.begin() as conn:
                    conn.execute(datasets.update().where(datasets.c.id == id).values(schema=dict(schema)))
                return self.get_dataset(id)  # type: ignore[return-value]
            return existing
        row = {
            "id": id,
            "source": source,
            "path": path,
            "n_rows": n_rows,
            "n_columns": n_columns,
            "sha256": sha256,
            "schema": dict(schema) if schema is not None else None,
            "created_at": _now(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(datasets.insert().values(**row))
        except IntegrityError:
            pass  # a concurrent writer recorded the same content first
        record = self.get_dataset(id)
        assert record is not None
        return record

    def get_dataset(self, id: str, *, missing_ok: bool = False) -> DatasetRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(datasets).where(datasets.c.id == id)).mappings().first()
        if row is None:
            if missing_ok:
                return None
            raise ModelNotFoundError(f"No dataset snapshot with id {id!r} in the registry.")
        return DatasetRecord(**{**row, "created_at": _as_utc(row["created_at"])})

    def list_datasets(self) -> list[DatasetRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(datasets).order_by(datasets.c.created_at)).mappings()
            return [DatasetRecord(**{**r, "created_at": _as_utc(r["created_at"])}) for r in rows]

    # -- runs ---------------------------------------------------------------------

    def start_run(
        self,
        name: str,
        *,
        kind: str,
        config: Mapping[str, Any],
        dataset_id: str | None = None,
    ) -> str:
        """Record a run as ``running`` and return its id."""
        run_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    name=check_name(name),
                    kind=kind,
                    status="running",
                    config=dict(config),
                    dataset_id=dataset_id,
                    started_at=_now(),
                )
            )
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        status: str = "finished",
        metrics: Mapping[str, Any] | None = None,
        timings: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Mark a run ``finished`` or ``failed`` with its metrics or error."""
        with self.engine.begin() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    status=status,
                    metrics=dict(metrics) if metrics is not None else None,
                    timings=dict(timings) if timings is not None else None,
                    error=error,
                    finished_at=_now(),
                )
            )

    def get_run(self, run_id: str) -> RunRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
        if row is None:
            raise ModelNotFoundError(f"No run with id {run_id!r}.")
        return self._run(row)

    def list_runs(self, name: str | None = None) -> list[RunRecord]:
        query = sa.select(runs).order_by(runs.c.started_at)
        if name is not None:
            query = query.where(runs.c.name == name)
        with self.engine.connect() as conn:
            return [self._run(r) for r in conn.execute(query).mappings()]

    @staticmethod
    def _run(row: Any) -> RunRecord:
        return RunRecord(
            **{
                **row,
                "started_at": _as_utc(row["started_at"]),
                "finished_at": _as_utc(row["finished_at"]),
            }
        )

    # -- model versions -----------------------------------------------------------

    def register_model(
        self,
        name: str,
        model: Any,
        *,
        kind: str,
        metrics: Mapping[str, Any] | None = None,
        headline_metric: str | None = None,
        schema: Mapping[str, Any] | None = None,
        dataset_id: str | None = None,
        run_id: str | None = None,
        files: Mapping[str, bytes] | None = None,
        info: Mapping[str, Any] | None = None,
        artifact_format: str = "auto",
        aliases: tuple[str, ...] = (),
        by: str | None = None,
        reason: str | None = None,
        artifact: tuple[bytes, str] | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name``.

        The artifact and ``files`` are written under a fresh directory, fsynced
        and renamed into place before one transaction records the version and
        moves ``aliases`` to it; a crash at any point leaves either no new
        version or a complete one.

        Parameters
        ----------
        name : str
            Model name.
        model : object
            Any object with the framework-neutral contract (``predict`` on a frame).
        kind : str
            ``"tabular"``, ``"recommender"``, ...
        metrics : mapping
            JSON-serialisable metrics.
        headline_metric : str, optional
            Key of ``metrics`` shown in listings; its value must be a number.
        files : mapping of str to bytes, optional
            Extra files (report, plots, leaderboard) stored beside the artifact.
        aliases : tuple of str
            Aliases to point at the new version in the same transaction.
        by, reason : str, optional
            Who or what moved ``aliases`` and why; the ``model_registered`` event records them
            with the version each alias pointed at before (``from_versions``), for
            ``mlpilot models history``.
        artifact : (bytes, str), optional
            ``model`` already serialised, as `dumps` returns it (its bytes and format): stored as
            they are instead of serialising ``model`` again (`mlpilot.train` saves the model as
            soon as it is fitted, so that the time it takes counts within the budget).

        Returns
        -------
        ModelVersion
        """
        check_name(name)
        for alias in aliases:
            check_alias(alias)
        metrics = dict(metrics or {})
        headline_value = None
        if headline_metric is not None:
            value = metrics.get(headline_metric)
            headline_value = float(value) if isinstance(value, int | float) else None
        if artifact is not None and (artifact[1] not in _artifacts.FORMATS or artifact_format not in ("auto", artifact[1])):
            raise InvalidParameterError(
                f"The artifact given is in format {artifact[1]!r}; it must be one of {_artifacts.FORMATS} and agree "
                f"with artifact_format={artifact_format!r}."
            )
        data, fmt = _artifacts.dumps(model, artifact_format) if artifact is None else artifact
        artifact_sha = _artifacts.sha256_bytes(data)
        file_hashes = {fname: _artifacts.sha256_bytes(content) for fname, content in (files or {}).items()}

        # Write everything in a hidden temp dir, then rename it into place.
        final_dir = self.workspace.artifacts_dir / name / uuid.uuid4().hex
        tmp_dir = final_dir.with_name(f".tmp-{final_dir.name}")
        tmp_dir.mkdir(parents=True)
        artifact_name = "model" + _artifacts.suffix(fmt)
        try:
            _artifacts.write_atomic(tmp_dir / artifact_name, data)
            for fname, content in (files or {}).items():
                if "/" in fname or "\\" in fname or fname.startswith("."):
                    raise RegistryError(f"Artifact file name {fname!r} must be a plain file name.")
                _artifacts.write_atomic(tmp_dir / fname, content)
            os.replace(tmp_dir, final_dir)
            fsync_dir(final_dir.parent)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise

        row = {
            "name": name,
            "kind": kind,
            "run_id": run_id,
            "dataset_id": dataset_id,
            "artifact_path": str((final_dir / artifact_name).relative_to(self.workspace.root)),
            "artifact_format": fmt,
            "sha256": artifact_sha,
            "files": file_hashes,
            "metrics": metrics,
            "headline_metric": headline_metric,
            "headline_value": headline_value,
            "schema": dict(schema) if schema is not None else None,
            "environment": environment(),
            "info": _recorded_info(info),
            "created_at": _now(),
        }
        try:
            for _attempt in range(20):
                try:
                    with self.engine.begin() as conn:
                        latest = conn.execute(
                            sa.select(sa.func.max(model_versions.c.version)).where(
                                model_versions.c.name == name
                            )
                        ).scalar()
                        version = max(int(latest or 0), self._last_deleted(conn, name)) + 1
                        conn.execute(model_versions.insert().values(version=version, **row))
                        before = {r["alias"]: r["version"] for r in conn.execute(
                            sa.select(_tables.aliases).where(_tables.aliases.c.name == name)).mappings()}
                        for alias in aliases:
                            self._set_alias(conn, name, alias, version)
                        payload: dict[str, Any] = {"version": version, "aliases": list(aliases)}
                        if aliases:
                            payload["from_versions"] = {alias: before.get(alias) for alias in aliases}
                            payload.update({k: v for k, v in (("by", by), ("reason", reason)) if v is not None})
                        self._event(conn, "model_registered", name, payload)
                    break
                except IntegrityError:
                    continue  # another writer took this version number; try the next
            else:
                raise ConflictError(f"Could not allocate a version number for {name!r}.")
        except BaseException:
            shutil.rmtree(final_dir, ignore_errors=True)
            raise
        return self.get_version(f"{name}:{version}")

    def get_version(self, ref: str | ModelRef) -> ModelVersion:
        """Resolve ``name``, ``name:version`` or ``name@alias`` to a version.

        A bare name resolves to ``champion`` if set, else the latest version.
        """
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        with self.engine.connect() as conn:
            version = parsed.version
            if version is None:
                alias = parsed.alias or "champion"
                version = conn.execute(
                    sa.select(aliases.c.version).where(
                        aliases.c.name == parsed.name, aliases.c.alias == alias
                    )
                ).scalar()
                if version is None:
                    bare = isinstance(ref, str) and "@" not in ref
                    if not bare:
                        raise ModelNotFoundError(
                            f"Model {parsed.name!r} has no alias {alias!r}. "
                            f"See the aliases with: mlpilot models show {parsed.name}"
                        )
                    version = conn.execute(
                        sa.select(sa.func.max(model_versions.c.version)).where(
                            model_versions.c.name == parsed.name
                        )
                    ).scalar()
            row = None
            if version is not None:
                row = (
                    conn.execute(
                        sa.select(model_versions).where(
                            model_versions.c.name == parsed.name,
                            model_versions.c.version == version,
                        )
                    )
                    .mappings()
                    .first()
                )
            if row is None:
                names = [r for r in conn.execute(sa.select(model_versions.c.name).distinct()).scalars()]
                from mlpilot.exceptions import closest_names

                hint = ""
                if parsed.name not in names:
                    hint = closest_names(parsed.name, sorted(names), plural="models")[0]
                raise ModelNotFoundError(f"No model version {parsed} in the registry.{hint}")
            alias_rows = conn.execute(
                sa.select(aliases.c.alias).where(
                    aliases.c.name == parsed.name, aliases.c.version == row["version"]
                )
            ).scalars()
            return self._version(row, tuple(sorted(alias_rows)))

    def _version(self, row: Any, alias_names: tuple[str, ...]) -> ModelVersion:
        values = {k: v for k, v in row.items() if k != "id"}
        values["artifact_path"] = self.workspace.root / row["artifact_path"]
        values["created_at"] = _as_utc(row["created_at"])
        return ModelVersion(**values, aliases=alias_names)

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self.engine.connect() as conn:
            rows = list(
                conn.execute(
                    sa.select(model_versions)
                    .where(model_versions.c.name == name)
                    .order_by(model_versions.c.version)
                ).mappings()
            )
            alias_map: dict[int, list[str]] = {}
            for a in conn.execute(sa.select(aliases).where(aliases.c.name == name)).mappings():
                alias_map.setdefault(a["version"], []).append(a["alias"])
        if not rows:
            raise ModelNotFoundError(f"No model named {name!r} in the registry.")
        return [self._version(r, tuple(sorted(alias_map.get(r["version"], [])))) for r in rows]

    def list_models(self) -> list[ModelSummary]:
        """One summary per model name: versions, aliases, the champion's headline metric."""
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(model_versions).order_by(model_versions.c.name, model_versions.c.version)).mappings())
            alias_rows = list(conn.execute(sa.select(aliases)).mappings())
        by_name: dict[str, list[Any]] = {}
        for r in rows:
            by_name.setdefault(r["name"], []).append(r)
        out = []
        for name, versions in by_name.items():
            alias_map = {a["alias"]: a["version"] for a in alias_rows if a["name"] == name}
            shown_version = alias_map.get("champion", versions[-1]["version"])
            shown = next((v for v in versions if v["version"] == shown_version), versions[-1])
            out.append(
                ModelSummary(
                    name=name,
                    kind=versions[-1]["kind"],
                    latest_version=versions[-1]["version"],
                    n_versions=len(versions),
                    aliases=alias_map,
                    headline_metric=shown["headline_metric"],
                    headline_value=shown["headline_value"],
                    n_archived=sum(1 for v in versions if isinstance(v["info"], dict) and "archived" in v["info"]),
                )
            )
        return out

    def load_model(self, ref: str | ModelRef | ModelVersion) -> Any:
        """Load a version's model after checking its sha256 against the record."""
        mv = ref if isinstance(ref, ModelVersion) else self.get_version(ref)
        data = self.read_file(mv, None)
        return _artifacts.loads(data, mv.artifact_format)

    def read_file(self, mv: ModelVersion, file_name: str | None) -> bytes:
        """Read the artifact (``None``) or an extra file, verifying its sha256."""
        if file_name is None:
            path, expected = mv.artifact_path, mv.sha256
        else:
            if file_name not in mv.files:
                raise ModelNotFoundError(f"Model {mv.ref} has no file {file_name!r}.")
            path, expected = mv.directory / file_name, mv.files[file_name]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactIntegrityError(
                f"The artifact of {mv.ref} is missing from {path}. The workspace was changed "
                "outside mlpilot; register the model again."
            ) from None
        actual = _artifacts.sha256_bytes(data)
        if actual != expected:
            raise ArtifactIntegrityError(
                f"The artifact of {mv.ref} ({path.name}) was modified: its sha256 is "
                f"{actual[:12]}..., the registry recorded {expected[:12]}.... It will not be "
                "loaded. Restore the file or register the model again."
            )
        return data

    # -- archive and delete -------------------------------------------------------

    def archive_version(self, ref: str | ModelRef, *, force: bool = False, reason: str = "") -> ModelVersion:
        """Mark a version archived: it keeps its artifact and stays loadable by ``name:version``,
        loses its aliases, and listings show it apart.

        Raises
        ------
        ConflictError
            The version is its model's champion and ``force`` is false.
        """
        mv = self.get_version(ref)
        self._refuse_champion(mv, "archive", force)
        info = {**mv.info, "archived": {"at": _now().isoformat(), "reason": reason, "aliases": list(mv.aliases)}}
        with self.engine.begin() as conn:
            conn.execute(aliases.delete().where(aliases.c.name == mv.name, aliases.c.version == mv.version))
            conn.execute(model_versions.update().where(
                model_versions.c.name == mv.name, model_versions.c.version == mv.version).values(info=info))
            self._event(conn, "model_archived", mv.name, {
                "version": mv.version, "aliases_removed": list(mv.aliases), "forced": force, "reason": reason})
        return self.get_version(f"{mv.name}:{mv.version}")

    def delete_version(self, ref: str | ModelRef, *, force: bool = False, reason: str = "") -> ModelVersion:
        """Delete a version: its registry row and aliases in one transaction, then its files.

        The files go only after the row: a crash in between leaves a directory no record
        points to (swept by the next delete of that model), never a record without its
        artifact. The version number is never given to a later version.

        Raises
        ------
        ConflictError
            The version is its model's champion and ``force`` is false.
        """
        mv = self.get_version(ref)
        self._refuse_champion(mv, "delete", force)
        with self.engine.begin() as conn:
            conn.execute(aliases.delete().where(aliases.c.name == mv.name, aliases.c.version == mv.version))
            conn.execute(model_versions.delete().where(
                model_versions.c.name == mv.name, model_versions.c.version == mv.version))
            self._event(conn, "model_deleted", mv.name, {
                "version": mv.version, "aliases_removed": list(mv.aliases), "forced": force, "reason": reason,
                "sha256": mv.sha256, "directory": mv.directory.name})
        self._remove_deleted_files(mv.name, first=mv.directory)
        return mv

    def _remove_deleted_files(self, name: str, *, first: Path) -> None:
        """Remove ``first`` and every directory of ``name`` a deleted version left (a crash between
        the transaction and the removal): each is named in its ``model_deleted`` event."""
        parent = first.parent
        payloads = [event.get("payload") for event in self.list_events(name=name, kind="model_deleted")]
        named = [parent / str(p["directory"]) for p in payloads if isinstance(p, dict) and p.get("directory")]
        for directory in dict.fromkeys([first, *named]):
            if directory.is_dir() and not directory.name.startswith("."):
                trash = directory.with_name(f".deleted-{directory.name}")
                os.replace(directory, trash)
                fsync_dir(parent)
        for leftover in parent.glob(".deleted-*"):  # these and any a crash left behind
            shutil.rmtree(leftover, ignore_errors=True)

    @staticmethod
    def _refuse_champion(mv: ModelVersion, action: str, force: bool) -> None:
        if "champion" in mv.aliases and not force:
            raise ConflictError(
                f"{mv.ref} is the champion of {mv.name!r}; it is served under that name. Promote another "
                f"version first (mlpilot models promote {mv.name} VERSION), or pass --force to {action} it "
                f"anyway (the name then has no champion). Nothing was changed."
            )

    @staticmethod
    def _last_deleted(conn: sa.Connection, name: str) -> int:
        payloads = conn.execute(
            sa.select(events.c.payload).where(events.c.kind == "model_deleted", events.c.name == name)
        ).scalars()
        return max((int(p.get("version", 0)) for p in payloads if isinstance(p, dict)), default=0)

    # -- aliases ------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, *, by: str | None = None,
                  reason: str | None = None) -> None:
        """Point ``name@alias`` at ``version`` (which must exist).

        The ``alias_set`` event records the version it pointed at before (``from_version``),
        who or what moved it (``by``) and why (``reason``), for ``mlpilot models history``.
        """
        check_alias(alias)
        self.get_version(f"{name}:{version}")
        previous = self.get_aliases(name).get(alias)
        payload: dict[str, Any] = {"alias": alias, "version": version, "from_version": previous}
        payload.update({k: v for k, v in (("by", by), ("reason", reason)) if v is not None})
        with self.engine.begin() as conn:
            self._set_alias(conn, name, alias, version)
            self._event(conn, "alias_set", name, payload)

    def delete_alias(self, name: str, alias: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(aliases.delete().where(aliases.c.name == name, aliases.c.alias == alias))

    def get_aliases(self, name: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(aliases).where(aliases.c.name == name)).mappings()
            return {r["alias"]: r["version"] for r in rows}

    @staticmethod
    def _set_alias(conn: sa.Connection, name: str, alias: str, version: int) -> None:
        updated = conn.execute(
            aliases.update()
            .where(aliases.c.name == name, aliases.c.alias == alias)
            .values(version=version, updated_at=_now())
        ).rowcount
        if not updated:
            conn.execute(
                aliases.insert().values(name=name, alias=alias, version=version, updated_at=_now())
            )

    # -- events -------------------------------------------------------------------

    def log_event(self, kind: str, name: str | None = None, payload: Mapping[str, Any] | None = None) -> None:
        with self.engine.begin() as conn:
            self._event(conn, kind, name, payload or {})

    @staticmethod
    def _event(conn: sa.Connection, kind: str, name: str | None, payload: Mapping[str, Any]) -> None:
        conn.execute(events.insert().values(kind=kind, name=name, payload=dict(payload), created_at=_now()))

    def list_events(self, *, name: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(events).order_by(events.c.id)
        if name is not None:
            query = query.where(events.c.name == name)
        if kind is not None:
            query = query.where(events.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    # -- watchers: lease and state ------------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl: float, *, now: datetime | None = None) -> dict[str, Any]:
        """Take (or renew) the lease on watching ``name`` for ``ttl`` seconds.

        One conditional UPDATE decides between concurrent watchers on SQLite and
        PostgreSQL alike: the lease is taken only when free, expired or already
        ``owner``'s. Returns ``{"acquired": bool, "owner": ..., "expires_at": ...}``
        (the holder's when not acquired).
        """
        now = now or _now()
        expires = now + timedelta(seconds=ttl)
        with self.engine.connect() as conn:
            exists = conn.execute(sa.select(watchers.c.name).where(watchers.c.name == name)).first()
        if exists is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(watchers.insert().values(name=name, owner=None, expires_at=None, state={},
                                                          updated_at=now))
            except IntegrityError:
                pass  # another watcher created it first; the update below decides
        with self.engine.begin() as conn:
            taken = conn.execute(
                watchers.update()
                .where(watchers.c.name == name,
                       sa.or_(watchers.c.owner.is_(None), watchers.c.owner == owner, watchers.c.expires_at < now))
                .values(owner=owner, expires_at=expires, updated_at=now)
            ).rowcount
            row = conn.execute(sa.select(watchers.c.owner, watchers.c.expires_at)
                               .where(watchers.c.name == name)).mappings().one()
        return {"acquired": bool(taken), "owner": row["owner"], "expires_at": _as_utc(row["expires_at"])}

    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease back (only ``owner``'s own lease)."""
        with self.engine.begin() as conn:
            conn.execute(watchers.update().where(watchers.c.name == name, watchers.c.owner == owner)
                         .values(owner=None, expires_at=None, updated_at=_now()))

    def get_watch_state(self, name: str) -> dict[str, Any]:
        """The watcher's saved state for ``name`` (empty when never watched)."""
        with self.engine.connect() as conn:
            state = conn.execute(sa.select(watchers.c.state).where(watchers.c.name == name)).scalar()
        return dict(state or {})

    def set_watch_state(self, name: str, owner: str, state: Mapping[str, Any]) -> None:
        """Save the watcher's state; refused unless ``owner`` holds the lease."""
        with self.engine.begin() as conn:
            updated = conn.execute(watchers.update().where(watchers.c.name == name, watchers.c.owner == owner)
                                   .values(state=dict(state), updated_at=_now())).rowcount
        if not updated:
            raise ConflictError(
                f"The watcher {owner!r} no longer holds the lease on {name!r} (it expired and another "
                "watcher took it); its state was not saved. Run one watcher per model."
            )


__all__ = [
    "DatasetRecord",
    "ModelSummary",
    "ModelVersion",
    "Registry",
    "RunRecord",
    "SQLAlchemyError",
    "environment",
    "safe_url",
]
