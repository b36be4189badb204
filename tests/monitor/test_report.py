"""`mlpilot.monitor` on a real model, a real prediction log and real drift injected into the churn table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import mlpilot
from mlpilot.automl._datasets import record_snapshot
from mlpilot.data import infer_schema
from mlpilot.data._snapshot import write_snapshot
from mlpilot.exceptions import DataError, EmptyDataError, InvalidParameterError, ModelNotFoundError
from mlpilot.monitor import MonitorReport, PredictionLog, monitor
from mlpilot.registry import ModelVersion, Registry, Workspace
from mlpilot.runtime import load_version, score_frame
from tests._sharing import once_per_run
from tests.serve.conftest import fit_churn_pipeline

N_TRAIN = 3000
CLASSES = ["no", "yes"]


def register_with_snapshot(registry: Registry, frame: pd.DataFrame, *, name: str = "churn",
                           model: Any = None) -> ModelVersion:
    """Register a churn pipeline trained on ``frame`` with its snapshot, metric, holdout and importances."""
    ws = registry.workspace
    schema = infer_schema(frame, target="churn")
    snapshot = write_snapshot(pa.Table.from_pandas(frame, preserve_index=False), ws, source="mlc_churn")
    record_snapshot(registry, snapshot, schema)
    return registry.register_model(
        name, model if model is not None else fit_churn_pipeline(frame), kind="tabular",
        metrics={"holdout_roc_auc": 0.82, "holdout_roc_auc_ci": [0.79, 0.85]}, headline_metric="holdout_roc_auc",
        schema=schema.to_dict(), dataset_id=snapshot.id,
        info={"task": "binary", "target": "churn", "metric": "roc_auc", "classes": CLASSES,
              "model_card": {"importance": [{"column": "total_day_minutes", "mean": 0.06, "std": 0.01},
                                            {"column": "international_plan", "mean": 0.04, "std": 0.01},
                                            {"column": "state", "mean": 0.001, "std": 0.001}]}},
        aliases=("champion",),
    )


def log_traffic(registry: Registry, mv: ModelVersion, rows: pd.DataFrame, *, prefix: str, batch: int = 250) -> None:
    """Score ``rows`` with the served model through the runtime and log them, one id per row."""
    loaded = load_version(registry, mv)
    log = PredictionLog(registry.workspace).start()
    try:
        for i in range(0, len(rows), batch):
            chunk = rows.iloc[i:i + batch]
            scored = score_frame(loaded, chunk)
            assert scored.probabilities is not None
            log.log(mv.name, mv.version, scored.inputs, scored.predictions, 1.0,
                    probabilities=[dict(zip(CLASSES, p, strict=True)) for p in scored.probabilities],
                    warnings=scored.flags, request_ids=[f"{prefix}{i + j}" for j in range(len(chunk))])
    finally:
        log.close()


@pytest.fixture(scope="module")
def frame(churn: pd.DataFrame) -> pd.DataFrame:
    return churn.drop(columns=["rownames"]).sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def pipeline(frame: pd.DataFrame) -> Any:
    return fit_churn_pipeline(frame.iloc[:N_TRAIN])


@pytest.fixture(scope="module")
@once_per_run
def served(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame,
           pipeline: Any) -> Iterator[tuple[Registry, ModelVersion]]:
    registry = Registry(Workspace.open(tmp_path_factory.mktemp("monitor") / "ws"))
    mv = register_with_snapshot(registry, frame.iloc[:N_TRAIN], model=pipeline)
    yield registry, mv
    registry.close()


@pytest.fixture(scope="module")
def drifted(served: tuple[Registry, ModelVersion], frame: pd.DataFrame) -> tuple[MonitorReport, pd.DataFrame]:
    """Live rows the model never saw, with a shifted minutes feature and more international plans."""
    registry, mv = served
    live = frame.iloc[N_TRAIN:].drop(columns=["churn"]).reset_index(drop=True)
    live["total_day_minutes"] += 0.5 * frame["total_day_minutes"].std()
    plan = live["international_plan"].to_numpy(copy=True)
    plan[::3] = "yes"
    live["international_plan"] = plan
    live.loc[:19, "total_day_minutes"] = 5000.0  # far past the training range: out_of_range flags
    log_traffic(registry, mv, live, prefix="d")
    labels = pd.DataFrame({"request_id": [f"d{i}" for i in range(len(live))],
                           "label": frame.iloc[N_TRAIN:]["churn"].to_numpy()})
    return monitor("churn", workspace=registry.workspace, window="1h", labels=labels), labels


def test_injected_drift_is_reported_with_the_json_contract(drifted: tuple[MonitorReport, pd.DataFrame]) -> None:
    report, labels = drifted
    data = report.to_dict()
    assert data["window"]["rows"] == len(labels)
    assert {"start", "end", "rows"} <= set(data["window"])
    flagged = {(f["name"], f["aspect"]) for f in data["features"] if f["drift"]}
    assert flagged == {("total_day_minutes", "distribution"), ("international_plan", "distribution")}
    for entry in data["features"]:
        assert {"name", "role", "drift", "effect", "interval", "p_value", "threshold"} <= set(entry)
    minutes = next(f for f in data["features"] if f["name"] == "total_day_minutes" and f["aspect"] == "distribution")
    assert minutes["interval"][0] <= 0.5 <= minutes["interval"][1] + 0.05
    assert data["model_at_risk"] is True and data["drifted_importance"] > 0.9
    assert data["prediction_drift"]["name"] == "prediction"
    performance = data["performance"]
    assert performance["metric"] == "roc_auc" and performance["holdout"]["value"] == 0.82
    estimated, actual = performance["estimated"], performance["actual"]
    assert estimated["interval"][0] < estimated["value"] < estimated["interval"][1]
    # labels for every row: the real metric with its interval. The labels did not follow the injected
    # plans, which a label-free estimate cannot see: the measured metric is the lower one
    assert actual["n_rows"] == len(labels) and actual["interval"][0] <= actual["value"] <= actual["interval"][1]
    assert actual["value"] < estimated["value"]
    assert data["timeline"] and sum(p["rows"] for p in data["timeline"]) == len(labels)


def test_rows_like_the_training_rows_do_not_put_the_model_at_risk(
    tmp_path: Path, frame: pd.DataFrame, pipeline: Any
) -> None:
    registry = Registry(Workspace.open(tmp_path / "ws"))
    try:
        mv = register_with_snapshot(registry, frame.iloc[:N_TRAIN], model=pipeline)
        log_traffic(registry, mv, frame.iloc[N_TRAIN:].drop(columns=["churn"]), prefix="c")
        labels = pd.DataFrame({"request_id": [f"c{i}" for i in range(len(frame) - N_TRAIN)],
                               "label": frame.iloc[N_TRAIN:]["churn"].to_numpy()})
        report = mlpilot.monitor("churn", workspace=registry.workspace, labels=labels)  # the package is callable
    finally:
        registry.close()
    assert report.drifted == [] and not report.model_at_risk and not report.prediction_drift.drift  # type: ignore[union-attr]
    estimated, actual = report.performance["estimated"], report.performance["actual"]
    # the rows are like the training rows: the label-free estimate covers the metric the labels give
    assert estimated is not None and estimated.interval is not None and actual is not None
    assert estimated.interval[0] <= actual.value <= estimated.interval[1]  # type: ignore[operator]


def test_quality_flags_are_counted_per_feature(served: tuple[Registry, ModelVersion], frame: pd.DataFrame,
                                               drifted: tuple[MonitorReport, pd.DataFrame]) -> None:
    report, labels = drifted
    assert report.quality["total_day_minutes"] == {"out_of_range": 20}
    # the real rows have a few values past the training range of their own, counted under their features
    others = sum(n for name, kinds in report.quality.items() if name != "total_day_minutes" for n in kinds.values())
    assert 20 <= report.rows_flagged <= 20 + others < len(labels)
    assert report.to_dict()["quality"]["by_feature"]["total_day_minutes"]["out_of_range"] == 20


def test_bad_windows_and_models_get_clear_errors(served: tuple[Registry, ModelVersion],
                                                 drifted: tuple[MonitorReport, pd.DataFrame]) -> None:
    registry, _ = served
    ws = registry.workspace
    with pytest.raises(ModelNotFoundError, match="churm"):
        monitor("churm", workspace=ws)
    with pytest.raises(EmptyDataError, match="No logged predictions of churn:1 since"):
        monitor("churn", workspace=ws, since="1h", now=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(EmptyDataError, match="fewer than the 100000"):
        monitor("churn", workspace=ws, min_rows=100_000)
    with pytest.raises(InvalidParameterError, match="--since must be"):
        monitor("churn", workspace=ws, since="last tuesday")
    with pytest.raises(InvalidParameterError, match="--window must be a positive duration"):
        monitor("churn", workspace=ws, window="-1d")


def test_a_feature_missing_from_the_log_and_a_version_without_snapshot(tmp_path: Path, frame: pd.DataFrame,
                                                                       pipeline: Any) -> None:
    registry = Registry(Workspace.open(tmp_path / "ws"))
    try:
        mv = register_with_snapshot(registry, frame.iloc[:N_TRAIN], model=pipeline)
        live = frame.iloc[N_TRAIN:N_TRAIN + 400].drop(columns=["churn"])
        log_traffic(registry, mv, live, prefix="m")
        # a client that stopped sending a column: the log has none of it
        log = PredictionLog(registry.workspace).start()
        log.log("churn", mv.version, live.drop(columns=["account_length"]), ["no"] * len(live), 1.0)
        log.close()
        report = monitor("churn", workspace=registry.workspace)
        missing = next(f for f in report.features if f.name == "account_length" and f.aspect == "missing")
        assert missing.drift and missing.effect == pytest.approx(0.5)
        other = registry.register_model("bare", {"w": 1}, kind="test", schema=mv.schema)
        PredictionLog(registry.workspace).start().close()
        log = PredictionLog(registry.workspace).start()
        log.log("bare", other.version, live, ["no"] * len(live), 1.0)
        log.close()
        with pytest.raises(DataError, match="no training snapshot recorded"):
            monitor("bare", workspace=registry.workspace)
    finally:
        registry.close()


def test_the_html_report_draws_the_features_and_the_metric_over_time(
    drifted: tuple[MonitorReport, pd.DataFrame]
) -> None:
    from mlpilot.monitor._html import render_html

    report, _ = drifted
    page = render_html(report, max_features=1)
    # the metric over time, the predictions and the most drifted, most important feature
    assert page.count("<img src='data:image/png;base64,") == 3
    assert "roc_auc over time" in page and "total_day_minutes (distribution)" in page
    assert "Model at risk" in page and "out_of_range: 20" in page


def test_the_package_stays_importable_beside_the_function() -> None:
    import importlib

    package = importlib.import_module("mlpilot.monitor")
    assert package.PredictionLog is PredictionLog and callable(mlpilot.monitor)
    assert mlpilot.monitor is package and package.monitor is monitor


def test_labels_fed_back_replace_the_estimate(served: tuple[Registry, ModelVersion],
                                              drifted: tuple[MonitorReport, pd.DataFrame]) -> None:
    from mlpilot.monitor import record_feedback

    registry, _ = served
    _, labels = drifted
    result = record_feedback(registry.workspace, "churn", labels)
    assert result.accepted == len(labels), result.message
    report = monitor("churn", workspace=registry.workspace)
    assert report.performance["actual"] is not None and report.performance["actual"].n_rows == len(labels)


def test_the_watch_loop_reads_the_real_report(drifted: tuple[MonitorReport, pd.DataFrame]) -> None:
    from mlpilot.autopilot._signals import decay_signal, drift_signal

    report, _ = drifted
    drift = drift_signal(report)
    assert drift.fired and "total_day_minutes" in drift.reason
    decay = decay_signal(report)
    assert decay.evidence["holdout"] == 0.82 and decay.evidence["live"] is not None
    live = decay.evidence["live"]
    low = report.to_dict()["performance"]["holdout"]["interval"]
    floor = low[0] if low is not None else 0.82  # below the holdout's interval (or score) is decay
    assert decay.fired == (live < floor)


def test_the_window_read_in_small_chunks_gives_the_whole_frame_report(
        served: tuple[Registry, ModelVersion], drifted: tuple[MonitorReport, pd.DataFrame]) -> None:
    registry, _ = served
    _, labels = drifted
    now = datetime.now(UTC)
    whole = monitor("churn", workspace=registry.workspace, window="1h", labels=labels, chunk_rows=None, now=now)
    chunked = monitor("churn", workspace=registry.workspace, window="1h", labels=labels, chunk_rows=97, now=now)
    assert whole.rows == len(labels) > 97 * 3  # many chunks, binned and merged
    assert chunked.to_dict()["performance"] == whole.to_dict()["performance"]
    assert chunked.to_dict() == whole.to_dict()
    assert whole.performance["actual"] is not None and whole.performance["actual"].n_rows == len(labels)
