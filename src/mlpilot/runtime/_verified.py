"""Verification outcomes kept in the workspace, so that a restart does not verify the same artifact again.

Checking a compiled fast path against the library (`mlpilot.runtime._verify`)
costs seconds to a minute; its outcome depends only on the artifact, on the
libraries that score it and on mlpilot's own code. The record is keyed by all
three: the artifact's sha256, the versions of the scoring libraries, and a hash
of mlpilot's source files. Any change of one of them is a different key, so a
new library or a new compiler verifies again. The record holds the outcome
(``None``: verified, or the reason it was refused), when it was found, how long
it took, and a fingerprint of the compiled path (a hash of what it gives on the
first sample rows): a record is used only when today's compiled path gives those
rows bit for bit, so whatever changed the compiled path unseen verifies again.
A file that cannot be read or parsed is ignored (verified again).

    <workspace>/verified/<key>.json
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: The libraries whose predictions the compiled path is checked against (and that compute it).
LIBRARIES = ("numpy", "scipy", "scikit-learn", "pandas", "lightgbm", "xgboost", "catboost", "skops")


@functools.cache
def _environment() -> str:
    """The scoring libraries' versions and a hash of mlpilot's source, as one string."""
    from importlib import metadata

    import mlpilot

    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=-")
    source = hashlib.sha256()
    package = Path(mlpilot.__file__).parent
    for path in sorted(package.rglob("*.py")):
        source.update(str(path.relative_to(package)).encode())
        source.update(path.read_bytes())
    return ";".join([*versions, f"mlpilot-source={source.hexdigest()}"])


@dataclass(frozen=True)
class Verified:
    """A recorded verification: ``problem`` is None when the compiled path agreed."""

    problem: str | None
    seconds: float
    at: float
    fingerprint: str


class VerificationRecords:
    """Verification outcomes under ``directory`` (a workspace's ``verified/``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def of_workspace(cls, root: Path) -> VerificationRecords:
        return cls(root / "verified")

    @staticmethod
    def key(sha256: str) -> str:
        """The record's name for an artifact of this ``sha256`` under today's libraries and code."""
        return hashlib.sha256(f"{sha256};{_environment()}".encode()).hexdigest()

    def get(self, sha256: str) -> Verified | None:
        path = self.directory / f"{self.key(sha256)}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("sha256") != sha256:
                return None
            problem = record["problem"]
            return Verified(None if problem is None else str(problem), float(record["seconds"]), float(record["at"]),
                            str(record["fingerprint"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            logger.warning("ignoring the unreadable verification record %s", path)
            return None

    def put(self, sha256: str, problem: str | None, seconds: float, fingerprint: str) -> None:
        """Write the record atomically; a workspace that cannot be written to just keeps none."""
        path = self.directory / f"{self.key(sha256)}.json"
        record = {"sha256": sha256, "problem": problem, "seconds": round(seconds, 3), "at": time.time(),
                  "fingerprint": fingerprint, "environment": _environment()}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            logger.info("verification record not written (%s)", exc)
