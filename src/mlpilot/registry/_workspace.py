"""The workspace: a directory holding snapshots, artifacts, logs and the registry database."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlpilot._types import PathLike

DEFAULT_WORKSPACE = "mlpilot-workspace"


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace.

    Parameters
    ----------
    root : Path
        The workspace directory.
    db_url : str
        SQLAlchemy URL of the registry database: a SQLite file in ``root`` unless
        ``MLPILOT_DB_URL`` names another (e.g. ``postgresql://...``).

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
        """Resolve and create a workspace.

        ``root`` wins over ``MLPILOT_HOME``, which wins over ``./mlpilot-workspace``;
        ``db_url`` wins over ``MLPILOT_DB_URL``, which wins over ``root/registry.db``.
        """
        path = Path(root or os.environ.get("MLPILOT_HOME") or DEFAULT_WORKSPACE).expanduser()
        path = path.resolve()
        for sub in ("snapshots", "artifacts", "logs", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        url = db_url or os.environ.get("MLPILOT_DB_URL") or f"sqlite:///{path / 'registry.db'}"
        return cls(root=path, db_url=url)

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
