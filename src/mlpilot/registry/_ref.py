"""Model references: ``name``, ``name:version`` and ``name@alias``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlpilot.exceptions import InvalidParameterError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def check_name(name: str, *, what: str = "model name") -> str:
    """Return ``name`` if it is a valid model name, else raise with the rule."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidParameterError(
            f"The {what} {name!r} is not valid: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit."
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if valid, else raise."""
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidParameterError(
            f"The alias {alias!r} is not valid: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter."
        )
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference.

    Examples
    --------
    >>> ModelRef.parse("churn:3")
    ModelRef(name='churn', version=3, alias=None)
    >>> ModelRef.parse("churn@champion").alias
    'champion'
    >>> ModelRef.parse("churn").alias
    'champion'
    """

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, ref: str, *, default_alias: str | None = "champion") -> ModelRef:
        """Parse ``name[:version|@alias]``; a bare name means ``default_alias``."""
        if not isinstance(ref, str):
            raise InvalidParameterError(f"A model reference must be a string. Got {ref!r}.")
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return cls(check_name(name), None, check_alias(alias))
        if ":" in ref:
            name, version = ref.rsplit(":", 1)
            if not version.isdigit() or int(version) < 1:
                raise InvalidParameterError(
                    f"The version in {ref!r} must be a positive integer, as in 'churn:3'."
                )
            return cls(check_name(name), int(version), None)
        return cls(check_name(ref), None, default_alias)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
