"""One JSON request to a loaded model: validate it, score it (the compiled path when it can), shape the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlpilot.data import Problem
from mlpilot.exceptions import SchemaValidationError
from mlpilot.runtime._compile_steps import _SCALAR_ROWS as SCALAR_ROWS
from mlpilot.runtime._inputs import columns_from_payload, convert_columns, parse_json
from mlpilot.runtime._json import has_long_number
from mlpilot.runtime._loaded import LoadedModel
from mlpilot.runtime._quality import input_problems
from mlpilot.runtime._score import probability_dicts, score, score_compiled


def problem_dict(problem: Any) -> dict[str, Any]:
    """A `Problem` as the API shows it (``field``, ``kind``, ``message``, ``rows``)."""
    return {
        "field": getattr(problem, "column", None),
        "kind": getattr(problem, "kind", None),
        "message": str(problem),
        "rows": list(getattr(problem, "rows", ()))[:100],
    }


def _warning_dicts(warnings: list[Problem]) -> list[dict[str, Any]]:
    return [problem_dict(w) for w in warnings]


@dataclass
class Prepared:
    """One request's validated input and what to log and warn about.

    ``columns`` holds the request's JSON values per field (``None`` for a
    clean request in the rows form, read from ``rows``); ``data`` the arrays
    `convert_columns` made of them, or ``None`` when a clean request skipped
    that step (see `SchemaValidator`).
    """

    columns: dict[str, Any] | None
    n_rows: int
    warnings: list[Problem]
    rows: list[dict[str, Any]] | None
    data: dict[str, Any] | None
    feature_names: tuple[str, ...] = ()
    #: A clean batch in the rows form, per feature (built once by `SchemaValidator.clean_table`).
    by_column: dict[str, list[Any]] | None = None

    @property
    def table(self) -> Any:
        """The validated values as the compiled model reads them."""
        if self.columns is not None:
            return self.columns
        if self.by_column is not None and self.n_rows > SCALAR_ROWS:  # a few rows: the encoders read row dicts
            return self.by_column
        return self.rows

    @property
    def inputs(self) -> Any:
        """What the prediction log records: the model's input columns (or the clean rows)."""
        if self.data is not None:
            return self.data
        if self.columns is None:
            # a clean batch's columns, built once by the validator: the log writes its inputs by
            # column, and turning 1,000 row dicts back into columns costs its thread a millisecond
            return self.by_column if self.by_column is not None else self.rows
        return {name: self.columns[name] for name in self.feature_names}

    def json_columns(self) -> dict[str, list[Any]]:
        """The validated JSON values of each feature (the compiled model's input, by column)."""
        if self.columns is None:
            if self.by_column is not None:
                return self.by_column
            rows = self.rows or []
            return {name: [r[name] for r in rows] for name in self.feature_names}
        return {name: self.columns[name] for name in self.feature_names}

    def converted(self, schema: Any) -> dict[str, Any]:
        """The arrays of `convert_columns`, for the general path."""
        if self.data is None:
            self.data = convert_columns(self.json_columns() if self.columns is None else self.columns, schema)[0]
        return self.data


def _clean(loaded: LoadedModel, payload: Any, max_rows: int) -> Prepared | None:
    """``payload`` validated in one pass, when it is clean and the model is compiled; else ``None``."""
    validator = loaded.validator
    if loaded.compiled is None or validator is None:
        return None
    clean = validator.clean_table(payload, max_rows)
    if clean is None:
        return None
    clean_rows, by_column = clean
    return Prepared(None, len(clean_rows), [], clean_rows, None, loaded.feature_names, by_column)


