"""Input drift against a reference: binned, mergeable summaries and calibrated tests.

Pure functions over frames and counts; no file reading. The flow:

1. `build_profile` learns, from the reference (the training snapshot), how to
   bin each column: quantile edges for numbers (and text lengths), the most
   frequent levels for categories, the most frequent tokens for text, the
   weekday and hour for datetimes. It keeps the reference's own counts.
2. `summarize` turns a frame (a chunk of the live window) into counts on those
   bins; `Summary.merge` adds the counts of two chunks, so a 10M-row window is
   checked chunk by chunk in bounded memory (a Spark job can feed the same
   counts).
3. `compare` gives, per column and aspect (``distribution``, ``length``,
   ``vocabulary``, ``weekday``, ``hour``, ``missing``), an **effect size with a
   95% interval** and then a test: the binned Kolmogorov–Smirnov test for
   ordered bins, the chi-square test of homogeneity for levels and tokens, and
   for missingness the 2×2 chi-square. The threshold on the effect is
   **calibrated by resampling**: the effect that windows of the live window's
   size drawn from the reference reach (its 99th percentile), never below a
   practical minimum; p-values are adjusted across all entries with
   Benjamini–Hochberg. An entry drifts when its adjusted p-value is below
   ``alpha`` *and* its effect is above its threshold, so a large window does
   not flag differences too small to matter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mlpilot.data._times import parse_times
from mlpilot.exceptions import InvalidParameterError

#: Roles `build_profile` knows; other roles (id, constant) are not monitored.
ROLES = ("numeric", "categorical", "boolean", "text", "datetime")
#: The practical minimum effect of each kind of statistic below which nothing is flagged.
MIN_EFFECT = {"wasserstein": 0.1, "tvd": 0.05, "missing_rate": 0.02}
_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class ColumnProfile:
    """How one reference column is binned.

    ``edges`` are the inner bin edges of the ordered aspects (numbers, text
    lengths); ``levels`` the categories kept (the rest counts as "other");
    ``vocabulary`` the tokens kept for text; ``scale`` the reference's standard
    deviation, the unit of the numeric effect.
    """

    name: str
    role: str
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()
    vocabulary: tuple[str, ...] = ()
    scale: float = 1.0
    hours: bool = False


@dataclass
class ColumnCounts:
    """The counts of one column on its profile's bins; ``merge`` adds two of them."""

    n: int
    missing: int
    aspects: dict[str, np.ndarray] = field(default_factory=dict)

    def merge(self, other: ColumnCounts) -> ColumnCounts:
        aspects = {k: self.aspects[k] + other.aspects[k] for k in self.aspects}
        return ColumnCounts(self.n + other.n, self.missing + other.missing, aspects)


@dataclass
class Summary:
    """Binned counts of a window, column by column; mergeable across chunks."""

    n_rows: int
    columns: dict[str, ColumnCounts]

    def merge(self, other: Summary) -> Summary:
        if set(self.columns) != set(other.columns):
            raise InvalidParameterError("Only summaries made with the same profile can be merged.")
        return Summary(self.n_rows + other.n_rows,
                       {k: v.merge(other.columns[k]) for k, v in self.columns.items()})


@dataclass(frozen=True)
class Profile:
    """The reference, binned: each column's profile and the reference's own counts."""

    columns: tuple[ColumnProfile, ...]
    reference: Summary

    def __getitem__(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class FeatureDrift:
    """The drift of one column in one aspect: effect first, the test second.

    ``effect`` is in the statistic's unit (``wasserstein``: reference standard
    deviations; ``tvd``: the share of mass that moved between bins;
    ``missing_rate``: the live minus the reference missing share);
    ``threshold`` the calibrated effect above which it drifts; ``p_value`` the
    test's and ``p_adjusted`` the Benjamini–Hochberg-adjusted value.
    """

    name: str
    role: str
    aspect: str
    statistic: str
    test: str
    effect: float | None
    interval: tuple[float, float] | None
    p_value: float | None
    p_adjusted: float | None
    threshold: float | None
    drift: bool
    n_reference: int
    n_live: int
    importance: float = 0.0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "role": self.role, "aspect": self.aspect, "drift": self.drift,
            "effect": _num(self.effect), "interval": None if self.interval is None else [_num(v) for v in self.interval],
            "p_value": _num(self.p_value), "p_adjusted": _num(self.p_adjusted), "threshold": _num(self.threshold),
            "statistic": self.statistic, "test": self.test, "n_reference": self.n_reference,
            "n_live": self.n_live, "importance": self.importance, "note": self.note,
        }


