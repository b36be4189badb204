"""The data profile: what a careful person checks before modelling."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.data._leakage import LeakScore, leakage_scores
from mlpilot.data._schema import SHORT_ROWS, Schema, present_strings
from mlpilot.exceptions import TargetError
from mlpilot.tasks import detect_task, drop_non_numeric_target, find_non_numeric

# A categorical with more distinct values than this (and > 5% of rows) is "high-cardinality".
HIGH_CARDINALITY = 50


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    dtype: str
    role: str
    n_missing: int
    missing_pct: float
    n_unique: int
    top_values: tuple[tuple[str, int], ...] = ()
    mean: float | None = None
    std: float | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Profile:
    """Summary statistics and warnings for a table."""

    n_rows: int
    n_columns: int
    n_duplicate_rows: int
    missing_pct: float
    columns: tuple[ColumnProfile, ...]
    target: str | None
    constant_columns: list[str] = field(default_factory=list)
    id_columns: list[str] = field(default_factory=list)
    high_cardinality: list[str] = field(default_factory=list)
    class_balance: dict[str, float] | None = None
    leakage_suspects: list[str] = field(default_factory=list)
    leakage_scores: dict[str, float] = field(default_factory=dict)
    leakage_rules: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """Plain-language findings, most important first."""
        out = list(self.notes)
        for col in self.leakage_suspects:
            out.append(
                f"Column {col!r} alone predicts the target {self.target!r} almost perfectly "
                f"({self.leakage_rules[col]}): it probably leaks the answer."
            )
        if self.id_columns:
            out.append(f"Id-like columns excluded from features: {', '.join(self.id_columns)}.")
        if self.constant_columns:
            out.append(f"Constant columns excluded from features: {', '.join(self.constant_columns)}.")
        if self.n_duplicate_rows:
            out.append(f"{self.n_duplicate_rows} duplicate rows ({self.n_duplicate_rows / self.n_rows:.1%}).")
        if self.high_cardinality:
            out.append(f"High-cardinality categoricals: {', '.join(self.high_cardinality)}.")
        if self.class_balance:
            smallest = min(self.class_balance.values())
            if smallest < 0.1:
                out.append(
                    f"The target is imbalanced: the rarest class is {smallest:.1%} of rows; "
                    "accuracy will mislead, prefer ROC AUC or balanced accuracy."
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        data["warnings"] = self.warnings
        return data


def _column_profile(
    frame: pd.DataFrame, name: str, dtype: str, role: str, n_unique: int, n_missing: int,
    stats: dict[str, float] | None, top: tuple[tuple[str, int], ...] | None = None,
) -> ColumnProfile:
    n = len(frame)
    if top is None:
        top = ()
        if role in _TOP_ROLES or dtype == "string":
            counts = frame[name].dropna().astype(str).value_counts().head(10)
            top = tuple((str(k), int(v)) for k, v in counts.items())
    return ColumnProfile(
        name=str(name),
        dtype=dtype,
        role=role,
        n_missing=n_missing,
        missing_pct=100.0 * n_missing / n if n else 0.0,
        n_unique=n_unique,
        top_values=top,
        **(stats or {}),
    )


_TOP_ROLES = ("categorical", "boolean", "constant", "id", "text")


def _short_top_values(frame: pd.DataFrame, schema: Schema) -> dict[str, tuple[tuple[str, int], ...]]:
    """The ten most frequent values of the string columns of a short table, counted in plain Python."""
    if len(frame) > SHORT_ROWS:
        return {}
    names = [
        c.name for c in schema.columns
        if (c.role in _TOP_ROLES or c.dtype == "string") and pd.api.types.is_string_dtype(frame[c.name].dtype)
    ]
    if len(names) < 50:
        return {}
    out: dict[str, tuple[tuple[str, int], ...]] = {}
    for start in range(0, len(names), _BLOCK):
        part = names[start : start + _BLOCK]
        for name, present in zip(part, present_strings(frame[part]), strict=True):
            if present is not None:
                out[name] = tuple(Counter(present).most_common(10))
    return out


def _n_duplicate_rows(frame: pd.DataFrame) -> int:
    """Rows equal to an earlier row; wide, short tables compare whole rows as tuples."""
    if frame.shape[1] >= 1_000 and frame.size <= 5_000_000:
        values = frame.to_numpy(dtype=object)
        values[frame.isna().to_numpy()] = None  # missing equals missing, as in DataFrame.duplicated
        try:
            return len(values) - len(set(map(tuple, values)))
        except TypeError:
            pass  # unhashable cells
    try:
        return int(frame.duplicated().sum())
    except TypeError:
        return int(frame.astype(str).duplicated().sum())


def _numeric_stats(frame: pd.DataFrame, names: list[str]) -> dict[str, dict[str, float]]:
    """Mean, std, min and max of numeric columns, a block of columns at a time."""
    out: dict[str, dict[str, float]] = {}
    for start in range(0, len(names), _BLOCK):
        block_names = names[start : start + _BLOCK]
        block = frame[block_names].to_numpy(dtype=float, na_value=np.nan)
        present = ~np.isnan(block)
        count = present.sum(axis=0)
        filled = np.where(present, block, 0.0)
        with np.errstate(invalid="ignore", over="ignore"):  # inf values give an inf mean and a nan std, as pandas does
            mean = filled.sum(axis=0) / np.maximum(count, 1)
            squares = np.where(present, (block - mean) ** 2, 0.0).sum(axis=0)
        std = np.where(count > 1, np.sqrt(squares / np.maximum(count - 1, 1)), 0.0)
        low = np.where(present, block, np.inf).min(axis=0)
        high = np.where(present, block, -np.inf).max(axis=0)
        for j, name in enumerate(block_names):
            if count[j]:
                out[name] = {"mean": float(mean[j]), "std": float(std[j]), "minimum": float(low[j]), "maximum": float(high[j])}
    return out


_BLOCK = 2_000


def target_task(y: pd.Series) -> tuple[str, list[str]]:
    """The task `train` would choose for target ``y`` (`mlpilot.tasks.detect_task`: one rule for
    both), and what train would say about the target first.

    A target ``train`` refuses is still profiled: as a quantity when its numbers make it one
    (junk values aside), else as classes.
    """
    cleaned, junk = drop_non_numeric_target(y)
    notes = [f"{junk.summary()}; train treats them as missing (it drops those rows)."] if junk else []
    try:
        return detect_task(cleaned), notes
    except TargetError as exc:
        if find_non_numeric(y) is not None:
            task = "regression"
        else:
            task = "binary" if y.nunique(dropna=True) == 2 else "multiclass"
        return task, [*notes, f"train would refuse this target: {exc}"]


def profile(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    check_leakage: bool = True,
    task: str | None = None,
    notes: list[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Profile:
    """Profile ``frame`` using its ``schema``.

    Parameters
    ----------
    task : str, optional
        The task for the target ("binary", "multiclass", "regression"), as
        `mlpilot.tasks.detect_task` decides it; by default decided by that same
        rule, as `train` would.
    notes : list of str, optional
        Findings of earlier steps (e.g. renamed columns), listed first among the warnings.
    on_progress : callable, optional
        Called with (steps done, steps in all): a step per column profiled and
        per column scored for leakage.

    Examples
    --------
    >>> from mlpilot.data import infer_schema
    >>> df = pd.DataFrame({"x": range(100), "leak": [0, 1] * 50, "y": ["a", "b"] * 50})
    >>> p = profile(df, infer_schema(df, target="y"))
    >>> p.leakage_suspects, p.class_balance
    (['leak'], {'a': 0.5, 'b': 0.5})
    """
    n_rows = len(frame)
    n_steps = len(schema.columns) * (2 if check_leakage and schema.target is not None else 1)
    n_missing = frame.isna().sum().to_dict()
    stats = _numeric_stats(frame, [c.name for c in schema.columns if c.dtype in ("integer", "float")])
    tops = _short_top_values(frame, schema)
    profiles = []
    for i, c in enumerate(schema.columns):
        profiles.append(_column_profile(frame, c.name, c.dtype, c.role, c.n_unique, int(n_missing[c.name]),
                                        stats.get(c.name), tops.get(c.name)))
        if on_progress is not None and (i % 500 == 499 or i == len(schema.columns) - 1):
            on_progress(i + 1, n_steps)
    columns = tuple(profiles)
    n_dupes = _n_duplicate_rows(frame)
    total_cells = frame.shape[0] * frame.shape[1]
    missing = float(sum(n_missing.values())) / total_cells * 100 if total_cells else 0.0
    high_card = [
        c.name
        for c in schema.features
        if c.role == "categorical" and c.n_unique > HIGH_CARDINALITY and c.n_unique > 0.05 * n_rows
    ]
    balance = None
    scores: dict[str, LeakScore] = {}
    if schema.target is not None:
        task = task or target_task(frame[schema.target])[0]
        if task != "regression":
            counts = frame[schema.target].dropna().astype(str).value_counts(normalize=True)
            balance = {str(k): round(float(v), 6) for k, v in counts.sort_index().items()}
        if check_leakage:
            features = schema.feature_names  # text too: its words can give a target away, as train checks
            done = len(schema.columns)
            progress = (lambda k, _n: on_progress(done + k, n_steps)) if on_progress is not None else None
            scores = leakage_scores(frame, schema.target, task, features, on_progress=progress)
    suspects = sorted((c for c, s in scores.items() if s.suspect), key=lambda c: -scores[c].score)
    if on_progress is not None:
        on_progress(n_steps, n_steps)
    return Profile(
        n_rows=n_rows,
        n_columns=frame.shape[1],
        n_duplicate_rows=n_dupes,
        missing_pct=missing,
        columns=columns,
        target=schema.target,
        constant_columns=[c.name for c in schema.columns if c.role == "constant" and c.name != schema.target],
        id_columns=[c.name for c in schema.columns if c.role == "id" and c.name != schema.target],
        high_cardinality=high_card,
        class_balance=balance,
        leakage_suspects=suspects,
        leakage_scores={c: round(s.score, 6) for c, s in scores.items()},
        leakage_rules={c: scores[c].describe() for c in suspects},
        notes=list(notes or []),
    )