def prepare(loaded: LoadedModel, payload: Any, max_rows: int, *, checked: bool = False) -> Prepared:
    """Validate a parsed body: in one pass when it is clean and the model is compiled.

    ``checked``: the one-pass check already refused ``payload`` (`prepare_body`), so it is not asked again.
    """
    if not checked:
        clean = _clean(loaded, payload, max_rows)
        if clean is not None:
            return clean
    columns, n_rows, rows = columns_from_payload(payload, max_rows)
    validator = loaded.validator
    if loaded.compiled is not None and validator is not None and validator.is_clean(columns):
        return Prepared(columns, n_rows, [], rows, None, loaded.feature_names)
    data, warnings = convert_columns(columns, loaded.schema)
    if loaded.schema is not None:
        problems = input_problems(data, n_rows, loaded.schema)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise SchemaValidationError(errors)
        warnings.extend(problems)
    return Prepared(columns, n_rows, warnings, rows, data, loaded.feature_names)


def score_prepared(loaded: LoadedModel, prepared: Prepared) -> tuple[list[Any], list[list[float]] | None]:
    """Score in the calling thread: the compiled path when it takes the rows, else the pipeline."""
    if loaded.schema is not None:
        scored = score_compiled(loaded, prepared.table, prepared.n_rows)
        if scored is not None:
            return scored
    data = prepared.converted(loaded.schema)
    return score(loaded, pd.DataFrame(data, index=pd.RangeIndex(prepared.n_rows), copy=False))


def shape(
    loaded: LoadedModel, prepared: Prepared, predictions: list[Any], probabilities: list[list[float]] | None
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "model": loaded.name,
        "version": loaded.version.version,
        "predictions": predictions,
    }
    if probabilities is not None and loaded.classes is not None:
        answer["probabilities"] = probability_dicts(loaded.classes, probabilities)
    if loaded.threshold is not None:  # which decision threshold gave the labels
        answer["threshold"] = loaded.threshold
    if prepared.warnings:
        answer["warnings"] = _warning_dicts(prepared.warnings)
    return answer


def prepare_body(loaded: LoadedModel, body: bytes, max_rows: int) -> Prepared:
    """`prepare` of a request body, parsed once and without `parse_json`'s scan when the body is clean.

    `parse_json` looks for runs of 19 digits before orjson parses (an integer beyond 64 bits, which
    orjson turns into a float and ``json`` keeps exact); on a 1,000-row body that scan costs a third of
    the parse. A clean body does not need it: the one-pass check (`SchemaValidator.clean_table`) takes
    only the features' own values, each of its column's type, every number within +-2**62, so a float
    orjson made of such an integer (at least 2**63) is never clean. Any other body is parsed again
    exactly when it has such a run, and validated as `prepare` always did: the same values, answers and
    errors as ``prepare(loaded, parse_json(body), max_rows)``.
    """
    if loaded.compiled is None or loaded.validator is None:
        return prepare(loaded, parse_json(body), max_rows)
    payload = parse_json(body, exact=False)
    clean = _clean(loaded, payload, max_rows)
    if clean is not None:
        return clean
    if has_long_number(body):
        payload = parse_json(body)
    return prepare(loaded, payload, max_rows, checked=True)


def _predict(loaded: LoadedModel, prepared: Prepared) -> tuple[dict[str, Any], Prepared, list[Any]]:
    predictions, probabilities = score_prepared(loaded, prepared)
    return shape(loaded, prepared, predictions, probabilities), prepared, predictions


def predict_payload(loaded: LoadedModel, payload: Any, max_rows: int) -> tuple[dict[str, Any], Prepared, list[Any]]:
    """Validate, score and shape one JSON request in the calling thread (UI, large bodies).

    Returns the answer, the validated request (what to log, its warnings) and the predictions.
    """
    return _predict(loaded, prepare(loaded, payload, max_rows))


def predict_body(loaded: LoadedModel, body: bytes, max_rows: int) -> tuple[dict[str, Any], Prepared, list[Any]]:
    """`predict_payload` of a request body (parsed by `prepare_body`)."""
    return _predict(loaded, prepare_body(loaded, body, max_rows))




__all__ = ["Prepared", "predict_body", "predict_payload", "prepare", "prepare_body", "problem_dict", "score_prepared",
           "shape"]