def _num(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


# -- profile and counts ---------------------------------------------------------------------


def _numbers(values: pd.Series, role: str) -> np.ndarray:
    if role == "datetime":  # seconds since 1970; NaN where no time reads (not NaT's smallest integer)
        stamps = parse_times(values)
        seconds = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
        return np.where(stamps.isna().to_numpy(), np.nan, seconds)
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=float)


def _texts(values: pd.Series) -> pd.Series:
    return values.dropna().astype(str)


def _quantile_edges(x: np.ndarray, n_bins: int) -> tuple[float, ...]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return ()
    uniques = np.unique(x)
    if uniques.size <= n_bins:
        # few distinct values (counts, ratings): one bin per value
        return tuple(float(v) for v in uniques)
    return tuple(float(v) for v in np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)[1:-1])))


def build_profile(
    frame: pd.DataFrame, roles: Mapping[str, str], *, n_bins: int = 50, max_levels: int = 50, max_tokens: int = 200,
) -> Profile:
    """Learn the bins of each column of ``frame`` (the reference) and count the reference on them.

    Parameters
    ----------
    frame : DataFrame
        The reference rows.
    roles : mapping of str to str
        Each monitored column's role, one of `ROLES`; columns with other roles are skipped.
    n_bins : int
        Quantile bins of numeric columns (and text lengths).
    max_levels, max_tokens : int
        Categories and text tokens kept; the rest are counted together as "other".

    Returns
    -------
    Profile

    Examples
    --------
    >>> ref = pd.DataFrame({"x": np.arange(1000.0), "c": ["a", "b"] * 500})
    >>> profile = build_profile(ref, {"x": "numeric", "c": "categorical"}, n_bins=4)
    >>> profile["x"].edges, profile["c"].levels
    ((249.75, 499.5, 749.25), ('a', 'b'))
    """
    columns = []
    for name, role in roles.items():
        if role not in ROLES or name not in frame.columns:
            continue
        values = frame[name]
        if role in ("numeric", "datetime"):
            x = _numbers(values, role)
            if role == "datetime":
                stamps = parse_times(values).dropna()
                hours = bool(stamps.dt.hour.nunique() > 1)
                columns.append(ColumnProfile(name, role, hours=hours))
                continue
            finite = x[np.isfinite(x)]
            scale = float(np.std(finite)) if finite.size else 0.0
            columns.append(ColumnProfile(name, role, edges=_quantile_edges(x, n_bins), scale=scale or 1.0))
        elif role in ("categorical", "boolean"):
            counts = values.dropna().astype(str).value_counts()
            columns.append(ColumnProfile(name, role, levels=tuple(sorted(counts.index[:max_levels]))))
        else:
            texts = _texts(values)
            lengths = texts.str.len().to_numpy(dtype=float)
            tokens = texts.str.lower().str.findall(_TOKEN).explode().dropna().value_counts()
            finite = lengths[np.isfinite(lengths)]
            columns.append(ColumnProfile(
                name, role, edges=_quantile_edges(lengths, n_bins), vocabulary=tuple(sorted(tokens.index[:max_tokens])),
                scale=float(np.std(finite)) if finite.size and np.std(finite) > 0 else 1.0,
            ))
    profile_columns = tuple(columns)
    return Profile(profile_columns, _count(frame, profile_columns))


def _bincount_levels(values: pd.Series, levels: Sequence[str]) -> np.ndarray:
    codes = pd.Index(list(levels), dtype=object).get_indexer(pd.Index(values.dropna().astype(str)))
    # unknown levels get code -1: counted in the last ("other") bin
    return np.bincount(np.where(codes < 0, len(levels), codes), minlength=len(levels) + 1).astype(np.int64)


