"""The neural family (scikit-learn's MLP) and sample weights, from the learner to the served model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris, load_wine
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

import mlpilot.search._search as search_module
from mlpilot.automl import AutoClassifier, train
from mlpilot.cli import app
from mlpilot.exceptions import DataError
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version
from mlpilot.runtime._compile_final import LearnerFinal, MLPFinal, compile_final
from mlpilot.search import Learner
from tests._sharing import once_per_run

_FAST: dict[str, Any] = {"deterministic": True, "n_trials": 0, "report": False}


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    X, y = load_wine(return_X_y=True, as_frame=True)
    return X.assign(kind=y.map({0: "a", 1: "b", 2: "c"}))


@pytest.fixture(scope="module")
@once_per_run
def iris_workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    frame = X.assign(species=y.map({0: "setosa", 1: "versicolor", 2: "virginica"}))
    root = tmp_path_factory.mktemp("ws")
    small = [{"name": "mlp", "family": "mlp", "params": {"hidden": 16, "layers": 1, "n_estimators": 8}}]
    with pytest.MonkeyPatch.context() as patch:  # a small network: the artifact and runtime paths are the same
        patch.setattr(search_module, "load_portfolio", lambda task: [dict(e) for e in small])
        train(frame, "species", name="iris", workspace=Workspace.open(root), families=("mlp",), holdout=0.0, **_FAST)
    return root, frame


def _scaled(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X[:n]), y[:n]


def test_mlp_is_deterministic_predicts_in_target_units_and_stops_at_its_deadline() -> None:
    X, y = _scaled()
    fits = [Learner(family="mlp", task="regression", params={"n_estimators": 30}, n_jobs=1).fit(X, y)
            for _ in range(2)]
    first, second = (f.predict_values(X) for f in fits)
    np.testing.assert_array_equal(first, second)
    # trained on the standardised target, the output layer is rescaled: values in the target's units
    assert abs(first.mean() - y.mean()) < 0.5 * y.std()
    assert 1 <= fits[0].n_iterations_ <= 30
    ticks = iter(range(100))
    stopped = Learner(family="mlp", task="regression", params={"n_estimators": 30}, n_jobs=1).fit(
        X, y, stop_at=3.0, clock=lambda: float(next(ticks)))
    assert stopped.estimator_.n_iter_ <= 4  # each epoch asks the (fake) clock once
    compiled = compile_final(fits[0], classifier=False)  # the learner's MLP as numpy
    assert isinstance(compiled, LearnerFinal) and isinstance(compiled.inner, MLPFinal)
    np.testing.assert_allclose(compiled.values(X), first, rtol=1e-12)


def test_mlp_saves_loads_and_serves_the_same_answers(iris_workspace: tuple[Path, pd.DataFrame]) -> None:
    root, frame = iris_workspace
    registry = Registry(Workspace.open(root))
    try:
        loaded = load_version(registry, registry.get_version("iris"))
    finally:
        registry.close()
    assert loaded.model.names_ == ["mlp"]
    rows = frame.drop(columns="species").head(20)
    expected = loaded.model.predict_proba(rows)
    assert loaded.compiled is not None and loaded.fast_path.startswith("compiled"), loaded.fast_path
    _labels, proba = loaded.compiled.predict(rows.to_dict("records"), len(rows))
    np.testing.assert_allclose(proba, expected, rtol=1e-9, atol=1e-12)


def test_duplicated_rows_equal_a_weight_of_two() -> None:
    X, y = _scaled(200)
    labels = (y > np.median(y)).astype(int)
    twice = np.arange(50)
    weights = np.ones(len(y))
    weights[twice] = 2.0
    for task, target in (("binary", labels), ("regression", y)):
        weighted = Learner(family="linear", task=task).fit(X, target, sample_weight=weights)
        repeated = Learner(family="linear", task=task).fit(np.vstack([X, X[twice]]),
                                                           np.concatenate([target, target[twice]]))
        plain = Learner(family="linear", task=task).fit(X, target)
        np.testing.assert_allclose(weighted.predict_values(X), repeated.predict_values(X), atol=1e-4)
        assert np.abs(weighted.predict_values(X) - plain.predict_values(X)).max() > 1e-3


def test_a_weighted_train_weighs_its_scores_and_keeps_knn(wine: pd.DataFrame) -> None:
    binary = wine.assign(kind=(wine["kind"] == "b").map({True: "b", False: "other"}))
    weights = np.where(binary["alcohol"] > binary["alcohol"].median(), 4.0, 0.5)
    weighted = train(binary, "kind", register=False, families=("linear", "knn"), sample_weight=weights, **_FAST)
    assert "knn" in set(weighted.leaderboard()["name"])  # its votes weigh the rows (tests/search/test_knn_weights.py)
    assert not any(n.startswith("left out") for n in weighted.outcome.notes)
    rows = weighted.outcome.holdout_frame
    assert "__sample_weight__" not in weighted.outcome.features and "__sample_weight__" not in rows.columns
    # the holdout score is the weighted one, on the registered model's holdout predictions
    held = weighted.outcome.evaluation
    expected = roc_auc_score(weighted.outcome.holdout_y, held.holdout_prediction[:, 1], sample_weight=weights[rows.index])
    assert held.metrics["holdout_roc_auc"] == pytest.approx(expected)
    unweighted = roc_auc_score(weighted.outcome.holdout_y, held.holdout_prediction[:, 1])
    assert held.metrics["holdout_roc_auc"] != pytest.approx(unweighted)


def test_a_weighted_fit_differs_from_an_unweighted_one(wine: pd.DataFrame) -> None:
    X, y = wine.drop(columns="kind"), wine["kind"]
    weights = np.where(y == "c", 5.0, 1.0)
    options = {"deterministic": True, "n_trials": 0, "families": ("linear",), "holdout": 0.0}
    weighted = AutoClassifier(**options).fit(X, y, sample_weight=weights)
    plain = AutoClassifier(**options).fit(X, y)
    assert np.abs(weighted.predict_proba(X) - plain.predict_proba(X)).max() > 1e-3


def test_bad_weights_are_refused_naming_the_column(wine: pd.DataFrame, tmp_path: Path) -> None:
    bad = wine.assign(w=1.0)
    bad.loc[7, "w"] = -2.0
    with pytest.raises(DataError, match=r"weight column 'w' has 1 value\(s\).*row 7: -2\.0\)"):
        train(bad, "kind", register=False, weight_column="w", families=("linear",), **_FAST)
    path = tmp_path / "wine.csv"
    wine.to_csv(path, index=False)
    result = CliRunner().invoke(app, ["train", str(path), "-t", "kind", "-w", str(tmp_path / "ws"),
                                      "--weight-column", "weigth", "--deterministic"])
    assert result.exit_code == 2 and "weight column 'weigth' does not exist" in result.output
    assert "Registered" not in result.output
