"""The compiled fast path: same answers as the pipeline, or not used at all."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from mlpilot.data import infer_schema
from mlpilot.registry import ModelVersion, Registry, Workspace
from mlpilot.runtime import LoadedModel, load_version
from mlpilot.runtime._inputs import convert_columns
from mlpilot.runtime._verify import UNSEEN, sample_rows, verify
from mlpilot.serve import ModelCache, ServeSettings, create_app
from mlpilot.tasks import labels_at
from tests._sharing import once_per_run
from tests.serve.conftest import TestClient, fit_churn_pipeline, register_churn


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    X, y = frame.drop(columns=["churn"]), frame["churn"]
    return X, y, [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]


def fit_bench_pipeline(frame: pd.DataFrame) -> Pipeline:
    """The serving benchmark's model: one-hot categoricals, numbers passed through, LightGBM."""
    X, y, categorical = _split(frame)
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), categorical)], remainder="passthrough")
    model = LGBMClassifier(n_estimators=60, num_leaves=15, random_state=0, verbose=-1)
    return Pipeline([("pre", pre), ("model", model)]).fit(X, y)


@pytest.fixture(scope="session")
def bench_pipeline(churn_frame: pd.DataFrame) -> Pipeline:
    return fit_bench_pipeline(churn_frame)


@pytest.fixture(scope="session")
@once_per_run
def trained_workspace(tmp_path_factory: pytest.TempPathFactory, churn_frame: pd.DataFrame) -> Path:
    """A workspace holding a model trained by mlpilot itself (a LightGBM + linear ensemble search)."""
    from mlpilot import train
    from mlpilot._config import config_context

    root = tmp_path_factory.mktemp("trained")
    with config_context(show_progress=False):
        train(churn_frame.head(1200), "churn", name="churn", workspace=Workspace.open(root), deterministic=True,
              n_trials=0, families=("lightgbm", "linear"), report=False)
    return root


def _request_rows(frame: pd.DataFrame, n: int = 40) -> list[dict[str, Any]]:
    """Real rows, then the same rows with unseen categories and missing values."""
    rows: list[dict[str, Any]] = frame.drop(columns=["churn"]).head(n).to_dict("records")
    odd = [dict(r) for r in rows[:12]]
    odd[0]["state"] = "Atlantis"
    odd[1]["international_plan"] = None
    odd[2]["total_day_minutes"] = None
    odd[3]["account_length"] = None
    odd[4].update(state=None, area_code="area_code_999", total_eve_calls=None)
    odd[5]["total_night_charge"] = 1e6
    return rows + odd


def _general(loaded: LoadedModel, rows: list[dict[str, Any]]) -> np.ndarray:
    columns = {name: [r[name] for r in rows] for name in loaded.feature_names}
    data, _warnings = convert_columns(columns, loaded.schema)
    return np.asarray(loaded.model.predict_proba(pd.DataFrame(data)))


def _assert_same_answers(loaded: LoadedModel, rows: list[dict[str, Any]]) -> None:
    assert loaded.compiled is not None, loaded.fast_path
    expected = _general(loaded, rows)
    labels, proba = loaded.compiled.predict(rows, len(rows))
    assert proba is not None
    np.testing.assert_allclose(proba, expected, rtol=1e-9, atol=1e-12)
    classes = np.asarray(loaded.model.classes_, dtype=object)
    assert labels.tolist() == labels_at(classes, expected, loaded.threshold).tolist()  # a trained model's threshold
    for i, row in enumerate(rows[:12] + rows[-12:]):  # one at a time: the scalar encoders
        _one_label, one = loaded.compiled.predict([row], 1)
        np.testing.assert_allclose(one, expected[[rows.index(row)]], rtol=1e-9, atol=1e-12, err_msg=f"row {i}")


def test_bench_pipeline_compiles_to_the_same_probabilities(
    registry: Registry, churn_frame: pd.DataFrame, bench_pipeline: Pipeline
) -> None:
    loaded = load_version(registry, register_churn(registry, churn_frame, bench_pipeline))
    assert loaded.fast_path.startswith("compiled") and "LightGBM" in loaded.fast_path
    _assert_same_answers(loaded, _request_rows(churn_frame))