def _bincount_edges(x: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    x = x[np.isfinite(x)]
    return np.bincount(np.searchsorted(np.asarray(edges), x, side="left"), minlength=len(edges) + 1).astype(np.int64)


def _column_counts(values: pd.Series, column: ColumnProfile) -> ColumnCounts:
    if column.role in ("numeric",):
        x = _numbers(values, column.role)
        missing = int((~np.isfinite(x)).sum())
        return ColumnCounts(len(values), missing, {"distribution": _bincount_edges(x, column.edges)})
    if column.role == "datetime":
        stamps = parse_times(values)
        present = stamps.dropna()
        aspects = {"weekday": np.bincount(present.dt.day_of_week, minlength=7).astype(np.int64)}
        if column.hours:
            aspects["hour"] = np.bincount(present.dt.hour, minlength=24).astype(np.int64)
        return ColumnCounts(len(values), int(stamps.isna().sum()), aspects)
    if column.role in ("categorical", "boolean"):
        present = values.dropna()
        return ColumnCounts(len(values), len(values) - len(present), {"distribution": _bincount_levels(present, column.levels)})
    texts = _texts(values)
    tokens = texts.str.lower().str.findall(_TOKEN).explode().dropna()
    return ColumnCounts(len(values), len(values) - len(texts), {
        "length": _bincount_edges(texts.str.len().to_numpy(dtype=float), column.edges),
        "vocabulary": _bincount_levels(tokens, column.vocabulary),
    })


def _count(frame: pd.DataFrame, columns: Sequence[ColumnProfile]) -> Summary:
    out = {}
    for column in columns:
        if column.name in frame.columns:
            out[column.name] = _column_counts(frame[column.name], column)
        else:
            out[column.name] = _column_counts(pd.Series([None] * len(frame), dtype=object), column)
    return Summary(len(frame), out)


def summarize(frame: pd.DataFrame, profile: Profile) -> Summary:
    """Count ``frame``'s rows on ``profile``'s bins (a column missing from ``frame`` counts as all missing)."""
    return _count(frame, profile.columns)


def summarize_chunks(chunks: Iterable[pd.DataFrame], profile: Profile) -> Summary:
    """`summarize` chunk by chunk and merge: memory bounded by one chunk, whatever the window's size."""
    total: Summary | None = None
    for chunk in chunks:
        part = summarize(chunk, profile)
        total = part if total is None else total.merge(part)
    return total if total is not None else summarize(pd.DataFrame(columns=profile.names), profile)


# -- statistics on counts (vectorised over resampled rows) --------------------------------------


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros(counts.shape, dtype=float), where=total > 0)


