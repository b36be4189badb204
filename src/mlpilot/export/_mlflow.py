"""An MLflow pyfunc model directory that predicts through mlpilot's runtime (imports mlflow: load lazily).

``mlflow.pyfunc.load_model(DIR).predict(df)`` validates ``df`` against the schema and scores it
with `mlpilot.runtime.score_frame`, so it returns what ``mlpilot predict`` and the REST API
return: ``prediction`` and one ``probability_<class>`` column per class (and ``warnings``).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from mlpilot.data import Schema
from mlpilot.export._common import (
    VERSION_FILE,
    libraries_of,
    pinned_requirements,
    version_from_record,
    write_version_record,
)
from mlpilot.registry import ModelVersion

with warnings.catch_warnings():  # mlflow warns about type hints of its own modules when imported
    warnings.simplefilter("ignore")
    import mlflow.pyfunc


class MlpilotPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """The pyfunc wrapper: loads the artifact (hash-checked) and scores frames with the runtime."""

    def load_context(self, context: Any) -> None:
        from mlpilot.runtime import load_artifact

        directory = Path(context.artifacts["mlpilot"])
        self.loaded = load_artifact(version_from_record(directory), fast_path=False)

    # no type hints: MLflow would convert the input by them instead of by the signature
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """``model_input`` as a DataFrame, scored: ``prediction``, ``probability_<class>``, ``warnings``."""
        from mlpilot.runtime import score_frame

        frame = pd.DataFrame(model_input)
        scored = score_frame(self.loaded, frame).frame
        return scored.iloc[:, frame.shape[1]:].reset_index(drop=True)


def _example(schema: Schema) -> pd.DataFrame:
    from mlpilot.runtime._verify import sample_rows

    row = sample_rows(schema, {}, n_random=0)[0].values
    # integer columns stay integers (MLflow would not take int64 for a double column)
    return pd.DataFrame([row], columns=list(schema.feature_names))


def write_mlflow(mv: ModelVersion, model: Any, directory: Path, staging: Path) -> dict[str, Any]:
    """Save ``mv`` as an MLflow pyfunc model in ``directory`` (which must not exist yet)."""
    from mlflow.models import infer_signature

    from mlpilot.runtime import load_artifact

    parts = staging / "artifact"
    parts.mkdir()
    artifact = "model" + mv.artifact_path.suffix
    shutil.copyfile(mv.artifact_path, parts / artifact)
    write_version_record(mv, parts, artifact)
    schema = Schema.from_dict(mv.schema) if mv.schema else None
    example = _example(schema) if schema is not None else None
    signature = None
    if example is not None:
        wrapper = MlpilotPyfunc()
        wrapper.loaded = load_artifact(version_from_record(parts), fast_path=False)
        with warnings.catch_warnings():  # MLflow's advice on integer columns (a warning it would turn into "any")
            warnings.simplefilter("ignore")
            signature = infer_signature(example, wrapper.predict(None, example))
    requirements = pinned_requirements(("mlflow-skinny", *libraries_of(model)))
    with warnings.catch_warnings():  # MLflow's advice on cloudpickle and integer columns
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(
            path=str(directory), python_model=MlpilotPyfunc(), artifacts={"mlpilot": str(parts)},
            pip_requirements=requirements, signature=signature, input_example=example,
            metadata={"mlpilot_ref": mv.ref, "mlpilot_sha256": mv.sha256})
    shutil.rmtree(parts)
    return {"requirements": len(requirements),
            "artifact": f"artifacts/artifact/{artifact}", "record": f"artifacts/artifact/{VERSION_FILE}"}

