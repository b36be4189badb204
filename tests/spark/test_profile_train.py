"""Profile, snapshot and train from a Spark table: the single-machine objects, computed on Spark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.data import infer_schema, profile, read_snapshot
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version, score_frame
from mlpilot.spark import fingerprint, plan_training, read_spark
from tests.spark.conftest import GROUP_TRAIN

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group(GROUP_TRAIN)]
runner = CliRunner()


def test_fingerprint_ignores_row_order_and_partitioning_but_not_content(spark: Any, churn_rows: pd.DataFrame) -> None:
    frame = spark.createDataFrame(churn_rows)
    shuffled = spark.createDataFrame(churn_rows.sample(frac=1.0, random_state=1)).repartition(3)
    changed = churn_rows.copy()
    changed.loc[17, "total_day_minutes"] += 0.5
    first, n = fingerprint(frame)
    assert n == len(churn_rows)
    assert fingerprint(shuffled)[0] == first
    assert fingerprint(spark.createDataFrame(changed))[0] != first


def test_the_driver_sample_is_stratified_and_says_how_it_was_drawn(spark: Any, churn_parquet: Path) -> None:
    frame = read_spark(str(churn_parquet))
    plan = plan_training(frame, "churn", workspace=None, holdout=0.2, max_rows=300)
    assert 200 <= len(plan.sample) <= 450
    assert "stratified by 'churn'" in plan.method and f"{plan.n_train:,} training rows" in plan.method
    share = plan.sample["churn"].value_counts(normalize=True)
    full = frame.groupBy("churn").count().toPandas().set_index("churn")["count"]
    assert share["yes"] == pytest.approx(full["yes"] / full.sum(), abs=0.08)
    assert plan.n_rows == 1200 and plan.holdout.count() == plan.n_rows - plan.n_train
    # a regression target of few distinct values (a count) is sampled uniformly, never by its values
    counted = plan_training(frame, "number_customer_service_calls", workspace=None, holdout=0.2, max_rows=300,
                            task="regression")
    assert counted.method.startswith("a uniform sample of") and 200 <= len(counted.sample) <= 450
    as_classes = plan_training(frame, "number_customer_service_calls", workspace=None, holdout=0.2, max_rows=300)
    assert "stratified by 'number_customer_service_calls'" in as_classes.method  # no task: its 10 values are classes


def test_cli_train_on_spark_registers_a_version_served_without_spark(
    spark_train: tuple[Path, str], churn_rows: pd.DataFrame,
) -> None:
    ws, output = spark_train  # `mlpilot train --engine spark --driver-memory 8g ...` (the session fixture)
    assert "Spark engine: the search and the final fit used all" in output
    registry = Registry(Workspace.open(ws))
    try:
        mv = registry.get_version("churn")
        spark_info = mv.info["model_card"]["data"]["spark"]
        assert spark_info["rows"] == 1200 and spark_info["holdout_evaluated_rows"] == 1200 - spark_info["train_rows"]
        budget = spark_info["budget"]  # the sample's budget is what --driver-memory gave, less the driver's base
        assert budget["driver_memory_option"] == "8g" and budget["budget_bytes"] == (8 << 30) - (800 << 20)
        low, high = mv.metrics["holdout_full_roc_auc_ci"]
        assert low <= mv.metrics["holdout_full_roc_auc"] <= high
        assert all(row["sample"] == spark_info["sample"] for row in mv.info["leaderboard"])
        dataset = registry.get_dataset(mv.dataset_id or "")
        assert dataset is not None and dataset.n_rows == 1200
        stored = read_snapshot(registry.workspace, dataset.id)
        assert len(stored) == 1200 and sorted(stored.columns) == sorted(churn_rows.columns)
        # what mlpilot serve does: the runtime, no Spark involved
        scored = score_frame(load_version(registry, mv), churn_rows.head(50).drop(columns=["churn"])).frame
        assert np.isfinite(scored["probability_yes"]).all()
    finally:
        registry.close()


def test_cli_profile_on_spark_matches_the_single_machine_profile_and_records_a_snapshot(
    spark: Any, churn_parquet: Path, churn_rows: pd.DataFrame, tmp_path: Path,
) -> None:
    """One Spark profile (they are slow to start on a busy machine), checked against the local one."""
    import json

    ws = tmp_path / "ws"
    result = runner.invoke(app, ["profile", str(churn_parquet), "--target", "churn", "--engine", "spark",
                                 "-w", str(ws), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    got, local = printed["profile"], profile(churn_rows, infer_schema(churn_rows, target="churn")).to_dict()
    assert (got["n_rows"], got["n_columns"], got["n_duplicate_rows"]) == (1200, 20, local["n_duplicate_rows"])
    assert got["class_balance"] == local["class_balance"]
    by_name = {c["name"]: c for c in local["columns"]}
    for col in got["columns"]:
        want = by_name[col["name"]]
        assert (col["role"], col["n_missing"]) == (want["role"], want["n_missing"]), col["name"]
        assert abs(col["n_unique"] - want["n_unique"]) <= max(2, 0.03 * want["n_unique"]), col["name"]
        if want["mean"] is not None:
            assert col["mean"] == pytest.approx(want["mean"]) and col["maximum"] == pytest.approx(want["maximum"])
        if want["top_values"]:  # the same counts; among values with equal counts the order may differ
            counts = churn_rows[col["name"]].astype(str).value_counts()
            assert [n for _, n in col["top_values"]] == [n for _, n in want["top_values"]], col["name"]
            assert all(counts[v] == n for v, n in col["top_values"]), col["name"]
    registry = Registry(Workspace.open(ws))
    try:
        assert [(d.id, d.n_rows) for d in registry.list_datasets()] == [(printed["snapshot"], 1200)]
    finally:
        registry.close()