def test_a_model_trained_by_mlpilot_compiles_to_the_same_probabilities(
    trained_workspace: Path, churn_frame: pd.DataFrame
) -> None:
    registry = Registry(Workspace.open(trained_workspace))
    try:
        loaded = load_version(registry, registry.get_version("churn"))
    finally:
        registry.close()
    assert type(loaded.model).__name__ == "TabularEnsemble"
    assert loaded.fast_path.startswith("compiled: ensemble")
    _assert_same_answers(loaded, _request_rows(churn_frame.iloc[1200:]))


def test_verification_rows_cover_every_category_missing_and_unseen(churn_frame: pd.DataFrame) -> None:
    schema = infer_schema(churn_frame.drop(columns=["rownames"], errors="ignore"), target="churn")
    rows = sample_rows(schema, {"state": ["XX"]})
    states = {r.values["state"] for r in rows}
    assert set(schema["state"].categories or ()) | {"XX", UNSEEN, None} <= states
    for col in schema.features:
        assert any(r.values[col.name] is None for r in rows), col.name
    assert any(r.values["account_length"] == schema["account_length"].maximum for r in rows)
    assert all(set(r.values) == set(schema.feature_names) for r in rows)


@pytest.fixture
def apps(registry: Registry) -> Iterator[tuple[TestClient, TestClient]]:
    """The same registry served with and without the fast path."""
    def make(fast_path: bool) -> FastAPI:
        return create_app(ServeSettings(home=registry.workspace.root, fast_path=fast_path, prediction_log=False),
                          registry=registry)

    with TestClient(make(True)) as fast, TestClient(make(False)) as general:
        yield fast, general


def _post(client: TestClient, body: Any, query: str = "") -> Any:
    return client.post(f"/v1/models/churn/predict{query}", content=json.dumps(body),
                       headers={"content-type": "application/json", "x-request-id": "same-id"})


def _served(client: TestClient) -> LoadedModel:
    return client.app.state.models.get("churn")  # type: ignore[attr-defined, no-any-return]


def test_the_server_answers_alike_with_and_without_the_fast_path(
    registry: Registry, churn_frame: pd.DataFrame, bench_pipeline: Pipeline, apps: tuple[TestClient, TestClient]
) -> None:
    register_churn(registry, churn_frame, bench_pipeline)
    fast, general = apps
    assert _served(fast).compiled is not None and _served(general).compiled is None
    rows = _request_rows(churn_frame, 10)
    columns = {k: [r[k] for r in rows[:3]] for k in rows[0]}
    bodies = [{"rows": rows[:1]}, {"rows": rows}, {"rows": rows[10:12]}, {"rows": rows[14:15]}, {"columns": columns},
              {"rows": [dict(rows[0], favourite_colour="blue")]}]
    for body in bodies:
        a, b = _post(fast, body), _post(general, body)
        assert a.status_code == b.status_code == 200, a.text
        assert a.json() == b.json()
    flagged = _post(fast, {"rows": rows[10:12]}).json()
    assert flagged["warnings"][0]["kind"] == "unseen_category" and flagged["warnings"][0]["rows"] == [0]


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
values = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8) | st.sampled_from(["KS", "yes", "no", "area_code_415"])


def test_any_field_values_get_the_same_answer_from_both_paths(
    registry: Registry, churn_frame: pd.DataFrame, bench_pipeline: Pipeline, apps: tuple[TestClient, TestClient],
    rows: list[dict[str, Any]],
) -> None:
    register_churn(registry, churn_frame, bench_pipeline)
    fast, general = apps
    fields = sorted(rows[0])

    @FUZZ
    @given(changes=st.lists(st.tuples(st.integers(0, 4), st.sampled_from([*fields, "extra"]), values), max_size=4),
           n=st.integers(1, 5))
    def run(changes: list[tuple[int, str, Any]], n: int) -> None:
        batch = [dict(r) for r in rows[:n]]
        for i, field, value in changes:
            if i < n:
                batch[i][field] = value
        a, b = _post(fast, {"rows": batch}), _post(general, {"rows": batch})
        assert a.status_code == b.status_code, (a.text, b.text)
        assert a.json() == b.json()

    run()


