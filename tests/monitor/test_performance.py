"""Label-free performance estimates on the real mlc_churn table, against the metric the labels give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlpilot.exceptions import InvalidParameterError
from mlpilot.monitor._performance import (
    estimate_metric,
    expected_confusion,
    fit_calibrator,
    measure_metric,
)


@pytest.fixture(scope="module")
def scored(churn: pd.DataFrame) -> dict[str, np.ndarray]:
    frame = churn.drop(columns=["rownames"]).sample(frac=1.0, random_state=0).reset_index(drop=True)
    X, y = frame.drop(columns=["churn"]), (frame["churn"] == "yes").astype(int).to_numpy()
    categorical = ["state", "area_code", "international_plan", "voice_mail_plan"]
    numeric = [c for c in X.columns if c not in categorical]
    model = Pipeline([
        ("pre", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), categorical),
                                   ("n", StandardScaler(), numeric)])),
        ("lr", LogisticRegression(max_iter=2000)),
    ]).fit(X.iloc[:2000], y[:2000])
    proba = model.predict_proba(X)
    # reference: rows 2000-3500 (not trained on); live: the rest
    return {"p_ref": proba[2000:3500], "y_ref": y[2000:3500], "p_live": proba[3500:], "y_live": y[3500:]}


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy"])
def test_the_estimate_covers_the_metric_the_labels_give(scored: dict[str, np.ndarray], metric: str) -> None:
    calibrate = fit_calibrator(scored["y_ref"], scored["p_ref"])
    estimate = estimate_metric(scored["p_live"], metric, calibrator=calibrate)
    actual = measure_metric(scored["y_live"], scored["p_live"], metric, n_boot=200)
    assert estimate.value is not None and estimate.interval is not None and actual.interval is not None
    assert estimate.interval[0] <= actual.value <= estimate.interval[1]  # type: ignore[operator]
    assert actual.interval[0] <= actual.value <= actual.interval[1]  # type: ignore[operator]
    # the same probabilities give the same estimate
    assert estimate == estimate_metric(scored["p_live"], metric, calibrator=calibrate)


def test_the_estimate_falls_when_live_rows_are_harder(scored: dict[str, np.ndarray]) -> None:
    calibrate = fit_calibrator(scored["y_ref"], scored["p_ref"])
    p = scored["p_live"]
    confident = np.max(calibrate(p), axis=1) > 0.9
    easy = estimate_metric(p[confident], "accuracy", calibrator=calibrate)
    hard = estimate_metric(p[~confident], "accuracy", calibrator=calibrate)
    assert easy.value is not None and hard.value is not None and hard.interval is not None
    assert hard.interval[1] < easy.value


def test_expected_confusion_sums_to_the_rows(scored: dict[str, np.ndarray]) -> None:
    matrix = expected_confusion(scored["p_live"])
    assert matrix.sum() == pytest.approx(len(scored["p_live"]))
    predicted_yes = int((scored["p_live"][:, 1] > 0.5).sum())
    assert matrix[:, 1].sum() == pytest.approx(predicted_yes)


def test_a_regression_metric_has_no_label_free_estimate() -> None:
    with pytest.raises(InvalidParameterError, match="regression metric"):
        estimate_metric(np.ones((3, 2)) / 2, "rmse")
