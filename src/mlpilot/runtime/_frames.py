"""Scoring tables: a DataFrame (``mlpilot predict``) or a CSV stream (``predict.csv``), with the same columns.

`score_frame` is the one function both call: it validates a frame against the
served schema (`check_frame`'s rules, as the JSON route), scores it with
`score` (the JSON route's general path) and appends ``prediction``, one
``probability_<class>`` column per class and ``warnings`` (each row's input
flags) to the input columns. A name already taken by an input column gets a
trailing underscore.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import pandas as pd

from mlpilot.data import Problem
from mlpilot.data._delimited import (
    decimal_mark,
    detect_delimiter,
    detect_encoding,
    formatted_numbers,
    looks_binary,
)
from mlpilot.data._sources import column_labels
from mlpilot.exceptions import EmptyDataError, InvalidParameterError, SourceFormatError
from mlpilot.runtime._inputs import coerce_csv_chunk, csv_dtypes
from mlpilot.runtime._quality import flag_counts, row_flags
from mlpilot.runtime._score import probability_dicts, score

if TYPE_CHECKING:
    from mlpilot.runtime._loaded import LoadedModel

PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"
WARNINGS_COLUMN = "warnings"


@dataclass(frozen=True)
class ScoredFrame:
    """What `score_frame` gives: the output table and what went into it.

    ``frame`` is the input with the output columns appended; ``inputs`` the
    validated model input (what the prediction log records); ``flags`` each
    row's input flags (``None`` when no row has any).
    """

    frame: pd.DataFrame
    inputs: pd.DataFrame
    predictions: list[Any]
    probabilities: list[list[float]] | None
    warnings: list[Problem]
    flags: list[str] | None


def _free(name: str, frame: pd.DataFrame) -> str:
    return name if name not in frame.columns else name + "_"


def score_frame(loaded: LoadedModel, frame: pd.DataFrame, *, offset: int = 0) -> ScoredFrame:
    """Validate and score ``frame``; raise `SchemaValidationError` (every problem) before scoring anything.

    ``offset`` is the number of ``frame``'s first row in the whole table (row
    numbers in messages and flags count from the table's first data row).
    """
    inputs, warnings = coerce_csv_chunk(frame, loaded.schema, offset)
    predictions, probabilities = score(loaded, inputs)
    result = frame.copy()
    result[_free(PREDICTION_COLUMN, result)] = predictions
    if probabilities is not None and loaded.classes is not None:
        for j, cls in enumerate(loaded.classes):
            result[f"{PROBABILITY_PREFIX}{cls}"] = [row[j] for row in probabilities]
    flags = row_flags(warnings, len(frame), offset=offset)
    result[_free(WARNINGS_COLUMN, result)] = flags or ""
    return ScoredFrame(result, inputs, predictions, probabilities, warnings, flags)


_ACCEPTED_FILES = (
    "predict.csv accepts delimited text (comma, semicolon, tab or pipe; UTF-8, UTF-16 or a single-byte "
    "encoding, with or without a BOM), optionally gzip-compressed"
)


_SAMPLE_BYTES = 1 << 16


def _read_formatted(chunk: pd.DataFrame, schema: Any, decimal: str) -> pd.DataFrame:
    """The chunk's numeric feature columns read as text (``$1,234.50``, ``45%``, ``181,5``) as numbers,
    as `mlpilot train` and `mlpilot predict` read them from a file (`formatted_numbers`)."""
    if schema is None:
        return chunk
    for col in schema.features:
        if col.dtype in ("integer", "float") and col.name in chunk.columns and not pd.api.types.is_numeric_dtype(chunk[col.name]):
            numbers = formatted_numbers(chunk[col.name], decimal)
            if numbers is not None:
                chunk[col.name] = numbers
    return chunk


def _csv_format(source: IO[bytes]) -> tuple[str, str, str, list[str] | None]:
    """The upload's text encoding, delimiter, decimal mark and column names, read as `mlpilot train` and
    `mlpilot predict` read them (the names stripped of spaces, an empty one named by position: `column_labels`).

    The names are ``None`` where pandas' own header is kept: the header does not end within the
    sample, or two names become one.
    """
    sample = source.read(_SAMPLE_BYTES)
    source.seek(0)
    if sample.startswith(b"PK\x03\x04"):
        raise SourceFormatError(
            f"The upload is a ZIP container (an Excel .xlsx workbook, or a zip file), not CSV text. "
            f"{_ACCEPTED_FILES}; save the sheet as CSV and upload that."
        )
    if sample.startswith(b"\xd0\xcf\x11\xe0") or looks_binary(sample):
        raise SourceFormatError(
            f"The upload is a binary file (such as an Excel .xls workbook), not CSV text. {_ACCEPTED_FILES}."
        )
    if not sample.strip():
        return "utf-8", ",", ".", None
    encoding = detect_encoding(sample)
    text = sample.decode(encoding, errors="replace")
    delimiter = detect_delimiter(text, ".csv")
    labels = None
    if "\n" in text or len(sample) < _SAMPLE_BYTES:
        try:
            header = next(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter), [])
        except csv.Error:  # pandas says what is wrong with the file
            header = []
        named = column_labels(header)
        labels = named if header and named != header and len(set(named)) == len(named) else None
    return encoding, delimiter, decimal_mark(text, delimiter), labels


def score_csv(
    loaded: LoadedModel, source: IO[bytes], chunk_rows: int, log: Any = None, metrics: Any = None
) -> tuple[str, int, list[Problem]]:
    """Score a CSV chunk by chunk into a temporary CSV; return its path, the row count and warnings.

    The encoding (BOM included) and delimiter are detected as for `mlpilot
    predict`. Every chunk is validated before anything is returned, so a bad
    row anywhere answers 422 rather than a truncated file. Each chunk goes
    through `score_frame`. ``log`` (a prediction log) and ``metrics`` (with
    ``count_input_flags``) are optional.
    """
    encoding, delimiter, decimal, labels = _csv_format(source)
    fd, out_path = tempfile.mkstemp(prefix="mlpilot-scored-", suffix=".csv")
    n_rows = 0
    warnings: list[Problem] = []
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            try:
                reader = pd.read_csv(source, chunksize=chunk_rows, dtype=csv_dtypes(loaded.schema),
                                     sep=delimiter, encoding=encoding, encoding_errors="strict",
                                     header=0, names=labels)
                for chunk in reader:
                    start = time.perf_counter()
                    scored = score_frame(loaded, _read_formatted(chunk, loaded.schema, decimal), offset=n_rows)
                    scored.frame.to_csv(out, header=n_rows == 0, index=False)
                    if metrics is not None and scored.flags is not None:
                        metrics.count_input_flags(loaded.name, flag_counts(scored.warnings))
                    if log is not None:
                        probabilities = scored.probabilities
                        named = (probability_dicts(loaded.classes, probabilities)
                                 if probabilities is not None and loaded.classes is not None else None)
                        log.log(loaded.name, loaded.version.version, scored.inputs, scored.predictions,
                                (time.perf_counter() - start) * 1000, probabilities=named, warnings=scored.flags)
                    n_rows += len(chunk)
                    warnings.extend(w for w in scored.warnings if len(warnings) < 50)
            except pd.errors.EmptyDataError:
                raise EmptyDataError("The uploaded CSV is empty: it has no header and no rows.") from None
            except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
                if isinstance(exc, InvalidParameterError | EmptyDataError) or hasattr(exc, "status_code"):
                    raise
                raise SourceFormatError(f"The uploaded CSV could not be read: {str(exc)[:300]}") from None
        if n_rows == 0:
            raise EmptyDataError("The uploaded CSV has a header but no rows.")
    except BaseException:
        os.unlink(out_path)
        raise
    return out_path, n_rows, warnings


__all__ = [
    "PREDICTION_COLUMN", "PROBABILITY_PREFIX", "WARNINGS_COLUMN", "ScoredFrame", "score_csv", "score_frame",
]
