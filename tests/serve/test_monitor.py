"""A real server on 127.0.0.1 receives drifted traffic; `mlpilot monitor --json`, the route, the page and /metrics see it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app as cli_app
from mlpilot.registry import Registry, Workspace
from mlpilot.serve import ServeSettings, create_app
from tests._sharing import once_per_run
from tests.monitor.test_report import N_TRAIN, register_with_snapshot
from tests.serve.conftest import running_server
from tests.serve.test_ui_pages import browser  # noqa: F401  (the shared Chromium fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
@once_per_run
def served(tmp_path_factory: pytest.TempPathFactory, churn: pd.DataFrame) -> Iterator[tuple[str, Path]]:
    """A server with a churn champion that has answered 1,500 requests' worth of drifted rows."""
    frame = churn.drop(columns=["rownames"]).sample(frac=1.0, random_state=1).reset_index(drop=True)
    root = tmp_path_factory.mktemp("served") / "ws"
    registry = Registry(Workspace.open(root))
    register_with_snapshot(registry, frame.iloc[:N_TRAIN])
    live = frame.iloc[N_TRAIN:N_TRAIN + 1500].drop(columns=["churn"]).reset_index(drop=True)
    live["total_day_minutes"] += 0.5 * frame["total_day_minutes"].std()
    settings = ServeSettings(home=root, poll_interval=0.1, log_flush_interval=0.05)
    try:
        with running_server(create_app(settings, registry=registry)) as url, httpx.Client(base_url=url, timeout=60) as http:
            for i in range(0, len(live), 250):
                rows = live.iloc[i:i + 250].to_dict("records")
                assert http.post("/v1/models/churn/predict", json={"rows": rows}).status_code == 200
            yield url, root
    finally:
        registry.close()


def test_monitor_json_after_real_traffic_flags_the_shifted_feature(served: tuple[str, Path]) -> None:
    url, root = served
    with httpx.Client(base_url=url, timeout=120) as http:
        # the route flushes the server's log first, then computes the same report as the CLI
        route = http.get("/v1/models/churn/monitor", params={"since": "1h", "window": "1h"})
        assert route.status_code == 200
        metrics = http.get("/metrics").text
        model_page = http.get("/ui/models/churn")
        unknown = http.get("/v1/models/nope/monitor")
        empty = http.get("/v1/models/churn/monitor", params={"until": "2000-01-01"})
    result = runner.invoke(cli_app, ["monitor", "churn", "--workspace", str(root), "--since", "1h", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["window"]["rows"] == 1500
    flagged = {(f["name"], f["aspect"]) for f in report["features"] if f["drift"]}
    assert flagged == {("total_day_minutes", "distribution")}
    assert report["model_at_risk"] is True
    assert report["performance"]["estimated"]["metric"] == "roc_auc"
    assert report["performance"]["holdout"]["value"] == 0.82
    assert route.json()["features"] == report["features"]
    assert len(route.json()["timeline"]) >= 1
    # Prometheus gauges of the last report: drift per feature, the estimated metric
    gauge = re.search(r'mlpilot_drift_effect\{model="churn",feature="total_day_minutes",aspect="distribution"\} (\S+)',
                      metrics)
    assert gauge is not None and float(gauge.group(1)) > 0.3
    assert re.search(r'mlpilot_metric_estimated\{model="churn",metric="roc_auc"\} 0\.\d+', metrics)
    assert 'mlpilot_model_at_risk{model="churn"} 1' in metrics
    assert 'href="/ui/models/churn/monitor"' in model_page.text
    assert unknown.status_code == 404 and "nope" in unknown.text
    assert empty.status_code == 422 and "No logged predictions" in empty.text


@pytest.mark.browser
def test_the_monitoring_page_draws_the_plots_in_chromium(served: tuple[str, Path], browser: Any,  # noqa: F811
                                                        tmp_path: Path) -> None:
    url, _ = served
    page = browser.new_page()
    try:
        answer = page.goto(url + "/ui/models/churn/monitor?window=1h", timeout=180_000)  # computed, then drawn
        assert answer is not None and answer.status == 200
        assert "Model at risk" in page.inner_text("#monitor-verdict")
        assert "total_day_minutes" in page.inner_text("#monitor-features") and page.is_visible("#monitor-timeline")
        page.wait_for_selector("#monitor-plots img")
        plots = page.eval_on_selector_all("#monitor-plots img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
        titles = [t for t, _, _ in plots]
        # the metric over time with its bands, the predictions, then the shifted feature first among the features
        assert titles[0] == "roc_auc over time" and titles[1].startswith("predictions")
        assert titles[2].startswith("total_day_minutes (distribution)"), titles
        assert len(plots) == 6 and all(done and width > 300 for _, done, width in plots)  # decoded, not broken
        page.screenshot(path=str(tmp_path / "monitor.png"), full_page=True)
    finally:
        page.close()
    assert (tmp_path / "monitor.png").stat().st_size > 20_000


def test_the_cli_says_what_is_wrong_with_exit_code_2(served: tuple[str, Path]) -> None:
    _, root = served
    unknown = runner.invoke(cli_app, ["monitor", "nope", "--workspace", str(root)])
    assert unknown.exit_code == 2 and "nope" in unknown.output
    empty = runner.invoke(cli_app, ["monitor", "churn", "--workspace", str(root), "--until", "2000-01-01"])
    assert empty.exit_code == 2 and "No logged predictions of churn:1" in empty.output
    bad = runner.invoke(cli_app, ["monitor", "churn", "--workspace", str(root), "--window", "soon"])
    assert bad.exit_code == 2 and "--window must be a positive duration" in bad.output
    unwritable = runner.invoke(cli_app, ["monitor", "churn", "--workspace", str(root), "--html", "/nonexistent/r.html"])
    assert unwritable.exit_code == 2 and "Cannot write --html" in unwritable.output
    shown = runner.invoke(cli_app, ["monitor", "churn", "--workspace", str(root)])
    assert shown.exit_code == 0, shown.output
    assert "model at risk" in shown.output and "total_day_minutes" in shown.output
