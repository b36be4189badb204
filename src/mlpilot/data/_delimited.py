"""Reading delimited text files with pyarrow: encoding and delimiter detection, clear errors."""

from __future__ import annotations

import codecs
import csv
import io
import lzma
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from mlpilot.exceptions import EmptyDataError, SourceFormatError

_SAMPLE_BYTES = 1 << 16
_DELIMITERS = ",;\t|"


def looks_binary(sample: bytes) -> bool:
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
    with io.TextIOWrapper(open_decompressed(path), encoding=encoding, errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, [])
        for row in reader:
            if row and len(row) != len(header):
                bad.append((reader.line_num, len(row)))
                if len(bad) >= limit:
                    break
    return len(header), bad


# Compressed text files, recognised by their first bytes (the suffix may lie or be absent).
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
_CODEC_SUFFIX = {"gzip": ".gz", "bz2": ".bz2", "xz": ".xz", "zstd": ".zst"}
COMPRESSED_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd")


def compression_of(path: Path) -> str | None:
    """The compression of ``path`` (``"gzip"``, ``"bz2"``, ``"xz"``, ``"zstd"``) or None."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    return next((codec for magic, codec in _MAGIC.items() if head.startswith(magic)), None)


def open_decompressed(path: Path, on_read: Callable[[int], None] | None = None) -> Any:
    """A binary stream of the file's text, decompressed on the fly when it is compressed.

    ``on_read`` counts the bytes read from disk (compressed bytes), for progress bars.
    """
    codec = compression_of(path)
    raw: Any = open(path, "rb")  # noqa: SIM115 - closed with the stream returned
    if on_read is not None:
        raw = io.BufferedReader(_CountingReader(raw, on_read), 1 << 22)
    if codec is None:
        return raw
    if codec == "xz":
        return _LZMAReader(raw)
    return pa.CompressedInputStream(raw, codec)


class _LZMAReader(lzma.LZMAFile):
    """An xz stream that closes the file under it (``lzma.LZMAFile`` leaves it open)."""

    def __init__(self, raw: Any) -> None:
        super().__init__(raw)
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def decompressed_size(path: Path, codec: str, size: int) -> int:
    """Estimate the size of ``path`` once decompressed, from its first 4 MiB (exact when smaller).

    A prefix that inflates past 256 MiB gives a lower bound, which is enough to
    refuse a read that would not fit.
    """
    prefix = 1 << 22
    with open(path, "rb") as fh:
        head = fh.read(prefix)
    stream: Any = (
        lzma.LZMAFile(io.BytesIO(head)) if codec == "xz"  # noqa: SIM115 - closed below
        else pa.CompressedInputStream(pa.BufferReader(head), codec)
    )
    out = 0
    with stream:
        try:
            while out < (256 << 20) and (chunk := stream.read(1 << 20)):
                out += len(chunk)
        except (OSError, EOFError, pa.ArrowInvalid, ValueError):
            pass  # the cut prefix ends the stream early; what came out is the sample
    if size <= prefix:
        return out
    return int(out / prefix * size)


def _read_sample(stream: Any, name: str) -> bytes:
    """The first 64 KiB of text, extended to hold the whole header line however wide it is."""
    sample = bytes(stream.read(_SAMPLE_BYTES))
    while b"\n" not in sample and len(sample) < _MAX_HEADER_BYTES:
        chunk = bytes(stream.read(1 << 20))
        if not chunk:
            break
        sample += chunk
    if b"\n" not in sample and len(sample) >= _MAX_HEADER_BYTES:
        raise SourceFormatError(
            f"{name}'s first line is longer than {_MAX_HEADER_BYTES >> 20} MiB without a line break; "
            "it is not a delimited text file with one record per line."
        )
    if len(sample) > _SAMPLE_BYTES:
        sample += bytes(stream.read(_SAMPLE_BYTES))  # a few rows after a wide header
    return sample


_MAX_HEADER_BYTES = 64 << 20
_NULL_VALUES = ["", "NA", "N/A", "n/a", "NaN", "nan", "-nan", "-NaN", "null", "NULL", "Null",
                "None", "#N/A", "#NA", "<NA>", "?"]


def read_csv(path: Path, *, on_progress: Callable[[int], None] | None = None) -> pa.Table:
    """Read a delimited text file, plain or compressed (gzip, bz2, xz, zstd), into an Arrow table.

    Raises
    ------
    EmptyDataError
        The file is empty or has a header but no rows.
    SourceFormatError
        Binary content, undecodable bytes, ragged rows, duplicate column names
        or a corrupt compressed file.
    """
    codec = compression_of(path)
    name = path.name
    try:
        with open_decompressed(path) as stream:
            sample = _read_sample(stream, name)
    except (OSError, EOFError, pa.ArrowInvalid) as exc:
        raise _corrupt(name, codec, exc) from None
    if not sample.strip():
        raise EmptyDataError(f"{name} is empty: it has no header and no rows.")
    if looks_binary(sample):
        raise SourceFormatError(
            f"{name} does not look like a text (CSV) file: it contains binary bytes. "
            "Pass a CSV or TSV file (plain or compressed with gzip, bz2, xz or zstd), "
            "Parquet, JSON Lines or Excel."
        )
    encoding = detect_encoding(sample)
    text = sample.decode(encoding, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    suffix = Path(path.stem).suffix.lower() if path.suffix.lower() in COMPRESSED_SUFFIXES else path.suffix.lower()
    delimiter = detect_delimiter(text, suffix)
    lines = text.splitlines()
    header = next(csv.reader([lines[0] if lines else ""], delimiter=delimiter), [])
    check_header(header, path)

    arrow_encoding = "utf8" if encoding in ("utf-8", "utf-8-sig", "ascii") else encoding
    # a block must hold a whole row: wide rows need bigger blocks
    longest = max((len(line) for line in sample.split(b"\n")[:50]), default=0)
    read_options = pacsv.ReadOptions(encoding=arrow_encoding, block_size=max(1 << 22, 4 * longest))
    parse_options = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False)
    convert_options = pacsv.ConvertOptions(strings_can_be_null=True, null_values=_NULL_VALUES)
    source = open_decompressed(path, on_progress)
    try:
        table = pacsv.read_csv(source, read_options, parse_options, convert_options)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "Expected" in message and "columns" in message:
            n_header, bad = _ragged_rows(path, encoding, delimiter)
            where = ", ".join(f"line {line} has {n} fields" for line, n in bad) or "a row"
            raise SourceFormatError(
                f"{name} has rows with the wrong number of fields: the header has "
                f"{n_header} columns but {where}. Fix or remove those rows (a quoting "
                "problem or a stray delimiter is the usual cause)."
            ) from None
        if "UTF8" in message or "UTF-8" in message or "decode" in message.lower():
            line = _first_bad_utf8_line(path)
            raise SourceFormatError(
                f"{name} has bytes that are not valid {encoding} text"
                + (f" (first at line {line})" if line else "")
                + ". Re-save the file as UTF-8 or fix those bytes."
            ) from None
        if "Empty CSV file" in message:
            raise EmptyDataError(f"{name} is empty: it has no header and no rows.") from None
        if re.search(r"CSV parse error", message):
            raise SourceFormatError(
                f"{name} could not be parsed as delimited text ({message.split(':', 1)[0]}). "
                "Check the quoting and the delimiter."
            ) from None
        if codec is not None:
            raise _corrupt(name, codec, exc) from None
        raise SourceFormatError(f"{name} could not be read: {message.splitlines()[0][:200]}") from None
    except (OSError, EOFError) as exc:
        raise _corrupt(name, codec, exc) from None
    finally:
        source.close()
    if any(pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type) for f in table.schema):
        # pyarrow types a column as binary when its bytes are not valid text.
        line = _first_bad_utf8_line(path) if arrow_encoding == "utf8" else None
        raise SourceFormatError(
            f"{name} has bytes that are not valid {encoding} text"
            + (f" (first at line {line})" if line else "")
            + ". Re-save the file as UTF-8 or fix those bytes."
        )
    if table.num_rows == 0:
        raise EmptyDataError(
            f"{name} has a header ({', '.join(table.column_names[:10])}) but no data rows."
        )
    blank = [i for i, n in enumerate(table.column_names) if not n.strip() and table.column(i).null_count == table.num_rows]
    if blank:  # every line ends with the delimiter (as some exports write): a column of no name and no value
        table = table.select([i for i in range(table.num_columns) if i not in blank])
    return read_formatted_numbers(table, name, decimal_mark(text, delimiter))


CURRENCY = "$€£¥₹"
# a number as spreadsheets format it: a sign, a currency symbol before or after, thousands separators,
# a decimal mark, a percent sign. {t}: the thousands separator, {d}: the decimal mark.
_FORMATTED = (r"^\s*[+-]?\s*[{c}]?\s*[+-]?(?:\d{{1,3}}(?:{t}\d{{3}})+|\d+)(?:{d}\d+)?\s*[{c}]?\s*%?\s*$")
FORMATTED_NUMBER = {
    ".": re.compile(_FORMATTED.format(c=re.escape(CURRENCY), t=",", d=r"\.")),
    ",": re.compile(_FORMATTED.format(c=re.escape(CURRENCY), t=r"[. \u00a0]", d=",")),
}
# what makes a value formatted rather than plain (a plain number pyarrow and pandas read themselves): a
# currency symbol, a percent sign, or a comma (thousands with a decimal point, the decimal mark itself otherwise)
_MARK = re.compile(rf"[{re.escape(CURRENCY)}%,]")
#: the characters a formatted number drops besides its thousands separators (a regex class, for Spark's too)
FORMATTING = rf"[\s{re.escape(CURRENCY)}%\u00a0]"


def formatted_numbers(values: pd.Series, decimal: str) -> pd.Series | None:
    """``values`` (text) as float64 when every present value is a formatted number and one at least has a
    mark (a currency symbol, a percent sign, a thousands separator or, with ``decimal=","``, a decimal
    comma); None otherwise. ``$1,234.50`` → 1234.5, ``45%`` → 45.0, ``1.234,5`` → 1234.5 (``decimal=","``).

    Whole numbers with dots only (``1.234``) are left alone: thousands or decimals cannot be told apart.
    """
    present = values.dropna().astype(str)
    pattern = FORMATTED_NUMBER[decimal]
    if present.empty or not present.iloc[:200].str.match(pattern).all():  # most text columns end here
        return None
    if not present.str.match(pattern).all():
        return None
    if not present.str.contains(_MARK).any():
        return None
    text = values.astype("string").str.replace(FORMATTING, "", regex=True)
    text = text.str.replace("." if decimal == "," else ",", "", regex=False)
    if decimal == ",":
        text = text.str.replace(",", ".", regex=False)
    return pd.to_numeric(text, errors="coerce").astype("float64")


def read_formatted_numbers(table: pa.Table, name: str, decimal: str) -> pa.Table:
    """``table`` with its text columns of formatted numbers (`formatted_numbers`) as float64, with a warning.

    A spreadsheet saved as CSV keeps its display formats: ``$1,234.50``, ``45%``, or in a German or
    French locale ``1.234,5`` (with ``;`` between fields). pyarrow reads those as text, which would
    make each number a category.
    """
    converted = []
    columns = list(table.columns)
    for i, column in enumerate(columns):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) or column.null_count == len(column):
            continue
        numbers = formatted_numbers(column.to_pandas(), decimal)
        if numbers is not None:
            columns[i] = pa.array(numbers.to_numpy(), type=pa.float64(), from_pandas=True)
            converted.append(table.column_names[i])
    if not converted:
        return table
    warn_formatted_numbers(name, converted, decimal, stacklevel=5)
    return pa.Table.from_arrays(columns, names=table.column_names)


def warn_formatted_numbers(name: str, converted: list[str], decimal: str, *, stacklevel: int) -> None:
    """The warning that ``name``'s ``converted`` columns of formatted numbers were read as numbers."""
    import warnings

    from mlpilot.exceptions import DataQualityWarning

    shown = ", ".join(map(repr, converted[:10])) + (f" and {len(converted) - 10} more" if len(converted) > 10 else "")
    example = "'1.234,5' as 1234.5" if decimal == "," else "'$1,234.50' as 1234.5, '45%' as 45"
    warnings.warn(
        f"{name}: read {len(converted)} column(s) of formatted numbers as numbers ({example}): {shown}.",
        DataQualityWarning,
        stacklevel=stacklevel,
    )


def decimal_mark(text: str, delimiter: str) -> str:
    """``","`` when ``text`` (a sample) has numbers with a decimal comma and the fields are not
    comma-delimited (where a comma cannot be a decimal mark unquoted), else ``"."``."""
    if delimiter == ",":
        return "."
    comma = re.compile(r"(?:^|[\s" + re.escape(delimiter) + r"])[+-]?\d+,\d+(?:$|[\s%" + re.escape(delimiter + CURRENCY) + "])")
    return "," if any(comma.search(line) for line in text.splitlines()[1:200]) else "."


def _corrupt(name: str, codec: str | None, exc: BaseException) -> SourceFormatError:
    detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    if codec is None:
        return SourceFormatError(f"{name} could not be read ({detail}).")
    return SourceFormatError(
        f"{name} is {codec}-compressed but could not be decompressed ({detail}): the file is "
        f"truncated or corrupt. Check it with the {codec} tool, or pass the uncompressed file."
    )


def _first_bad_utf8_line(path: Path) -> int | None:
    with open_decompressed(path) as stream:
        number, rest = 0, b""
        while chunk := bytes(stream.read(1 << 20)):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return number
        if rest:
            try:
                rest.decode("utf-8")
            except UnicodeDecodeError:
                return number + 1
    return None
