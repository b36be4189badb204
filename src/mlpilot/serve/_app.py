"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from mlpilot._version import __version__
from mlpilot.monitor import PredictionLog
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import LoadedModel, ModelCache
from mlpilot.runtime._collector import freeze_loaded, scoring_collector
from mlpilot.serve._batching import MicroBatcher
from mlpilot.serve._errors import install_error_handlers
from mlpilot.serve._metrics import Metrics
from mlpilot.serve._middleware import ApiKeyMiddleware, MetricsMiddleware, RequestIdMiddleware
from mlpilot.serve._openapi import build_openapi
from mlpilot.serve._settings import ServeSettings

logger = logging.getLogger(__name__)

_HERE = Path(__file__).parent


class _NullLog:
    """Stands in for the prediction log when it is turned off."""

    dropped = written = pending = errors = corrupt_lines = 0

    def log(self, *args: object, **kwargs: object) -> None:
        return None

    def start(self) -> _NullLog:
        return self

    def flush(self, timeout: float = 0.0) -> None:
        return None

    def close(self) -> None:
        return None


def create_app(settings: ServeSettings | None = None, *, registry: Registry | None = None) -> FastAPI:
    """Build the serving application.

    Parameters
    ----------
    settings : ServeSettings, optional
        Read from ``MLPILOT_*`` environment variables when omitted.
    registry : Registry, optional
        Use this registry instead of opening the one of ``settings.home``.

    Returns
    -------
    FastAPI
        Its ``state`` holds ``settings``, ``registry``, ``models`` (a `ModelCache`),
        ``metrics`` and ``prediction_log``; the model poller and the log writer
        start with the app's lifespan and stop with it.
    """
    settings = settings or ServeSettings()
    if registry is None:
        registry = Registry(Workspace.open(settings.home, db_url=settings.db_url))
    metrics = Metrics()

    def on_load(loaded: LoadedModel) -> None:
        metrics.record_load(loaded.name, loaded.version.version, loaded.load_seconds)
        if settings.tune_gc:  # the new model's objects out of the collector's sight (runtime/_collector.py)
            freeze_loaded()

    models = ModelCache(
        registry,
        poll_interval=settings.poll_interval,
        max_loaded_versions=settings.max_loaded_versions,
        on_load=on_load,
        fast_path=settings.fast_path,
    )
    batcher = MicroBatcher(max_rows=settings.max_batch_rows, workers=settings.batch_workers)
    prediction_log: PredictionLog | _NullLog
    if settings.prediction_log:
        prediction_log = PredictionLog(
            registry.workspace, max_queue=settings.log_queue_size, flush_interval=settings.log_flush_interval,
            keep=settings.log_keep,
        )
    else:
        prediction_log = _NullLog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with scoring_collector() if settings.tune_gc else nullcontext():
            prediction_log.start()
            models.start(preload=settings.preload)
            try:
                yield
            finally:
                await batcher.stop()
                models.stop()
                prediction_log.close()

    # The Swagger UI and ReDoc pages come with their scripts (fastapi-offline), so
    # /docs works on a machine without internet access.
    app = FastAPIOffline(
        title="mlpilot",
        version=__version__,
        description="Predictions from the models in an mlpilot workspace. "
        "Each model's input schema is generated from its training data's schema.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.models = models
    app.state.metrics = metrics
    app.state.prediction_log = prediction_log
    app.state.batcher = batcher
    metrics.gauge("mlpilot_prediction_log_dropped_total", "Prediction log records dropped on a full queue.",
                  lambda: prediction_log.dropped)
    metrics.gauge("mlpilot_prediction_log_written_total", "Prediction log rows written.", lambda: prediction_log.written)
    metrics.gauge("mlpilot_prediction_log_queue", "Requests waiting in the prediction log queue.",
                  lambda: prediction_log.pending)
    metrics.gauge("mlpilot_prediction_log_errors_total", "Prediction log batches that could not be written.",
                  lambda: prediction_log.errors)
    metrics.gauge("mlpilot_prediction_log_lost_lines_total",
                  "Prediction log lines cut short by a crash, found when compacting.", lambda: prediction_log.corrupt_lines)
    metrics.gauge("mlpilot_batches_total", "Micro-batches scored.", lambda: batcher.batches)
    metrics.gauge("mlpilot_batched_requests_total", "Requests scored in micro-batches.",
                  lambda: batcher.batched_requests)
    metrics.gauge("mlpilot_model_swaps_total", "Alias moves swapped in.", lambda: models.swaps)
    metrics.gauge("mlpilot_model_load_failures_total", "Versions that failed to load.", lambda: models.load_failures)

    install_error_handlers(app)
    from mlpilot.serve import (
        _feedback_routes,
        _health_routes,
        _model_routes,
        _monitor_routes,
        _predict_routes,
    )

    app.include_router(_health_routes.router)
    app.include_router(_monitor_routes.router)
    app.include_router(_predict_routes.router)
    app.include_router(_model_routes.router)
    app.include_router(_feedback_routes.router)
    try:
        from mlpilot.serve._recommend_routes import router as recommend_router
    except ModuleNotFoundError as exc:
        if exc.name != "mlpilot.serve._recommend_routes":
            raise
    else:
        app.include_router(recommend_router)
    if settings.ui:
        from mlpilot.serve import _ui_routes

        app.include_router(_ui_routes.router)
        app.include_router(_monitor_routes.ui_router)
        app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")

    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    if settings.api_key is not None and settings.api_key.get_secret_value():
        # Added last so it runs first: unauthorised requests cost nothing else.
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key.get_secret_value())
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory mlpilot.serve:app_from_env`` (used for ``--workers``)."""
    return create_app(ServeSettings())