def test_the_model_detail_says_how_the_served_version_is_scored(client: TestClient, rows: list[dict[str, Any]]) -> None:
    assert _post(client, {"rows": rows}).status_code == 200  # loaded now
    selected = client.get("/v1/models/churn").json()["selected"]
    assert selected["fast_path"].startswith("compiled: "), selected["fast_path"]
    assert client.get("/v1/models/churn?version=1").json()["selected"]["fast_path"] == selected["fast_path"]


def _one_hot_and(churn_frame: pd.DataFrame, numeric_step: Any) -> tuple[pd.DataFrame, Any, ColumnTransformer]:
    """Churn features and target, and a ColumnTransformer: categoricals one-hot, ``numeric_step`` on the rest."""
    X, y, categorical = _split(churn_frame)
    numeric = [c for c in X.columns if c not in categorical]
    return X, y, ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
                                    ("num", numeric_step, numeric)])


def test_an_unknown_transformer_falls_back_to_the_pipeline(
    registry: Registry, churn_frame: pd.DataFrame, rows: list[dict[str, Any]], apps: tuple[TestClient, TestClient]
) -> None:
    X, y, pre = _one_hot_and(churn_frame, FunctionTransformer(np.log1p))
    pipeline = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=3000))]).fit(X, y)
    register_churn(registry, churn_frame, pipeline)
    fast, _general = apps
    loaded = _served(fast)
    assert loaded.compiled is None and "not compiled" in loaded.fast_path and "FunctionTransformer" in loaded.fast_path
    answer = _post(fast, {"rows": rows}).json()
    assert answer["predictions"] == pipeline.predict(pd.DataFrame(rows)).tolist()
    assert "FunctionTransformer" in fast.get("/v1/models/churn").json()["selected"]["fast_path"]


def test_a_slow_final_estimator_is_compiled_but_micro_batched(
    registry: Registry, churn_frame: pd.DataFrame, rows: list[dict[str, Any]], apps: tuple[TestClient, TestClient]
) -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    X, y, pre = _one_hot_and(churn_frame, SimpleImputer(strategy="median"))
    boosted = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)  # no compiled form
    register_churn(registry, churn_frame, make_pipeline(pre, boosted).fit(X, y))
    fast, general = apps
    loaded = _served(fast)
    assert loaded.compiled is not None and not loaded.compiled.inline, loaded.fast_path
    for body in ({"rows": rows[:1]}, {"rows": rows}, {"rows": [dict(rows[0], state="Atlantis", total_day_calls=None)]}):
        a, b = _post(fast, body), _post(general, body)
        assert a.status_code == b.status_code == 200 and a.json() == b.json()
    assert fast.app.state.batcher.batched_requests == 3  # type: ignore[attr-defined]


def test_a_forest_fed_sparse_rows_is_refused_at_load(
    registry: Registry, churn_frame: pd.DataFrame, rows: list[dict[str, Any]], apps: tuple[TestClient, TestClient]
) -> None:
    """A real disagreement: scikit-learn forests take NaN in a dense matrix but refuse it in a sparse one,
    which is what this ColumnTransformer gives them, so the compiled (dense) path would answer rows with
    missing numbers that the pipeline refuses."""
    from sklearn.ensemble import RandomForestClassifier

    X, y, categorical = _split(churn_frame)
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), categorical)], remainder="passthrough")
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0, n_jobs=1)
    register_churn(registry, churn_frame, make_pipeline(pre, forest).fit(X, y))
    fast, general = apps
    loaded = _served(fast)
    assert loaded.compiled is None
    assert loaded.fast_path.startswith("refused at load: the pipeline refuses rows the compiled path scores")
    body = {"rows": [dict(rows[0], total_day_calls=None)]}
    a, b = _post(fast, body), _post(general, body)
    assert a.status_code == b.status_code == 422 and a.json() == b.json()


