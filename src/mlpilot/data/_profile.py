"""The data profile: what a careful person checks before modelling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpilot.data._schema import Schema

# A categorical with more distinct values than this (and > 5% of rows) is "high-cardinality".
HIGH_CARDINALITY = 50
# A single column scoring at least this alone is a leakage suspect.
LEAK_THRESHOLD = 0.99
_LEAK_SAMPLE = 20_000


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

    @property
    def warnings(self) -> list[str]:
        """Plain-language findings, most important first."""
        out = []
        for col in self.leakage_suspects:
            out.append(
                f"Column {col!r} alone predicts the target {self.target!r} almost perfectly "
                f"(score {self.leakage_scores[col]:.3f}): it probably leaks the answer."
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


def _column_profile(series: pd.Series, dtype: str, role: str, n_unique: int) -> ColumnProfile:
    n = len(series)
    n_missing = int(series.isna().sum())
    stats: dict[str, Any] = {}
    if dtype in ("integer", "float") and n_missing < n:
        values = series.astype(float)
        stats = {
            "mean": float(values.mean()),
            "std": float(values.std()) if n - n_missing > 1 else 0.0,
            "minimum": float(values.min()),
            "maximum": float(values.max()),
        }
    top: tuple[tuple[str, int], ...] = ()
    if role in ("categorical", "boolean", "constant", "id", "text") or dtype == "string":
        counts = series.dropna().astype(str).value_counts().head(10)
        top = tuple((str(k), int(v)) for k, v in counts.items())
    return ColumnProfile(
        name=str(series.name),
        dtype=dtype,
        role=role,
        n_missing=n_missing,
        missing_pct=100.0 * n_missing / n if n else 0.0,
        n_unique=n_unique,
        top_values=top,
        **stats,
    )


def leakage_scores(frame: pd.DataFrame, schema: Schema, *, random_state: int = 0) -> dict[str, float]:
    """Score how well each feature alone predicts the target, out of sample.

    Classification: balanced accuracy of a small tree (or category-majority map)
    on held-out rows; regression: R². Columns are scored on a sample of at most
    20,000 rows with 3-fold cross-validation.
    """
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    target = schema.target
    if target is None:
        return {}
    data = frame[frame[target].notna()]
    if len(data) > _LEAK_SAMPLE:
        data = data.sample(_LEAK_SAMPLE, random_state=random_state)
    if len(data) < 20:
        return {}
    target_col = schema[target]
    is_regression = target_col.dtype in ("integer", "float") and target_col.n_unique > 20
    y = data[target].to_numpy()
    if is_regression:
        y = y.astype(float)
        splitter: Any = KFold(3, shuffle=True, random_state=random_state)
    else:
        y = y.astype(str)
        counts = pd.Series(y).value_counts()
        if counts.min() < 3:
            return {}
        splitter = StratifiedKFold(3, shuffle=True, random_state=random_state)
    scores: dict[str, float] = {}
    for col in schema.features:
        x = data[col.name]
        if col.role == "text":
            continue
        if col.dtype in ("integer", "float", "boolean"):
            xv = x.astype(float).fillna(-1e18 if x.notna().any() else 0).to_numpy().reshape(-1, 1)
        else:
            codes, _ = pd.factorize(x.astype(str))
            xv = codes.reshape(-1, 1).astype(float)
        preds = np.empty(len(y), dtype=object if not is_regression else float)
        for train_idx, test_idx in splitter.split(xv, y):
            if col.dtype in ("integer", "float", "boolean"):
                model: Any = (
                    DecisionTreeRegressor(max_leaf_nodes=32, random_state=random_state)
                    if is_regression
                    else DecisionTreeClassifier(max_leaf_nodes=32, random_state=random_state)
                )
                model.fit(xv[train_idx], y[train_idx])
                preds[test_idx] = model.predict(xv[test_idx])
            else:
                keys = pd.Series(xv[train_idx, 0])
                labels = pd.Series(y[train_idx])
                if is_regression:
                    mapping = labels.groupby(keys.to_numpy()).mean()
                    fallback: Any = float(labels.mean())
                else:
                    mapping = labels.groupby(keys.to_numpy()).agg(lambda s: s.value_counts().index[0])
                    fallback = labels.value_counts().index[0]
                preds[test_idx] = pd.Series(xv[test_idx, 0]).map(mapping).fillna(fallback).to_numpy()
        if is_regression:
            from sklearn.metrics import r2_score

            scores[col.name] = float(r2_score(y, preds.astype(float)))
        else:
            from sklearn.metrics import balanced_accuracy_score

            scores[col.name] = float(balanced_accuracy_score(y, preds.astype(str)))
    return scores


def profile(frame: pd.DataFrame, schema: Schema, *, check_leakage: bool = True) -> Profile:
    """Profile ``frame`` using its ``schema``.

    Examples
    --------
    >>> from mlpilot.data import infer_schema
    >>> df = pd.DataFrame({"x": range(100), "leak": [0, 1] * 50, "y": ["a", "b"] * 50})
    >>> p = profile(df, infer_schema(df, target="y"))
    >>> p.leakage_suspects, p.class_balance
    (['leak'], {'a': 0.5, 'b': 0.5})
    """
    n_rows = len(frame)
    columns = tuple(
        _column_profile(frame[c.name], c.dtype, c.role, c.n_unique) for c in schema.columns
    )
    try:
        n_dupes = int(frame.duplicated().sum())
    except TypeError:
        n_dupes = int(frame.astype(str).duplicated().sum())
    total_cells = frame.shape[0] * frame.shape[1]
    missing = float(frame.isna().to_numpy().sum()) / total_cells * 100 if total_cells else 0.0
    high_card = [
        c.name
        for c in schema.features
        if c.role == "categorical" and c.n_unique > HIGH_CARDINALITY and c.n_unique > 0.05 * n_rows
    ]
    balance = None
    if schema.target is not None:
        tcol = schema[schema.target]
        if not (tcol.dtype in ("integer", "float") and tcol.n_unique > 20):
            counts = frame[schema.target].dropna().astype(str).value_counts(normalize=True)
            balance = {str(k): round(float(v), 6) for k, v in counts.sort_index().items()}
    scores = leakage_scores(frame, schema) if check_leakage else {}
    suspects = sorted((c for c, s in scores.items() if s >= LEAK_THRESHOLD), key=lambda c: -scores[c])
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
        leakage_scores={c: round(s, 6) for c, s in scores.items()},
    )
