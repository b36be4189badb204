"""A self-contained directory that serves one version without the workspace it came from.

It holds a one-version workspace (the artifact, its schema, metrics and files, registered
as the champion, with ``info["exported_from"]`` naming the original version), mlpilot's own
source under ``lib/``, ``requirements.txt`` with every dependency pinned to the version
installed at export, ``serve.py`` and a README with the one-line start command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mlpilot
from mlpilot.export._common import libraries_of, pinned_requirements, python_version, version_record
from mlpilot.registry import ModelVersion, Registry, Workspace

START_COMMAND = "pip install -r requirements.txt && python serve.py --port 8000"

_SERVE_PY = '''"""Serve this bundle's model: python serve.py [mlpilot serve options, e.g. --port 8000]."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "lib"))

from mlpilot.cli import main  # noqa: E402

sys.argv = ["mlpilot", "serve", "--workspace", str(HERE / "workspace"), *sys.argv[1:]]
main()
'''


def _readme(mv: ModelVersion, record: dict[str, Any]) -> str:
    return (
        f"# {mv.name} (exported from {mv.ref})\n\n"
        f"Start it (Python {python_version()}; a fresh virtual environment is best):\n\n"
        f"    {START_COMMAND}\n\n"
        f"Then `POST http://127.0.0.1:8000/v1/models/{mv.name}/predict` with "
        '`{"rows": [{...}]}`; the input columns are in `schema.json`.\n\n'
        f"- `workspace/`: a one-version mlpilot workspace (the artifact, sha256 {mv.sha256[:12]}...)\n"
        "- `lib/mlpilot/`: the mlpilot source the model was exported with\n"
        "- `requirements.txt`: every dependency pinned to the version installed at export\n"
        f"- `model.json`: the registry's record (metrics {sorted(record['metrics'])})\n"
    )


def write_bundle(registry: Registry, mv: ModelVersion, model: Any, directory: Path) -> dict[str, Any]:
    """Write the bundle of ``mv`` (loaded as ``model``) into the empty ``directory``."""
    files = {name: registry.read_file(mv, name) for name in mv.files}
    target = Registry(Workspace.open(directory / "workspace"))
    try:
        copy = target.register_model(
            mv.name, model, kind=mv.kind, metrics=mv.metrics,
            headline_metric=mv.headline_metric, schema=mv.schema, files=files,
            info={**mv.info, "exported_from": {"ref": mv.ref, "sha256": mv.sha256}},
            artifact_format=mv.artifact_format, aliases=("champion",),
            by="mlpilot export --format bundle", reason=f"the bundled version ({mv.ref})")
    finally:
        target.close()
    record = version_record(mv, str(copy.artifact_path.relative_to(directory)))
    (directory / "model.json").write_text(json.dumps(record, indent=2, default=str))
    (directory / "schema.json").write_text(json.dumps(mv.schema, indent=2))
    shutil.copytree(Path(mlpilot.__file__).parent, directory / "lib" / "mlpilot",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    requirements = pinned_requirements(libraries_of(model))
    (directory / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (directory / "serve.py").write_text(_SERVE_PY)
    (directory / "README.md").write_text(_readme(mv, record))
    return {"start": START_COMMAND, "requirements": len(requirements)}
