"""What the tuner knows of a model family, tabular or recommender alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: A search space: parameter name to ``(kind, low, high, log)`` (kind ``"int"`` or ``"float"``)
#: or ``("cat", choices)``; or a define-by-run function of an Optuna trial returning the parameters.
Space = dict[str, tuple[Any, ...]] | Callable[[Any], dict[str, Any]]


class Family:
    """A model family: its name, search space, relative cost, and the optional package it needs.

    Tabular (`mlpilot.search.Family`) and recommender
    (``mlpilot.recommend._tuning.Family``) families are frozen dataclasses
    deriving from this one and declaring these attributes; the `Tuner` and the
    budget see only them. ``cost`` is relative within one kind of family: the
    tabular search scales its measured seconds per unit of cost by it, the
    recommender search shares its tuning time in proportion to it.
    """

    name: str
    cost: float
    requires: str | None

    @property
    def installed(self) -> bool:
        """Whether the optional package this family needs is importable."""
        if self.requires is None:
            return True
        import importlib.util

        return importlib.util.find_spec(self.requires) is not None

    def search_space(self) -> Space:
        """The family's hyperparameter space (empty: nothing to tune)."""
        raise NotImplementedError
