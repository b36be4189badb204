"""Parquet struct columns are flattened to parent.child; list columns are refused by name."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlpilot.data import load_dataset, read_source
from mlpilot.exceptions import SourceFormatError


def test_struct_columns_become_dotted_columns(tmp_path: Path) -> None:
    n = 40
    table = pa.table({
        "id": list(range(n)),
        "customer": [{"age": 20 + i % 7, "address": {"city": "Oslo" if i % 2 else "Bergen", "zip": None}} for i in range(n)],
        "churned": ["yes" if i % 3 == 0 else "no" for i in range(n)],
    })
    pq.write_table(table, tmp_path / "nested.parquet")
    frame = read_source(tmp_path / "nested.parquet")
    assert list(frame.columns) == ["id", "customer.age", "customer.address.city", "customer.address.zip", "churned"]
    assert frame["customer.age"].tolist() == [20 + i % 7 for i in range(n)]
    assert frame["customer.address.city"].iloc[1] == "Oslo"
    ds = load_dataset(tmp_path / "nested.parquet", target="churned", workspace=tmp_path / "ws")
    assert {c.name: c.role for c in ds.schema.columns}["customer.age"] == "numeric"


@pytest.mark.parametrize("column", [pa.array([[1, 2], [3], []]), pa.array([[("a", 1)], [], [("b", 2)]],
                                                                            type=pa.map_(pa.string(), pa.int64()))])
def test_list_and_map_columns_are_refused_by_name(tmp_path: Path, column: pa.Array) -> None:
    pq.write_table(pa.table({"id": [1, 2, 3], "tags": column}), tmp_path / "lists.parquet")
    with pytest.raises(SourceFormatError, match=r"lists.parquet has list or map column\(s\) 'tags'.*Explode"):
        read_source(tmp_path / "lists.parquet")
