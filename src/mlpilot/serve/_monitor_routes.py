"""``GET /v1/models/{name}/monitor`` and the web UI's monitoring page.

The page draws each feature's effect against its threshold as a bar in plain
HTML, and the plots of ``mlpilot monitor --html`` (the same code: reference
vs window shares per feature, the metric over time with its bands), drawn in
the worker thread from the report's binned counts.

Both compute `mlpilot.monitor.monitor` on the server's workspace in a worker
thread (after flushing the prediction log, so the window holds every answered
request) and publish the result as Prometheus gauges on ``/metrics``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from mlpilot.exceptions import MlpilotError
from mlpilot.monitor import MonitorReport, monitor
from mlpilot.serve._ui_routes import templates

router = APIRouter(tags=["monitoring"])
ui_router = APIRouter(include_in_schema=False)

#: Features drawn on the page (drifted first, then by importance); the HTML report draws more.
PAGE_FEATURE_PLOTS = 4
_TIME = r"^[0-9A-Za-z:+.\- ]{1,40}$"
SinceQuery = Annotated[str | None, Query(pattern=_TIME, description="Window start: '7d' back, or an ISO time.")]
UntilQuery = Annotated[str | None, Query(pattern=_TIME, description="Window end: '1d' back, or an ISO time.")]
WindowQuery = Annotated[str | None, Query(pattern=r"^[0-9]{1,6}[a-z]{1,4}$",
                                          description="Periods of the metric over time, e.g. '1d'.")]


def _compute(request: Request, name: str, since: str | None, until: str | None, window: str | None) -> MonitorReport:
    state = request.app.state
    state.prediction_log.flush(timeout=5.0)
    report = monitor(name, workspace=state.registry.workspace, since=since, until=until, window=window)
    state.metrics.set_monitor(report.to_dict())
    return report


@router.get(
    "/v1/models/{name}/monitor",
    summary="Drift, estimated and real performance of a model's served version",
    description="The report of `mlpilot monitor NAME --json`: `window`, `features` (effect with interval, "
    "calibrated threshold, p-value), `prediction_drift`, `performance` (`estimated`, `actual`, `holdout`) "
    "and `model_at_risk`.",
    responses={404: {"description": "Unknown model"}, 422: {"description": "No or too few rows in the window"}},
)
async def monitor_report(
    request: Request, name: str, since: SinceQuery = None, until: UntilQuery = None, window: WindowQuery = None,
) -> dict[str, Any]:
    report = await run_in_threadpool(_compute, request, name, since, until, window)
    return report.to_dict()


@ui_router.get("/ui/models/{name}/monitor", response_class=HTMLResponse)
async def monitor_page(
    request: Request, name: str, since: SinceQuery = None, window: WindowQuery = None,
) -> Response:
    def work() -> tuple[MonitorReport, list[dict[str, str]]]:
        # matplotlib is loaded once a page is asked for, not when the server starts
        from mlpilot.monitor._html import report_images

        report = _compute(request, name, since, None, window)
        return report, report_images(report, max_features=PAGE_FEATURE_PLOTS)

    try:
        report, images = await run_in_threadpool(work)
    except MlpilotError as exc:
        return templates.TemplateResponse(request, "monitor.html", {"name": name, "error": str(exc), "report": None},
                                          status_code=exc.status_code)
    return templates.TemplateResponse(request, "monitor.html", {
        "name": name, "error": None, "report": report, "data": report.to_dict(), "images": images,
    })
