"""`export_model`: resolve the version, check the format takes it, write the directory whole."""


from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpilot.exceptions import InvalidParameterError, MissingDependencyError
from mlpilot.export._common import staged_directory
from mlpilot.registry import ModelVersion, Registry

FORMATS = ("mlflow", "onnx", "bundle")
#: The model kinds each format takes (a bundle serves whatever `mlpilot serve` serves).
_KINDS = {"mlflow": ("tabular",), "onnx": ("tabular",), "bundle": None}


@dataclass(frozen=True)
class ExportResult:
    """What `export_model` wrote: the version, the format, the directory and format-specific details."""

    ref: str
    format: str
    directory: Path
    details: dict[str, Any] = field(default_factory=dict)


def _extra(package: str, what: str) -> MissingDependencyError:
    return MissingDependencyError(package, "export", f"Exporting to {what}")


def export_model(registry: Registry, ref: str, fmt: str, out: str | Path, *, force: bool = False) -> ExportResult:
    """Export the version ``ref`` (``NAME``, ``NAME:V`` or ``NAME@ALIAS``) of ``registry`` as ``fmt`` into ``out``.

    Parameters
    ----------
    registry : Registry
        Where the version is registered.
    ref : str
        The version; a bare name is its champion.
    fmt : {"mlflow", "onnx", "bundle"}
        The format (see docs/export.md).
    out : path
        The directory to create; an existing non-empty one is replaced only with ``force``.

    Returns
    -------
    ExportResult

    Raises
    ------
    ModelNotFoundError
        No such model, version or alias.
    InvalidParameterError
        An unknown format, a model kind the format does not take, or a non-empty ``out``.
    ExportError
        (onnx) a step or family without an ONNX converter, or an ONNX graph that disagrees
        with the pipeline on synthesised rows.
    """
    if fmt not in FORMATS:
        raise InvalidParameterError(f"Unknown export format {fmt!r}. Accepted: {', '.join(FORMATS)}.")
    mv = registry.get_version(ref)
    kinds = _KINDS[fmt]
    if kinds is not None and mv.kind not in kinds:
        raise InvalidParameterError(
            f"{mv.ref} is a {mv.kind} model; the {fmt} format takes {' or '.join(kinds)} models only. "
            "Export it with --format bundle (it serves every kind mlpilot serves). Nothing was written.")
    out = Path(out).expanduser().absolute()
    with staged_directory(out, force=force) as staging:
        model = registry.load_model(mv)
        details = _write(fmt, registry, mv, model, staging, out)
    return ExportResult(mv.ref, fmt, out, details)


def _write(fmt: str, registry: Registry, mv: ModelVersion, model: Any, staging: Path, final: Path) -> dict[str, Any]:
    if fmt == "bundle":
        from mlpilot.export._bundle import write_bundle

        return write_bundle(registry, mv, model, staging)
    if fmt == "mlflow":
        try:
            from mlpilot.export._mlflow import write_mlflow
        except ImportError:
            raise _extra("mlflow-skinny", "MLflow") from None
        target = staging / "model"
        details = write_mlflow(mv, model, target, staging)
        details["load"] = f"mlflow.pyfunc.load_model({str(final)!r})"
        for path in target.iterdir():  # the pyfunc directory is the export itself
            path.rename(staging / path.name)
        target.rmdir()
        return details
    try:
        from mlpilot.export._onnx import write_onnx
    except ImportError:
        raise _extra("onnxruntime", "ONNX") from None
    return write_onnx(registry, mv, staging)


__all__ = ["FORMATS", "ExportResult", "export_model"]
