"""Reading delimited text files with pyarrow: encoding and delimiter detection, clear errors."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from mlpilot.exceptions import EmptyDataError, SourceFormatError

_SAMPLE_BYTES = 1 << 16
_DELIMITERS = ",;\t|"


def _looks_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        # UTF-16/32 text has NULs too; those carry a BOM.
        return not sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE))
    if not sample:
        return False
    controls = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return controls / len(sample) > 0.05


def detect_encoding(sample: bytes) -> str:
    """Return a Python codec name for ``sample`` (UTF-8 unless the bytes say otherwise)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        # Cut at the last newline so a multi-byte character split by the sample
        # boundary does not look undecodable.
        cut = sample.rfind(b"\n")
        (sample[: cut + 1] if cut > 0 else sample).decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(sample)
    best = matches.best()
    if best is None:
        raise SourceFormatError(
            "The file's text encoding could not be detected: its bytes are not valid UTF-8 "
            "and match no known encoding. Re-save it as UTF-8."
        )
    # Single-byte Western and Central European code pages often decode the same
    # bytes equally well; prefer Windows-1252, the most common, when it is as good.
    for match in matches:
        if match.encoding in ("cp1252", "latin_1", "iso8859_15") and match.chaos <= best.chaos + 0.05:
            return "cp1252"
    return str(best.encoding)


def detect_delimiter(text: str, suffix: str) -> str:
    """Pick the delimiter from a text sample; ``.tsv`` files default to tabs."""
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if not lines:
        return "\t" if suffix == ".tsv" else ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        if counts[best] == 0:
            return "\t" if suffix == ".tsv" else ","
        return best


class _CountingReader(io.RawIOBase):
    """A file wrapper that reports how many bytes were read, for progress bars."""

    def __init__(self, raw: BinaryIO, on_read: Callable[[int], None]) -> None:
        self._raw = raw
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._on_read(n)
        return int(n or 0)

    def close(self) -> None:
        self._raw.close()
        super().close()


def check_header(header: list[str], path: Path) -> None:
    """Refuse empty and duplicated column names, listing all at once."""
    seen: dict[str, int] = {}
    for name in header:
        seen[name] = seen.get(name, 0) + 1
    dupes = [n for n, c in seen.items() if c > 1]
    if dupes:
        raise SourceFormatError(
            f"{path.name} has duplicate column names: {', '.join(repr(d) for d in dupes)}. "
            "Rename them so every column has a unique name."
        )


def _ragged_rows(path: Path, encoding: str, delimiter: str, limit: int = 5) -> tuple[int, list[tuple[int, int]]]:
    """Find rows whose field count differs from the header's (line number, count)."""
    bad: list[tuple[int, int]] = []
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, [])
        for row in reader:
            if row and len(row) != len(header):
                bad.append((reader.line_num, len(row)))
                if len(bad) >= limit:
                    break
    return len(header), bad


def read_csv(path: Path, *, on_progress: Callable[[int], None] | None = None) -> pa.Table:
    """Read a delimited text file into an Arrow table.

    Raises
    ------
    EmptyDataError
        The file is empty or has a header but no rows.
    SourceFormatError
        Binary content, undecodable bytes, ragged rows or duplicate column names.
    """
    with open(path, "rb") as fh:
        sample = fh.read(_SAMPLE_BYTES)
    if not sample.strip():
        raise EmptyDataError(f"{path.name} is empty: it has no header and no rows.")
    if _looks_binary(sample):
        raise SourceFormatError(
            f"{path.name} does not look like a text (CSV) file: it contains binary bytes. "
            "Pass a CSV, TSV, Parquet, JSON Lines or Excel file."
        )
    encoding = detect_encoding(sample)
    text = sample.decode(encoding, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    delimiter = detect_delimiter(text, path.suffix.lower())
    first_line = text.splitlines()[0] if text.splitlines() else ""
    header = next(csv.reader([first_line], delimiter=delimiter), [])
    check_header(header, path)

    arrow_encoding = "utf8" if encoding in ("utf-8", "utf-8-sig", "ascii") else encoding
    read_options = pacsv.ReadOptions(encoding=arrow_encoding, block_size=1 << 22)
    parse_options = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False)
    convert_options = pacsv.ConvertOptions(
        strings_can_be_null=True,
        null_values=["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A", "?"],
    )
    raw = open(path, "rb")  # noqa: SIM115 - closed by the reader below
    source: Any = io.BufferedReader(_CountingReader(raw, on_progress), 1 << 22) if on_progress else raw
    try:
        table = pacsv.read_csv(source, read_options, parse_options, convert_options)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "Expected" in message and "columns" in message:
            n_header, bad = _ragged_rows(path, encoding, delimiter)
            where = ", ".join(f"line {line} has {n} fields" for line, n in bad) or "a row"
            raise SourceFormatError(
                f"{path.name} has rows with the wrong number of fields: the header has "
                f"{n_header} columns but {where}. Fix or remove those rows (a quoting "
                "problem or a stray delimiter is the usual cause)."
            ) from None
        if "UTF8" in message or "UTF-8" in message or "decode" in message.lower():
            line = _first_bad_utf8_line(path)
            raise SourceFormatError(
                f"{path.name} has bytes that are not valid {encoding} text"
                + (f" (first at line {line})" if line else "")
                + ". Re-save the file as UTF-8 or fix those bytes."
            ) from None
        if "Empty CSV file" in message:
            raise EmptyDataError(f"{path.name} is empty: it has no header and no rows.") from None
        if re.search(r"CSV parse error", message):
            raise SourceFormatError(
                f"{path.name} could not be parsed as delimited text ({message.split(':', 1)[0]}). "
                "Check the quoting and the delimiter."
            ) from None
        raise SourceFormatError(f"{path.name} could not be read: {message.splitlines()[0][:200]}") from None
    finally:
        source.close()
    if any(pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type) for f in table.schema):
        # pyarrow types a column as binary when its bytes are not valid text.
        line = _first_bad_utf8_line(path) if arrow_encoding == "utf8" else None
        raise SourceFormatError(
            f"{path.name} has bytes that are not valid {encoding} text"
            + (f" (first at line {line})" if line else "")
            + ". Re-save the file as UTF-8 or fix those bytes."
        )
    if table.num_rows == 0:
        raise EmptyDataError(
            f"{path.name} has a header ({', '.join(table.column_names[:10])}) but no data rows."
        )
    return table


def _first_bad_utf8_line(path: Path) -> int | None:
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None
