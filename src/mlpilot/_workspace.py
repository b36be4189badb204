"""The workspace: a directory holding snapshots, artifacts, logs and the registry database.

A plain value of the base layer. The library never reads the environment for
it; the edges do, once, through `Workspace.from_env` (the CLI, the server
settings and the public entry points called without a workspace).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlpilot._types import PathLike  # type aliases only: no numpy and pandas at start-up

DEFAULT_WORKSPACE = "mlpilot-workspace"
#: Environment variables `Workspace.from_env` reads.
HOME_VARIABLE = "MLPILOT_HOME"
DB_URL_VARIABLE = "MLPILOT_DB_URL"


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace.

    Parameters
    ----------
    root : Path
        The workspace directory.
    db_url : str
        SQLAlchemy URL of the registry database: a SQLite file in ``root``
        unless another is given (e.g. ``postgresql://...``).

    Examples
    --------
    >>> import tempfile
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> ws.db_url.startswith("sqlite:///")
    True
    """

    root: Path
    db_url: str

    @classmethod
    def open(cls, root: PathLike | None = None, *, db_url: str | None = None) -> Workspace:
        """Resolve and create the workspace at ``root`` (default ``./mlpilot-workspace``).

        ``db_url`` defaults to ``root/registry.db``. Nothing is read from the
        environment: see `from_env` for ``MLPILOT_HOME`` and ``MLPILOT_DB_URL``.
        """
        path = Path(root if root is not None and str(root) else DEFAULT_WORKSPACE).expanduser().resolve()
        for sub in ("snapshots", "artifacts", "logs", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        return cls(root=path, db_url=db_url or f"sqlite:///{path / 'registry.db'}")

    @classmethod
    def from_env(
        cls,
        root: PathLike | None = None,
        *,
        db_url: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Workspace:
        """The workspace a user means: the edges' one reading of the environment.

        ``root`` wins over ``MLPILOT_HOME``, which wins over ``./mlpilot-workspace``;
        ``db_url`` wins over ``MLPILOT_DB_URL``, which wins over ``root/registry.db``.

        Examples
        --------
        >>> import tempfile
        >>> home = tempfile.mkdtemp()
        >>> Workspace.from_env(environ={"MLPILOT_HOME": home}).root == Path(home).resolve()
        True
        """
        env = os.environ if environ is None else environ
        return cls.open(root or env.get(HOME_VARIABLE) or None, db_url=db_url or env.get(DB_URL_VARIABLE) or None)

    @classmethod
    def resolve(cls, workspace: Workspace | PathLike | None) -> Workspace:
        """``workspace`` itself, or the one `from_env` resolves for a path or None (public entry points)."""
        return workspace if isinstance(workspace, Workspace) else cls.from_env(workspace)

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "snapshots"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"
