"""Interaction tables into index-encoded sparse matrices, with data-quality reports."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mlpilot.exceptions import (
    ColumnNotFoundError,
    DataError,
    DataQualityWarning,
    EmptyDataError,
    InvalidParameterError,
)

logger = logging.getLogger(__name__)

FEEDBACK = ("auto", "implicit", "explicit")


@dataclass(frozen=True)
class Interactions:
    """Interactions encoded to contiguous user and item indices.

    ``users`` and ``items`` hold the original ids (their dtype preserved) at
    positions ``0..n-1``; ``user_idx``/``item_idx`` index into them row by row.
    ``rating`` is the (aggregated) explicit rating or weight, ``positive`` marks
    rows that count as relevant for ranking.
    """

    users: np.ndarray
    items: np.ndarray
    user_idx: np.ndarray
    item_idx: np.ndarray
    rating: np.ndarray
    positive: np.ndarray
    timestamp: np.ndarray | None
    explicit: bool
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return len(self.user_idx)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The rows where ``mask`` is true, keeping the same id encoding."""
        return Interactions(
            users=self.users,
            items=self.items,
            user_idx=self.user_idx[mask],
            item_idx=self.item_idx[mask],
            rating=self.rating[mask],
            positive=self.positive[mask],
            timestamp=None if self.timestamp is None else self.timestamp[mask],
            explicit=self.explicit,
            report=self.report,
        )

    def matrix(self, *, positives_only: bool = False, weighting: str = "binary") -> sp.csr_matrix:
        """A users x items CSR matrix of the interactions.

        ``weighting`` is ``"binary"`` (1 per interaction) or ``"rating"``
        (the rating itself, for explicit feedback).
        """
        mask = self.positive if positives_only else np.ones(len(self), dtype=bool)
        if weighting == "rating" and self.explicit:
            values = self.rating[mask].astype(np.float32)
        else:
            values = np.ones(int(mask.sum()), dtype=np.float32)
        mat = sp.csr_matrix(
            (values, (self.user_idx[mask], self.item_idx[mask])),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        mat.sum_duplicates()
        return mat


def _check_column(frame: pd.DataFrame, column: str | None, what: str) -> None:
    if column is not None and column not in frame.columns:
        raise ColumnNotFoundError(column, [str(c) for c in frame.columns], what=f"{what} column")


def prepare_interactions(
    frame: pd.DataFrame,
    *,
    user: str,
    item: str,
    rating: str | None = None,
    timestamp: str | None = None,
    feedback: str = "auto",
    threshold: float | str | None = None,
    min_user_interactions: int = 1,
) -> Interactions:
    """Validate an interaction table and encode it.

    Duplicated (user, item) pairs are aggregated: ratings are averaged, weights
    of implicit feedback summed, the latest timestamp kept; the count is
    reported in ``report["n_duplicates"]`` and with a `DataQualityWarning`.
    Users and items with a single interaction are kept and counted.

    Parameters
    ----------
    frame : DataFrame
        One row per interaction.
    user, item : str
        Column names of the user and item ids.
    rating : str, optional
        Column of explicit ratings (or implicit weights with ``feedback="implicit"``).
    timestamp : str, optional
        Column of interaction times (numbers or datetimes).
    feedback : {"auto", "implicit", "explicit"}
        ``"auto"`` treats a rating column as explicit ratings.
    threshold : float or "user_mean", optional
        Ratings at or above this value are positives. Default: 4 on a 5-point
        scale, otherwise 80% of the rating range above its minimum.
    min_user_interactions : int
        Users with fewer interactions are dropped.

    Returns
    -------
    Interactions

    Raises
    ------
    ColumnNotFoundError, DataError, EmptyDataError, InvalidParameterError
    """
    if feedback not in FEEDBACK:
        raise InvalidParameterError(
            f"The 'feedback' parameter must be one of {FEEDBACK}. Got {feedback!r} instead."
        )
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"Interactions must be a pandas DataFrame. Got {type(frame).__name__}.")
    for column, what in ((user, "user"), (item, "item"), (rating, "rating"), (timestamp, "timestamp")):
        _check_column(frame, column, what)
    if user == item:
        raise InvalidParameterError(
            f"The user and item columns must differ. Got {user!r} for both."
        )
    report: dict[str, Any] = {"n_rows_input": len(frame)}
    if len(frame) == 0:
        raise EmptyDataError("The interaction table has no rows; nothing to learn from.")

    cols = [c for c in (user, item, rating, timestamp) if c is not None]
    df = frame[cols].copy()
    explicit = rating is not None and feedback != "implicit"
    if rating is not None:
        values = df[rating]
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            converted = pd.to_numeric(values, errors="coerce")
            bad = int((converted.isna() & values.notna()).sum())
            raise DataError(
                f"The rating column {rating!r} must be numeric. Got dtype "
                f"{values.dtype} with {bad} value(s) that are not numbers. Convert it to numbers, "
                "or leave out the rating for implicit feedback."
            )
        df[rating] = values.astype(np.float64)
    if timestamp is not None:
        ts = df[timestamp]
        if pd.api.types.is_datetime64_any_dtype(ts):
            df[timestamp] = ts.astype("datetime64[ns]").astype(np.int64) // 10**9
        elif not pd.api.types.is_numeric_dtype(ts):
            parsed = pd.to_datetime(ts, errors="coerce")
            bad = int((parsed.isna() & ts.notna()).sum())
            if bad:
                raise DataError(
                    f"The timestamp column {timestamp!r} must hold numbers or dates. "
                    f"{bad} value(s) could not be parsed as dates. Fix them or leave out --timestamp."
                )
            df[timestamp] = parsed.astype("datetime64[ns]").astype(np.int64) // 10**9

    n_before = len(df)
    df = df.dropna(subset=cols)
    report["n_missing_dropped"] = n_before - len(df)
    if report["n_missing_dropped"]:
        logger.info("dropped %d interactions with missing values", report["n_missing_dropped"])

    n_rows = len(df)
    n_dup = int(df.duplicated(subset=[user, item]).sum())
    report["n_duplicates"] = n_dup
    if n_dup:
        group = df.groupby([user, item], sort=False)
        merged = group.size().rename("_weight").reset_index()
        if rating is not None:
            merged[rating] = (group[rating].mean() if explicit else group[rating].sum()).to_numpy()
        if timestamp is not None:
            merged[timestamp] = group[timestamp].max().to_numpy()
        df = merged
        warnings.warn(
            f"{n_dup} duplicated (user, item) interaction(s) out of {n_rows} were aggregated "
            f"({'ratings averaged' if explicit else 'counted as weights'}"
            f"{', latest timestamp kept' if timestamp else ''}).",
            DataQualityWarning,
            stacklevel=2,
        )

    if min_user_interactions > 1:
        sizes = df.groupby(user)[item].transform("size")
        df = df[sizes >= min_user_interactions]
    if len(df) == 0:
        raise EmptyDataError(
            f"No interactions are left after dropping missing values and users with fewer than "
            f"{min_user_interactions} interaction(s) (input had {report['n_rows_input']} rows). "
            "Lower 'min_user_interactions' or check the user and item columns."
        )

    user_codes, users = pd.factorize(df[user], sort=True)
    item_codes, items = pd.factorize(df[item], sort=True)
    if rating is not None:
        rating_values = df[rating].to_numpy(dtype=np.float64)
    elif "_weight" in df:
        rating_values = df["_weight"].to_numpy(dtype=np.float64)
    else:
        rating_values = np.ones(len(df))

    positive = np.ones(len(df), dtype=bool)
    if explicit:
        positive, thr = _positives(rating_values, user_codes, threshold)
        report["threshold"] = thr
        report["n_positives"] = int(positive.sum())
        if not positive.any():
            raise EmptyDataError(
                f"No rating reaches the positive threshold {thr!r} (ratings range from "
                f"{rating_values.min():g} to {rating_values.max():g}). Lower 'threshold'."
            )
    user_counts = np.bincount(user_codes, minlength=len(users))
    item_counts = np.bincount(item_codes, minlength=len(items))
    report.update(
        n_interactions=len(df),
        n_users=len(users),
        n_items=len(items),
        n_single_interaction_users=int((user_counts == 1).sum()),
        n_single_interaction_items=int((item_counts == 1).sum()),
        density=float(len(df) / (len(users) * len(items))),
        feedback="explicit" if explicit else "implicit",
    )
    if report["n_single_interaction_users"] or report["n_single_interaction_items"]:
        logger.info(
            "%d user(s) and %d item(s) have a single interaction; kept",
            report["n_single_interaction_users"],
            report["n_single_interaction_items"],
        )
    ts_values = df[timestamp].to_numpy(dtype=np.float64) if timestamp is not None else None
    return Interactions(
        users=np.asarray(users),
        items=np.asarray(items),
        user_idx=user_codes.astype(np.int64),
        item_idx=item_codes.astype(np.int64),
        rating=rating_values,
        positive=positive,
        timestamp=ts_values,
        explicit=explicit,
        report=report,
    )


def _positives(
    rating: np.ndarray, user_idx: np.ndarray, threshold: float | str | None
) -> tuple[np.ndarray, float | str]:
    if threshold == "user_mean":
        sums = np.bincount(user_idx, weights=rating)
        counts = np.bincount(user_idx)
        means = sums / np.maximum(counts, 1)
        return rating >= means[user_idx], "user_mean"
    if threshold is None:
        lo, hi = float(rating.min()), float(rating.max())
        threshold = 4.0 if hi <= 5 and hi > 3 else lo + 0.8 * (hi - lo)
    if isinstance(threshold, str) or not np.isfinite(float(threshold)):
        raise InvalidParameterError(
            f"The 'threshold' parameter must be a number or 'user_mean'. Got {threshold!r} instead."
        )
    return rating >= float(threshold), float(threshold)
