"""Serving: a REST API and a web UI for the models in a workspace.

``create_app(settings)`` builds a FastAPI app; ``mlpilot serve`` runs it under
uvicorn. Routes are grouped by resource: predictions (``_predict_routes``),
model metadata (``_model_routes``), health and metrics (``_health_routes``),
the UI (``_ui_routes``) and, when that module exists, recommendations
(``_recommend_routes``, which must export ``router: fastapi.APIRouter``).

Contract for routers of other packages (``app.state``)
------------------------------------------------------
``app.state.settings``
    The `ServeSettings` (``MLPILOT_*`` environment variables).
``app.state.registry``
    The `mlpilot.registry.Registry` of the served workspace.
``app.state.models``
    A `ModelCache`: ``get(name, version=None, alias=None) -> LoadedModel``,
    with ``LoadedModel.model`` (the loaded object, hash-checked) and
    ``LoadedModel.version`` (its `ModelVersion`). Neither version nor alias
    means the ``champion`` alias (the latest version if there is none). Raises
    `ModelNotFoundError` (404) for an unknown name, version or alias. ``get``
    may load from disk on a miss: call it through ``run_in_threadpool`` from
    async code, or try ``get_cached(...)`` first, which never loads.
``app.state.prediction_log``
    ``log(name, version, inputs: list[dict], outputs: list, latency_ms: float)``;
    non-blocking (records reach the writer in short bursts; a full queue drops
    and counts), written in the background to ``workspace.logs_dir /
    "predictions"``; ``flush()`` waits for what was logged so far; read back
    with `mlpilot.monitor.read_prediction_log`.
``app.state.metrics``
    `Metrics`; ``count_predictions(name, version, n)`` for served rows.

Scoring is `mlpilot.runtime`'s: loading a version, validating inputs, the
compiled fast path (``LoadedModel.compiled``, verified against the pipeline
before it serves; ``LoadedModel.fast_path`` and ``GET /v1/models/{name}`` say
whether it did and why not), scoring and shaping answers. This package adds
HTTP only: routes, the UI, auth, limits, micro-batching and ``/metrics``. JSON
requests and the UI form use the fast path; CSV batches, and any request it
declines, get the pipeline (`mlpilot.runtime.score_frame`, as ``mlpilot predict``).

Errors: raise `mlpilot.exceptions` classes; one handler answers with their
``status_code`` and message. Routes never build error responses by hand.
"""

from mlpilot.runtime import LoadedModel, ModelCache
from mlpilot.serve._app import app_from_env, create_app
from mlpilot.serve._metrics import Metrics
from mlpilot.serve._settings import ServeSettings

__all__ = ["LoadedModel", "Metrics", "ModelCache", "ServeSettings", "app_from_env", "create_app"]
