"""The model pages: headline with interval, the card as a document, plots, history, recommenders,
form and upload messages; login, logout and the empty-field flag in one shared headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from mlpilot.data import infer_schema
from mlpilot.registry import Registry, Workspace
from mlpilot.serve import ServeSettings, create_app
from tests._sharing import once_per_run
from tests.serve.conftest import TestClient, fit_churn_pipeline, register_churn, running_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--headless"]
CARD = {"intended_use": "Churn scoring for tests.", "evaluation": {"protocol": "holdout 20%", "metric": "roc_auc"},
        "candidates": [{"name": "logistic_regression", "cv": 0.9}, {"name": "dummy", "cv": 0.5}],
        "protocol": {"budget": "time budget 60s", "seed": 7}}  # a card stored before seed became random_state


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    return load_diabetes(as_frame=True).frame


@pytest.fixture(scope="module")
@once_per_run
def registry(tmp_path_factory: pytest.TempPathFactory, churn_frame: pd.DataFrame, diabetes: pd.DataFrame) -> Registry:
    reg = Registry(Workspace.open(tmp_path_factory.mktemp("ui-pages")))
    mv = register_churn(reg, churn_frame, fit_churn_pipeline(churn_frame.head(600)), aliases=())
    metrics = {**mv.metrics, "holdout_roc_auc": 0.9123, "holdout_roc_auc_ci": [0.8811, 0.9432]}
    reg.register_model(
        "churn", reg.load_model(mv), kind="tabular", metrics=metrics, headline_metric="holdout_roc_auc",
        schema=mv.schema, info={**mv.info, "metric": "roc_auc", "model_card": CARD},
        files={"roc_curve.png": b"\x89PNG\r\n\x1a\n", "report.html": b"<h1>r</h1>"}, aliases=("champion",))
    reg.register_model("sugar", make_pipeline(SimpleImputer(), LinearRegression()).fit(diabetes.drop(columns=["target"]), diabetes["target"]),
                       kind="tabular", schema=infer_schema(diabetes, target="target").to_dict(),
                       info={"task": "regression", "target": "target"}, aliases=("champion",))
    reg.register_model(
        "movies", {"not": "served here"}, kind="recommender", headline_metric="ndcg@10", aliases=("champion",),
        metrics={"ndcg@10": 0.3512, "ndcg@10_ci_low": 0.3301, "ndcg@10_ci_high": 0.3722,
                 "tests": {"vs_popular": {"other": "most_popular", "mean_difference": 0.12, "ci_low": 0.1,
                                          "ci_high": 0.14, "p_value": 0.001}}},
        info={"leaderboard": [{"model": "ease", "ndcg@10": 0.35, "chosen": True}], "protocol": {"k": 10}})
    return reg


@pytest.fixture(scope="module")
def client(registry: Registry) -> Iterator[TestClient]:
    with TestClient(create_app(ServeSettings(home=registry.workspace.root), registry=registry)) as test_client:
        yield test_client


def _section(html: str, section_id: str) -> str:
    return html.split(f'<section id="{section_id}">', 1)[1].split("</section>", 1)[0]


def test_model_page_headline_card_plots_and_history(client: TestClient) -> None:
    text = client.get("/ui/models/churn").text
    headline = text.split('id="headline">', 1)[1].split("</p>", 1)[0]
    assert "holdout roc auc" in headline and "0.9123" in headline and "[0.8811, 0.9432]" in headline
    metrics = _section(text, "metrics")
    assert metrics.count("<td>holdout_roc_auc</td>") == 1 and "holdout_roc_auc_ci" not in metrics
    card = _section(text, "model-card")
    assert "{" not in card and "Churn scoring for tests." in card
    assert re.search(r"<h3>Evaluation</h3>\s*<dl><dt>protocol</dt><dd>holdout 20%</dd>", card)
    assert "<th>name</th>" in card and "<td>logistic_regression</td>" in card
    assert "<dt>random state</dt><dd>7</dd>" in card and "seed" not in card  # an old card reads in the new layout
    api = client.get("/v1/models/churn").json()
    assert api["selected"]["model_card"]["protocol"] == {"budget": "time budget 60s", "random_state": 7}
    assert "<figcaption>ROC curve</figcaption>" in _section(text, "evaluation")
    board = _section(text, "leaderboard")
    assert "<th>model</th>" in board and "<th>roc auc</th>" in board and "<td>0.83</td>" in board
    assert text.count('<section id="history">') == 1
    history = _section(text, "history")
    assert history.count("model registered") == 2 and "version: 2; aliases: champion" in history


def test_recommenders_get_their_own_page(client: TestClient) -> None:
    assert 'href="/ui/models/movies"' in client.get("/").text
    text = client.get("/ui/models/movies").text
    assert 'id="predict-form"' not in text and "Score a CSV" not in text and 'id="recommend-form"' in text
    assert re.search(r"<td>ndcg@10</td><td>0.3512</td><td>\[0.3301, 0.3722\]</td>", _section(text, "metrics"))
    assert "ndcg@10_ci_low" not in text
    tests = _section(text, "tests")
    assert "most_popular" in tests and "paired over users" in tests and "[0.1, 0.14]" in tests
    assert 'class="champion"' in _section(text, "leaderboard")


def test_upload_errors_show_under_score_a_csv(client: TestClient) -> None:
    page = client.post("/ui/models/churn/score", files={"file": ("book.xlsx", b"PK\x03\x04" + bytes(200), "text/csv")})
    assert page.status_code == 422
    assert 'id="batch-errors"' in _section(page.text, "batch") and 'id="predict-errors"' not in page.text


def test_regression_outputs_are_rounded_and_empty_fields_named(client: TestClient, diabetes: pd.DataFrame,
                                                               registry: Registry) -> None:
    row = diabetes.drop(columns=["target"]).iloc[0]
    form = {k: str(v) for k, v in row.items()}
    form["bmi"] = ""
    page = client.post("/ui/models/sugar/predict", data=form)
    assert page.status_code == 200, page.text
    shown = page.text.split('id="prediction-value">', 1)[1].split("<", 1)[0]
    assert re.fullmatch(r"-?\d+(\.\d+)?", shown) and len(shown.replace("-", "").replace(".", "").lstrip("0")) <= 4
    assert 'id="empty-fields"' in page.text and "bmi" in page.text.split('id="empty-fields"', 1)[1].split("</p>")[0]


@pytest.fixture(scope="module")
@once_per_run
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.browser
def test_login_returns_to_the_page_asked_and_logout(browser: Any, registry: Registry, rows: list[dict[str, Any]],
                                                    tmp_path: Path) -> None:
    app = create_app(ServeSettings(home=registry.workspace.root, api_key="s3cret-key"), registry=registry)
    with running_server(app) as url:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url + "/ui/models/churn?version=2")
        assert page.url.startswith(url + "/login?next=")
        page.fill('input[name="api_key"]', "s3cret-key")
        page.click("text=Sign in")
        page.wait_for_selector("#predict-form")
        assert page.url == url + "/ui/models/churn?version=2"
        # empty fields are flagged before the form is sent
        assert "total_day_minutes" in page.inner_text("#empty-warning")
        for name, value in rows[0].items():
            field = page.locator(f'[name="{name}"]')
            if field.evaluate("el => el.tagName") == "SELECT":
                field.select_option(str(value))
            else:
                field.fill(str(value))
        page.wait_for_selector("#empty-warning", state="hidden")
        page.fill('[name="total_day_minutes"]', "")
        page.wait_for_selector("#empty-warning", state="visible")
        assert "total_day_minutes" in page.inner_text("#empty-warning")
        # the leaderboard fits its section; the plots are a grid
        fits = page.evaluate("() => { const s = document.querySelector('#leaderboard');"
                             " return s.scrollWidth <= s.clientWidth + 1; }")
        assert fits
        assert page.evaluate("() => getComputedStyle(document.querySelector('.plots')).display") == "grid"
        page.screenshot(path=str(tmp_path / "model.png"), full_page=True)
        page.click("#logout")
        page.wait_for_url(url + "/login")
        page.goto(url + "/")
        assert page.url.startswith(url + "/login")
        page.close()
    assert (tmp_path / "model.png").stat().st_size > 10_000


@pytest.mark.parametrize(("asked", "lands"), [("/ui/models/churn?version=1", "/ui/models/churn?version=1"),
                                              ("//evil.example/x", "/"), ("https://evil.example/", "/")])
def test_login_goes_back_only_to_this_server(registry: Registry, asked: str, lands: str) -> None:
    app = create_app(ServeSettings(home=registry.workspace.root, api_key="k3y", preload=False), registry=registry)
    with TestClient(app) as client:
        login = client.post("/login", data={"api_key": "k3y", "next": asked}, follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == lands
