"""A classifier's labels on Spark, matched by value: bool, long and double targets keep every labelled row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlpilot
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version, score_frame
from mlpilot.spark import DRIVER_MEMORY_ENV, predict_spark
from mlpilot.spark._labels import class_codes, of_known_class
from tests.spark.conftest import GROUP_FIT

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group(GROUP_FIT)]
FAST = {"deterministic": True, "n_trials": 0, "families": ("linear",), "report": False}


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    """scikit-learn's bundled breast cancer table (569 rows, six features), its target ``malignant`` as a bool."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.iloc[:, :6].copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["malignant"] = bunch.target == 0
    return frame


def test_rows_of_a_known_class_and_their_codes_are_found_by_value(spark: Any, cancer: pd.DataFrame) -> None:
    rows = cancer.head(60)
    frame = pd.DataFrame({"b": rows["malignant"].astype(object), "l": rows["malignant"].astype(np.int64),
                          "d": rows["malignant"].astype(float), "s": rows["malignant"].map({True: "yes", False: "no"})})
    frame.loc[[2, 7], "b"] = None
    frame.loc[[2, 7], "d"] = np.nan
    table = spark.createDataFrame(frame).repartition(2)
    for column, classes, n in [("b", [False, True], 58), ("l", [0, 1], 60), ("d", [0, 1], 58), ("s", ["no", "yes"], 60),
                               ("l", [1], int(rows["malignant"].sum()))]:
        assert of_known_class(table, column, classes).count() == n, column  # Spark's "true" and "1.0" are found too
    codes = class_codes(frame["d"], [0, 1])
    assert np.isnan(codes[[2, 7]]).all() and (codes[~np.isnan(codes)] == frame["d"].dropna().to_numpy()).all()
    assert class_codes(frame["b"].dropna(), [False, True]).tolist() == frame["l"].drop(index=[2, 7]).tolist()


@pytest.mark.parametrize("kind", ["bool", "double"])
def test_a_bool_or_double_target_is_scored_on_its_whole_holdout_and_predicted_in_its_kind(
    spark: Any, cancer: pd.DataFrame, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = cancer if kind == "bool" else cancer.assign(malignant=cancer["malignant"].astype(float))
    run = mlpilot.train(spark.createDataFrame(frame).repartition(2), "malignant", name="cancer",
                        workspace=tmp_path, **FAST)  # type: ignore[arg-type]
    info = run.outcome.card["data"]["spark"]
    held_out = info["rows"] - info["train_rows"]
    assert held_out > 50 and info["holdout_rows"] == held_out  # every held-out row is of a class (none dropped)
    assert run.metrics["holdout_full_rows"] == held_out and 0.5 < run.metrics["holdout_full_roc_auc"] <= 1
    expected = [False, True] if kind == "bool" else [0, 1]
    assert run.model.classes_.tolist() == expected and [type(c) for c in run.model.classes_.tolist()] == [
        type(c) for c in expected]
    registry = Registry(Workspace.open(tmp_path))
    try:
        mv = registry.get_version("cancer")
        assert mv.info["classes"] == expected
        rows = frame.head(120)
        with monkeypatch.context() as mp:  # the driver names the columns from the version's record alone
            mp.setattr("mlpilot.spark._score.load_version", _not_on_the_driver)
            result = predict_spark(registry, mv, spark.createDataFrame(rows), str(tmp_path / "scored.parquet"))
        local = score_frame(load_version(registry, mv, fast_path=False), rows).frame
        if kind == "bool":
            legacy = _int_class_copy(registry, mv)
            old = predict_spark(registry, legacy, spark.createDataFrame(rows), str(tmp_path / "legacy.parquet"))
    finally:
        registry.close()
    scored = pd.read_parquet(result.output)
    assert result.n_scored == 120 and list(scored.columns) == list(local.columns)
    assert f"probability_{expected[1]}" in scored.columns
    assert scored["prediction"].dtype == (bool if kind == "bool" else np.int64)
    key = list(cancer.columns[:3])
    scored, local = (f.sort_values(key).reset_index(drop=True) for f in (scored, local))
    assert scored["prediction"].tolist() == local["prediction"].tolist()
    np.testing.assert_allclose(scored[f"probability_{expected[1]}"], local[f"probability_{expected[1]}"], rtol=1e-9)
    if kind == "bool":  # a model saved when a bool target's ensemble predicted 1/0: the recorded labels and names
        legacy_scored = pd.read_parquet(old.output).sort_values(key).reset_index(drop=True)
        assert list(legacy_scored.columns) == list(local.columns) and legacy_scored["prediction"].dtype == bool
        assert legacy_scored["prediction"].tolist() == local["prediction"].tolist()
        np.testing.assert_allclose(legacy_scored["probability_True"], local["probability_True"], rtol=1e-9)


def _not_on_the_driver(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("predict_spark loaded the model on the driver")


def _int_class_copy(registry: Registry, mv: Any) -> Any:
    """``mv`` registered again as saved before bool classes were kept: its ensemble's classes 0 and 1."""
    model = registry.load_model(mv)
    model.classes_ = model.classes_.astype(np.int64)
    return registry.register_model(mv.name, model, kind="tabular", schema=mv.schema, info=dict(mv.info))


def test_a_bool_target_past_the_driver_budget_is_fitted_on_the_cluster_and_served_as_bools(
    spark: Any, churn_rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`xgboost.spark` takes numeric labels only: the bool classes are coded for it and come back as bools."""
    table = churn_rows.assign(churn=churn_rows["churn"] == "yes")
    monkeypatch.setenv(DRIVER_MEMORY_ENV, "1m")  # the search's sample is the least there is (500 of ~960 rows)
    run = mlpilot.train(spark.createDataFrame(table).repartition(2), "churn", name="big", workspace=tmp_path,
                        **{**FAST, "families": ("xgboost",)})  # type: ignore[arg-type]
    fit = run.outcome.card["data"]["spark"]["final_fit"]
    assert (fit["where"], fit.get("learner")) == ("cluster", "xgboost.spark SparkXGBClassifier"), fit
    assert run.model.classes_.tolist() == [False, True] and 0.5 < run.metrics["holdout_full_roc_auc"] <= 1
    registry = Registry(Workspace.open(tmp_path))
    try:
        mv = registry.get_version("big")
        assert mv.info["classes"] == [False, True]
        served = score_frame(load_version(registry, mv), table.drop(columns="churn")).frame
    finally:
        registry.close()
    assert served["prediction"].dtype == bool and {"probability_False", "probability_True"} <= set(served.columns)
    # the labels are the served probabilities at the cluster fit's own threshold
    threshold = fit["threshold"]["value"]
    assert served["prediction"].tolist() == (served["probability_True"] >= threshold).tolist()
    assert (served["prediction"] == table["churn"]).mean() > 0.9  # above the 0.86 of "nobody churns"
