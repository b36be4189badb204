"""Batch scoring on Spark: the runtime's columns and values, bad rows rejected, never a failed job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.exceptions import InvalidParameterError, SchemaValidationError
from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import load_version, score_frame
from mlpilot.spark import predict_spark, read_spark
from tests.spark.conftest import GROUP_TRAIN

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group(GROUP_TRAIN)]
runner = CliRunner()


@pytest.fixture(scope="module")
def registry(churn_workspace: Path) -> Any:
    reg = Registry(Workspace.open(churn_workspace))
    yield reg
    reg.close()


def test_cli_predict_on_spark_writes_the_runtimes_columns_and_values(
    spark: Any, churn_parquet: Path, churn_rows: pd.DataFrame, churn_workspace: Path, registry: Registry,
    tmp_path: Path,
) -> None:
    out = tmp_path / "scored.parquet"
    result = runner.invoke(app, ["predict", "churn", str(churn_parquet), "--engine", "spark", "-o", str(out),
                                 "-w", str(churn_workspace)])
    assert result.exit_code == 0, result.output
    assert f"Wrote {len(churn_rows):,} predictions" in result.output
    scored = pd.read_parquet(out)
    mv = registry.get_version("churn")
    local = score_frame(load_version(registry, mv, fast_path=False), churn_rows).frame
    assert list(scored.columns) == list(local.columns)
    key = ["state", "account_length", "total_day_minutes", "total_eve_minutes", "total_night_minutes"]
    scored = scored.sort_values(key).reset_index(drop=True)
    local = local.sort_values(key).reset_index(drop=True)
    assert (scored["prediction"] == local["prediction"]).all()
    np.testing.assert_allclose(scored["probability_yes"], local["probability_yes"], rtol=1e-9)
    assert (scored["warnings"] == local["warnings"]).all()


def test_bad_rows_go_to_rejects_with_the_single_machine_errors(
    spark: Any, churn_rows: pd.DataFrame, registry: Registry, tmp_path: Path,
) -> None:
    rows = churn_rows.head(200).copy()
    rows["total_day_minutes"] = rows["total_day_minutes"].astype(str)
    rows.loc[5, "total_day_minutes"] = "abc"
    features = rows.columns.drop("churn")
    rows.loc[9, features] = None
    rows.loc[11, "state"] = "ZZ"  # an unseen category: a warning, scored
    mv = registry.get_version("churn")
    result = predict_spark(registry, mv, spark.createDataFrame(rows), str(tmp_path / "out.parquet"))
    assert (result.n_scored, result.n_rejected) == (198, 2)
    assert result.rejects is not None
    rejects = pd.read_parquet(result.rejects)
    assert list(rejects.columns) == [*rows.columns, "error"]
    errors = dict(zip(rejects["total_day_minutes"].fillna("<null>"), rejects["error"], strict=True))
    assert "'total_day_minutes'" in errors["abc"] and "'abc'" in errors["abc"]
    assert "every field is null" in errors["<null>"]
    scored = pd.read_parquet(result.output)
    assert scored.loc[scored["state"] == "ZZ", "warnings"].str.contains("unseen_category:state").all()
    assert scored["prediction"].notna().all()


def test_a_missing_feature_column_is_refused_before_any_job(
    spark: Any, churn_parquet: Path, registry: Registry, tmp_path: Path,
) -> None:
    frame = read_spark(str(churn_parquet)).drop("total_day_minutes")
    with pytest.raises(SchemaValidationError, match="'total_day_minutes' is missing"):
        predict_spark(registry, registry.get_version("churn"), frame, str(tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()


def test_scores_go_to_a_catalog_table_never_over_an_existing_one_unasked(
    spark: Any, churn_parquet: Path, churn_rows: pd.DataFrame, churn_workspace: Path, registry: Registry,
) -> None:
    mv = registry.get_version("churn")
    rows = churn_rows.head(200)
    result = predict_spark(registry, mv, spark.createDataFrame(rows), output_table="default.churn_scores")
    assert (result.output, result.n_scored, result.rejects) == ("table default.churn_scores", 200, None)
    written = spark.table("default.churn_scores").toPandas()
    local = score_frame(load_version(registry, mv, fast_path=False), rows).frame
    assert list(written.columns) == list(local.columns)
    np.testing.assert_allclose(np.sort(written["probability_yes"]), np.sort(local["probability_yes"]), rtol=1e-9)
    cli = ["predict", "churn", str(churn_parquet), "--engine", "spark", "--output-table", "default.churn_scores",
           "-w", str(churn_workspace)]
    refused = runner.invoke(app, cli)  # an existing table: refused before any job, left as it was
    assert refused.exit_code == 2, refused.output
    assert "default.churn_scores already exists; pass --overwrite" in refused.output
    assert spark.table("default.churn_scores").count() == 200
    replaced = runner.invoke(app, [*cli, "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert f"Wrote {len(churn_rows):,} predictions from churn:1 to table default.churn_scores" in replaced.output
    assert spark.table("default.churn_scores").count() == len(churn_rows)
    with pytest.raises(InvalidParameterError, match=r"database 'nowhere' of the output table nowhere\.scores"):
        predict_spark(registry, mv, spark.createDataFrame(rows), output_table="nowhere.scores")
    with pytest.raises(InvalidParameterError, match="is not a catalog table name"):
        predict_spark(registry, mv, spark.createDataFrame(rows), output_table="scores; DROP TABLE x")
    local_engine = runner.invoke(app, [*cli[:3], "--output-table", "default.other", "-w", str(churn_workspace)])
    assert local_engine.exit_code == 2 and "add --engine spark" in local_engine.output