def _wasserstein(ref: np.ndarray, live: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Binned Wasserstein-1 distance in reference standard deviations (``gaps`` already scaled)."""
    # the CDFs' difference at each edge, held until the next edge (exact for discrete values)
    cdf_diff = np.abs(np.cumsum(_shares(ref), axis=-1) - np.cumsum(_shares(live), axis=-1))[..., :-2]
    return np.asarray((cdf_diff * gaps).sum(axis=-1), dtype=float)


def _tvd(ref: np.ndarray, live: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * np.abs(_shares(ref) - _shares(live)).sum(axis=-1), dtype=float)


def _ks_p(ref: np.ndarray, live: np.ndarray) -> float:
    d = float(np.max(np.abs(np.cumsum(_shares(ref)) - np.cumsum(_shares(live)))))
    n, m = int(ref.sum()), int(live.sum())
    return float(stats.kstwobign.sf(d * np.sqrt(n * m / (n + m))))


def _chi2_p(ref: np.ndarray, live: np.ndarray) -> float:
    table = np.vstack([ref, live])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def _untested(column: ColumnProfile, aspect: str, statistic: str, test: str, n_ref: int, n_live: int,
               note: str) -> FeatureDrift:
    """An entry whose test did not run (too few values), with ``note`` saying why."""
    return _tested(column, aspect, statistic, test, None, None, None, None, n_ref, n_live, note)


def _tested(column: ColumnProfile, aspect: str, statistic: str, test: str, effect: float | None,
            interval: tuple[float, float] | None, p_value: float | None, threshold: float | None,
            n_ref: int, n_live: int, note: str = "") -> FeatureDrift:
    """One aspect's statistics before the multiple-testing step (`compare` sets ``p_adjusted`` and ``drift``)."""
    return FeatureDrift(column.name, column.role, aspect, statistic, test, effect, interval, p_value, None,
                        threshold, False, n_ref, n_live, note=note)


def _gaps(column: ColumnProfile) -> np.ndarray:
    return np.diff(np.asarray(column.edges, dtype=float)) / column.scale


def _calibrated_threshold(null: np.ndarray, quantile: float, floor: float) -> float:
    """The effect above which an entry drifts: ``quantile`` of the effects no-drift resamples reach, at least ``floor``.

    ``null`` holds the effect of each window of the live window's size drawn
    from the reference itself (no drift by construction), so a large window
    gets a small threshold and a small one a large threshold.
    """
    return max(float(np.quantile(null, quantile)), floor)


def _binned_entry(column: ColumnProfile, aspect: str, ref: np.ndarray, live: np.ndarray, *, ordered: bool,
                  rng: np.random.Generator, n_resamples: int, quantile: float, min_rows: int,
                  min_effect: Mapping[str, float]) -> FeatureDrift:
    statistic = "wasserstein" if ordered else "tvd"
    test = "binned Kolmogorov-Smirnov" if ordered else "chi-square homogeneity"
    n_ref, n_live = int(ref.sum()), int(live.sum())
    if n_live < min_rows or n_ref < min_rows:
        return _untested(column, aspect, statistic, test, n_ref, n_live,
                         f"not tested: {min(n_ref, n_live)} values, fewer than the minimum of {min_rows}")
    if ordered and len(column.edges) < 2:
        ordered, statistic, test = False, "tvd", "chi-square homogeneity"
    gaps = _gaps(column) if ordered else np.empty(0)

    def effect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _wasserstein(a, b, gaps) if ordered else _tvd(a, b)

    p_ref, p_live = _shares(ref), _shares(live)
    observed = float(effect(ref, live))
    # one set of redrawn references serves the interval (against the live window redrawn from its own
    # shares) and the threshold (against windows of the live window's size drawn from the reference)
    redrawn = rng.multinomial(n_ref, p_ref, size=n_resamples)
    boot = effect(redrawn, rng.multinomial(n_live, p_live, size=n_resamples))
    null = effect(redrawn, rng.multinomial(n_live, p_ref, size=n_resamples))
    threshold = _calibrated_threshold(null, quantile, min_effect[statistic])
    p = _ks_p(ref, live) if ordered else _chi2_p(ref, live)
    # a distance is biased upwards: the basic (reverse percentile) interval, cut at zero
    interval = (max(0.0, 2 * observed - float(np.quantile(boot, 0.975))),
                max(0.0, 2 * observed - float(np.quantile(boot, 0.025))))
    return _tested(column, aspect, statistic, test, observed, interval, p, threshold, n_ref, n_live)


def _missing_entry(column: ColumnProfile, ref: ColumnCounts, live: ColumnCounts, *, rng: np.random.Generator,
                   n_resamples: int, quantile: float, min_rows: int, min_effect: Mapping[str, float]) -> FeatureDrift:
    test = "chi-square 2x2"
    if live.n < min_rows or ref.n < min_rows:
        return _untested(column, "missing", "missing_rate", test, ref.n, live.n,
                         f"not tested: {min(ref.n, live.n)} rows, fewer than the minimum of {min_rows}")
    p_ref, p_live = ref.missing / ref.n, live.missing / live.n
    observed = p_live - p_ref
    boot = rng.binomial(live.n, p_live, n_resamples) / live.n - rng.binomial(ref.n, p_ref, n_resamples) / ref.n
    null = np.abs(rng.binomial(live.n, p_ref, n_resamples) / live.n - rng.binomial(ref.n, p_ref, n_resamples) / ref.n)
    threshold = _calibrated_threshold(null, quantile, min_effect["missing_rate"])
    table = np.array([[ref.missing, ref.n - ref.missing], [live.missing, live.n - live.missing]])
    p = 1.0 if (table.sum(axis=0) == 0).any() else float(stats.chi2_contingency(table, correction=False).pvalue)
    interval = (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975)))
    return _tested(column, "missing", "missing_rate", test, observed, interval, p, threshold, ref.n, live.n)


