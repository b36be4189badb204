"""Finding feature columns that give the target away."""

from __future__ import annotations

import numpy as np
import pandas as pd

# A single column that predicts the target this well on its own is a leak suspect.
_LEAK_R2 = 0.98
_LEAK_PURITY = 0.995


def _purity(codes: np.ndarray, y: np.ndarray) -> float:
    """Share of rows whose target equals the majority target of their group."""
    frame = pd.DataFrame({"g": codes, "y": y})
    majority = frame.groupby("g")["y"].agg(lambda s: s.value_counts().iloc[0]).sum()
    return float(majority) / len(frame)


def find_leaks(frame: pd.DataFrame, target: str, task: str, features: list[str]) -> list[str]:
    """Return the ``features`` of ``frame`` that alone nearly determine ``target``.

    A classification leak is a column whose values (binned when numeric, with
    groups of at least two rows) map to a single class for 99.5% of rows; a
    regression leak a numeric column with R² ≥ 0.98 against the target, or a
    categorical one whose group means explain as much.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [0, 1] * 50, "copy": ["n", "y"] * 50, "x": range(100)})
    >>> find_leaks(df, "y", "binary", ["copy", "x"])
    ['copy']
    """
    data = frame[frame[target].notna()]
    if len(data) < 20:
        return []
    y = data[target]
    leaks: list[str] = []
    for col in features:
        x = data[col]
        if x.isna().mean() > 0.5:
            continue
        numeric = pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
        if task == "regression":
            yv = pd.to_numeric(y, errors="coerce").to_numpy(dtype=float)
            if numeric:
                xv = x.to_numpy(dtype=float, na_value=np.nan)
                ok = np.isfinite(xv) & np.isfinite(yv)
                if ok.sum() > 10 and np.std(xv[ok]) > 0 and np.std(yv[ok]) > 0:
                    r = np.corrcoef(xv[ok], yv[ok])[0, 1]
                    if r * r >= _LEAK_R2:
                        leaks.append(col)
            else:
                groups = x.astype(str)
                if groups.nunique() > 0.5 * len(groups):
                    continue
                means = pd.Series(yv).groupby(groups.to_numpy()).transform("mean").to_numpy()
                total = np.var(yv)
                if total > 0 and 1 - np.var(yv - means) / total >= _LEAK_R2:
                    leaks.append(col)
            continue
        if numeric:
            xv = x.to_numpy(dtype=float, na_value=np.nan)
            n_bins = min(50, max(2, len(xv) // 20))
            if pd.Series(xv).nunique() <= n_bins:
                codes = np.nan_to_num(xv, nan=-1.0)
            else:
                ranks = pd.Series(xv).rank(method="first")
                codes = pd.qcut(ranks, n_bins, labels=False).fillna(-1).to_numpy()
        else:
            labels = x.astype(str).to_numpy()
            if pd.Series(labels).nunique() > 0.5 * len(labels):
                continue
            codes = labels
        if _purity(codes, y.astype(str).to_numpy()) >= _LEAK_PURITY:
            # a near-constant target makes every column look pure
            majority_share = float(y.value_counts(normalize=True).iloc[0])
            if majority_share < _LEAK_PURITY:
                leaks.append(col)
    return leaks
