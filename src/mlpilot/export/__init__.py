"""Exporting a registered version: an MLflow pyfunc model, an ONNX graph, or a self-contained bundle.

`export_model` reads the registry (the hash-checked artifact) and the runtime (the schema,
the scoring path, the compiled description of the preprocessing) and writes one directory,
whole or not at all: it is written beside the target and renamed into place. See docs/export.md.
"""

from mlpilot.export._export import FORMATS, ExportResult, export_model

__all__ = ["FORMATS", "ExportResult", "export_model"]
