"""The model runtime: load a registered version and score rows with it, without HTTP.

``serve`` (HTTP), ``mlpilot predict`` (files) and, later, stream consumers all
score through this package, so they validate and answer alike:

- `load_version` loads a `ModelVersion` (the registry checks the file's hash)
  into a `LoadedModel`: the model, its schema, its class labels and, where
  every part is known to the compiler, a verified numpy fast path
  (``_compile*.py``, checked by ``_verify.py`` on rows synthesised from the
  schema). `ModelCache` holds loaded versions by alias and swaps them when an
  alias moves.
- Inputs are validated against the schema (``_inputs.py``: JSON values and CSV
  chunks; ``_quality.py``: the one set of input-quality rules; ``_validator.py``:
  the one-pass check of clean requests).
- `score` is the general path (the model's own predict methods on a frame);
  `score_compiled` the fast path for validated JSON values. `predict_payload`
  validates, scores and shapes one JSON request (`predict_body` one request
  body: `prepare_body` parses a clean one without the 19-digit scan); `score_frame` a DataFrame and
  `score_csv` a CSV stream, both with the columns ``prediction``,
  ``probability_<class>`` and ``warnings``.

What the compiler can compile is registered by exact class: whole models
(`register_compiler`, e.g. mlpilot's `TabularEnsemble`), a pipeline's first step
(`register_preprocessor`: `ColumnTransformer`, `TabularPreprocessor`), column-wise
transformers (`register_transformer`) and final estimators (`register_final`:
LightGBM, linear models, mlpilot's `Learner`). Anything else is served by its
own predict methods.
Nothing here imports FastAPI or Starlette.
"""

from mlpilot.runtime._cache import DEFAULT_ALIAS, ModelCache
from mlpilot.runtime._compile import register_compiler, register_preprocessor
from mlpilot.runtime._compile_final import register_final
from mlpilot.runtime._compile_transformers import register_transformer
from mlpilot.runtime._frames import ScoredFrame, score_csv, score_frame
from mlpilot.runtime._loaded import LoadedModel, load_artifact, load_version
from mlpilot.runtime._request import (
    Prepared,
    predict_body,
    predict_payload,
    prepare,
    prepare_body,
    problem_dict,
    score_prepared,
    shape,
)
from mlpilot.runtime._score import probability_dicts, score, score_compiled

__all__ = [
    "DEFAULT_ALIAS",
    "LoadedModel",
    "ModelCache",
    "Prepared",
    "ScoredFrame",
    "load_artifact",
    "load_version",
    "predict_body",
    "predict_payload",
    "prepare",
    "prepare_body",
    "probability_dicts",
    "problem_dict",
    "register_compiler",
    "register_final",
    "register_preprocessor",
    "register_transformer",
    "score",
    "score_compiled",
    "score_csv",
    "score_frame",
    "score_prepared",
    "shape",
]