def compare(
    profile: Profile,
    live: Summary,
    *,
    importances: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    min_rows: int = 100,
    min_effect: Mapping[str, float] | None = None,
    n_resamples: int = 200,
    quantile: float = 0.99,
    random_state: int = 0,
) -> list[FeatureDrift]:
    """The drift of every profiled column of ``live`` against the reference, one entry per aspect.

    Parameters
    ----------
    profile : Profile
        The reference (`build_profile`).
    live : Summary
        The live window's counts (`summarize`, `summarize_chunks`).
    importances : mapping of str to float, optional
        Each column's importance in the model, copied into the entries.
    alpha : float
        The false discovery rate across all entries (Benjamini–Hochberg).
    min_rows : int
        An aspect with fewer values than this, live or in the reference, is not tested.
    min_effect : mapping, optional
        The practical minimum effect per statistic (defaults: `MIN_EFFECT`).
    n_resamples : int
        Resampled windows behind each interval and each calibrated threshold.
    quantile : float
        The quantile of the resampled no-drift effects that sets the threshold.
    random_state : int
        Seed of the resampling: the same counts give the same entries.

    Returns
    -------
    list of FeatureDrift
        In profile order; for each column its aspects, then ``missing``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=5000)})
    >>> profile = build_profile(ref, {"x": "numeric"})
    >>> shifted = summarize(pd.DataFrame({"x": rng.normal(0.5, 1, size=2000)}), profile)
    >>> [(e.aspect, e.drift) for e in compare(profile, shifted)]
    [('distribution', True), ('missing', False)]
    """
    if not 0 < alpha < 1:
        raise InvalidParameterError(f"alpha must be in (0, 1). Got {alpha!r}.")
    effects = {**MIN_EFFECT, **(min_effect or {})}
    entries: list[FeatureDrift] = []
    for index, column in enumerate(profile.columns):
        rng = np.random.default_rng([random_state, index])
        ref, now = profile.reference.columns[column.name], live.columns[column.name]
        for aspect, counts in ref.aspects.items():
            ordered = aspect in ("distribution", "length") and column.role in ("numeric", "text")
            entries.append(_binned_entry(column, aspect, counts, now.aspects[aspect], ordered=ordered, rng=rng,
                                         n_resamples=n_resamples, quantile=quantile, min_rows=min_rows,
                                         min_effect=effects))
        entries.append(_missing_entry(column, ref, now, rng=rng, n_resamples=n_resamples, quantile=quantile,
                                      min_rows=min_rows, min_effect=effects))
    tested = [i for i, e in enumerate(entries) if e.p_value is not None]
    adjusted = np.ones(len(entries))
    if tested:
        p = np.clip(np.array([entries[i].p_value for i in tested], dtype=float), 0.0, 1.0)
        adjusted[tested] = stats.false_discovery_control(p, method="bh")
    weights = importances or {}
    out = []
    for i, e in enumerate(entries):
        drift = (e.p_value is not None and e.effect is not None and e.threshold is not None
                 and adjusted[i] < alpha and abs(e.effect) > e.threshold)
        out.append(replace(e, p_adjusted=float(adjusted[i]) if e.p_value is not None else None, drift=bool(drift),
                           importance=float(weights.get(e.name, 0.0))))
    return out


def drifted_importance(features: Sequence[FeatureDrift], importances: Mapping[str, float] | None) -> float:
    """The share of the model's importance carried by columns with at least one drifted aspect.

    Without importances every column weighs the same. Negative importances
    (permutation noise) count as zero.

    Examples
    --------
    >>> e = FeatureDrift("x", "numeric", "distribution", "wasserstein", "ks", 0.5, (0.4, 0.6),
    ...                  1e-9, 1e-9, 0.1, True, 100, 100)
    >>> round(drifted_importance([e], {"x": 0.3, "y": 0.1}), 6)
    0.75
    """
    names = list(dict.fromkeys(f.name for f in features))
    if importances:
        weights = {n: max(float(importances.get(n, 0.0)), 0.0) for n in {*names, *importances}}
    else:
        weights = dict.fromkeys(names, 1.0)
    total = sum(weights.values())
    if total <= 0:
        weights, total = dict.fromkeys(names, 1.0), float(len(names) or 1)
    drifted = {f.name for f in features if f.drift}
    return float(sum(w for n, w in weights.items() if n in drifted) / total)