def test_a_linear_model_without_imputer_refuses_missing_values_on_both_paths(
    registry: Registry, churn_frame: pd.DataFrame, rows: list[dict[str, Any]], apps: tuple[TestClient, TestClient]
) -> None:
    X, y, categorical = _split(churn_frame)
    numeric = [c for c in X.columns if c not in categorical]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="error"), categorical), ("num", StandardScaler(), numeric)])
    register_churn(registry, churn_frame, make_pipeline(pre, LogisticRegression(max_iter=3000)).fit(X, y))
    fast, general = apps
    assert _served(fast).compiled is not None, _served(fast).fast_path
    for change in ({"total_day_minutes": None}, {"state": "Atlantis"}):
        body = {"rows": [dict(rows[0], **change), rows[1]]}
        a, b = _post(fast, body), _post(general, body)
        assert a.status_code == b.status_code == 422 and "could not score" in a.json()["detail"]
        assert a.json() == b.json()
    assert _post(fast, {"rows": rows}).json() == _post(general, {"rows": rows}).json()


def test_a_compiled_model_that_disagrees_is_refused_at_load(
    registry: Registry, churn_frame: pd.DataFrame, rows: list[dict[str, Any]], churn_pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    from mlpilot.runtime import _verify

    other = fit_churn_pipeline(churn_frame, C=0.01)
    real_compile = _verify.compile_model
    monkeypatch.setattr(_verify, "compile_model", lambda model, schema, **kw: real_compile(other, schema, **kw))
    with caplog.at_level(logging.WARNING, logger="mlpilot.runtime._verify"):
        loaded = load_version(registry, register_churn(registry, churn_frame, churn_pipeline))
    assert loaded.compiled is None
    assert loaded.fast_path.startswith("refused at load: probabilities differ")
    assert "disagrees" in caplog.text
    app = create_app(ServeSettings(home=registry.workspace.root, prediction_log=False), registry=registry)
    with TestClient(app) as client:
        answer = _post(client, {"rows": rows}).json()
    proba = np.array([[p["no"], p["yes"]] for p in answer["probabilities"]])
    np.testing.assert_allclose(proba, churn_pipeline.predict_proba(pd.DataFrame(rows)), atol=1e-6)


def test_verify_names_the_row_that_disagrees(registry: Registry, churn_frame: pd.DataFrame, churn_pipeline: Pipeline) -> None:
    from mlpilot.runtime._compile import compile_model

    loaded = load_version(registry, register_churn(registry, churn_frame, churn_pipeline))
    assert loaded.schema is not None and loaded.compiled is not None
    assert verify(loaded.compiled, loaded) is None
    wrong = compile_model(fit_churn_pipeline(churn_frame, C=0.01), loaded.schema, with_proba=True)
    problem = verify(wrong, loaded)
    assert problem is not None and "probabilities differ" in problem and "row with a typical row" in problem


def test_hot_swap_serves_the_new_version_compiled(
    registry: Registry, churn_frame: pd.DataFrame, churn_model: ModelVersion, bench_pipeline: Pipeline,
    rows: list[dict[str, Any]],
) -> None:
    cache = ModelCache(registry)
    first = cache.get("churn")
    v2 = register_churn(registry, churn_frame, bench_pipeline, aliases=())
    registry.set_alias("churn", "champion", v2.version)
    cache.refresh()
    second = cache.get("churn")
    assert first.version.version == 1 and second.version.version == v2.version
    assert first.compiled is not None and second.compiled is not None
    _labels, proba = second.compiled.predict(rows, len(rows))
    np.testing.assert_allclose(proba, bench_pipeline.predict_proba(pd.DataFrame(rows)), rtol=1e-9)


def test_the_openapi_document_keeps_the_predict_parameters(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/models/{name}/predict"]["post"]
    assert [p["name"] for p in operation["parameters"]] == ["name", "version", "alias", "explain"]
    assert _post(client, {"rows": [{}]}, "?version=0").status_code == 422
