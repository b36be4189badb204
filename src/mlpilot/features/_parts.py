"""What a fitted `TabularPreprocessor` computes, column by column, told to a compiler.

`TabularPreprocessor.compiled_parts` lists its output columns as plain values
(the numbers and tables it learned), in output order, so that the model
runtime's compiler can compute the same outputs row by row without reading the
preprocessor's attributes. A preprocessor part the parts cannot express (dates,
text) is named in `PreprocessorParts.unsupported` instead.

Every part reads one input column. ``number`` parts read it as a float;
``lookup`` and ``onehot`` parts read it as text (``str`` of a present value,
as the preprocessor reads categories).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class NumberPart:
    """One output: the column as a float, infinities missing (``inf_missing``),
    then missing values replaced by ``fill`` (None: they stay NaN) and ``(value - centre) / scale``."""

    column: str
    fill: float | None = None
    centre: float = 0.0
    scale: float = 1.0
    inf_missing: bool = True
    kind: Literal["number"] = "number"


@dataclass(frozen=True)
class LookupPart:
    """One output: ``table[text]``; ``missing`` for a missing value, ``unseen`` for a value not in ``table``."""

    column: str
    table: dict[str, float]
    missing: float
    unseen: float
    kind: Literal["lookup"] = "lookup"


@dataclass(frozen=True)
class OneHotPart:
    """``width`` outputs: 1.0 in column ``positions[text]``; zeros for missing and unseen values."""

    column: str
    positions: dict[str, int]
    width: int
    kind: Literal["onehot"] = "onehot"


@dataclass(frozen=True)
class MissingPart:
    """One output: 1.0 where the column, read as a float, is NaN (infinities are not missing here)."""

    column: str
    kind: Literal["missing"] = "missing"


Part = NumberPart | LookupPart | OneHotPart | MissingPart


@dataclass(frozen=True)
class PreprocessorParts:
    """The output columns of a fitted preprocessor as parts, in output order.

    Attributes
    ----------
    parts : list of Part
        One entry per output column (``OneHotPart``: ``width`` of them).
    n_outputs : int
        Columns `transform` gives; the parts' widths add up to it.
    unsupported : str or None
        Why the parts do not describe the preprocessor (a date or text column);
        None when they do.
    """

    parts: list[Part] = field(default_factory=list)
    n_outputs: int = 0
    unsupported: str | None = None


def part_width(part: Part) -> int:
    """Output columns of one part."""
    return part.width if isinstance(part, OneHotPart) else 1
