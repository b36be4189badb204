"""The web UI: pages through TestClient, and the prediction form in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlpilot.registry import Registry
from mlpilot.serve import ServeSettings, create_app
from tests.serve.conftest import TestClient, running_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--headless",
]


def test_index_lists_models(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'href="/ui/models/churn"' in page.text and "accuracy = 0.87" in page.text


def test_model_page_shows_everything(client: TestClient) -> None:
    page = client.get("/ui/models/churn")
    assert page.status_code == 200
    text = page.text
    for fragment in ("Leaderboard", "logistic_regression", "roc_auc", "[0.8, 0.86]", "Model card",
                     "Demo churn model for tests.", 'name="total_day_minutes"', '<option value="KS"',
                     "/ui/models/churn/files/report.html?version=1", 'enctype="multipart/form-data"'):
        assert fragment in text, fragment
    report = client.get("/ui/models/churn/files/report.html")
    assert report.status_code == 200 and "Evaluation report" in report.text
    assert "sandbox" in report.headers["content-security-policy"]
    assert client.get("/ui/models/churn/files/model.skops").status_code == 404
    assert client.get("/ui/models/nope").status_code == 404


def _form(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {k: str(v) for k, v in rows[0].items()}


def test_form_prediction_and_errors(client: TestClient, rows: list[dict[str, Any]], churn_pipeline: Pipeline) -> None:
    page = client.post("/ui/models/churn/predict", data=_form(rows))
    assert page.status_code == 200
    expected = churn_pipeline.predict(pd.DataFrame(rows[:1]))[0]
    assert f'id="prediction-value">{expected}<' in page.text
    bad = client.post("/ui/models/churn/predict", data={**_form(rows), "total_day_calls": "many"})
    assert bad.status_code == 422 and "&#39;total_day_calls&#39;" in bad.text and "many" in bad.text


def test_csv_upload_gives_a_download_link(client: TestClient, churn_frame: pd.DataFrame) -> None:
    csv = churn_frame.drop(columns=["churn"]).head(20).to_csv(index=False).encode()
    page = client.post("/ui/models/churn/score", files={"file": ("in.csv", csv, "text/csv")})
    assert page.status_code == 200 and "20 rows scored" in page.text
    link = page.text.split('id="download-link" href="')[1].split('"')[0]
    download = client.get(link)
    assert download.status_code == 200 and download.text.splitlines()[0].endswith("probability_yes,warnings")
    assert client.get("/ui/downloads/..%2Fregistry.db").status_code == 404


@pytest.mark.browser
def test_prediction_form_in_chromium(
    registry: Registry, churn_model: Any, rows: list[dict[str, Any]], churn_pipeline: Pipeline, tmp_path: Path
) -> None:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    app = create_app(ServeSettings(home=registry.workspace.root), registry=registry)
    row = rows[3]
    expected = churn_pipeline.predict(pd.DataFrame([row]))[0]
    with running_server(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.click("text=churn")
            page.wait_for_selector("#predict-form")
            for name, value in row.items():
                field = page.locator(f'[name="{name}"]')
                if field.evaluate("el => el.tagName") == "SELECT":
                    field.select_option(str(value))
                else:
                    field.fill(str(value))
            page.click("#predict-button")
            page.wait_for_selector("#prediction-result")
            assert page.inner_text("#prediction-value") == str(expected)
            assert page.locator("#explanation").count() == 0
            page.check("#explain-toggle")  # the same row, explained
            page.click("#predict-button")
            page.wait_for_selector("#explanation")
            assert page.is_checked("#explain-toggle")
            shown = page.locator("#explanation table.contributions tbody td:first-child").all_inner_texts()
            assert sorted(shown) == sorted(row)
            final = churn_pipeline[-1]
            assert page.inner_text("#explanation-base") == f"{final.intercept_[0]:.4g}"
            decision = churn_pipeline.decision_function(pd.DataFrame([row]))[0]
            assert page.inner_text("#explanation-output") == f"{decision:.4g}"
            assert page.locator("#explanation .bar").count() == len(row)
            page.screenshot(path=str(tmp_path / "prediction.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "prediction.png").stat().st_size > 10_000


@pytest.mark.browser
def test_api_docs_render_offline_in_chromium(registry: Registry, churn_model: Any, tmp_path: Path) -> None:
    """/docs loads Swagger UI from the server itself (no CDN): with every request to
    another host blocked, the page still lists the predict operation."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import Route, sync_playwright

    app = create_app(ServeSettings(home=registry.workspace.root), registry=registry)
    foreign: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    with running_server(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.route("**/*", only_local)
            page.goto(url + "/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=15_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            page.screenshot(path=str(tmp_path / "docs.png"))
        finally:
            browser.close()
    assert foreign == []
    assert any(p.replace("\u200b", "").endswith("/predict") for p in paths), paths
