"""The one leakage detector: feature columns that alone give the target away.

`profile` and `train` both call it, so they flag the same columns with the same
numbers. Each feature is scored by the best simple rule on that column alone:

- classification: balanced accuracy of a threshold ("expenditure > 0 gives
  card='yes'", fitted on all rows: one free parameter) and of a value map
  (the column's values, or its quantile ranges for numbers, each predicting
  its majority class, scored leave-one-out);
- regression: R² of a straight line (between the values, and between their ranks: a log of
  the target is a monotone function of it), and of the value map's group means
  (leave-one-out); and of a sum of two or three numeric columns, weighted by least
  squares (chosen greedily), held to the stricter `COMBINATION_THRESHOLD`: a total or
  a mean of other columns (Caschool's ``testscr``, the mean of ``readscr`` and
  ``mathscr``) is no single column's, and every column of the sum is a suspect;
- date and time columns (dates as text included) as numbers: the days since 1970;
- binary classification, text of several words: the balanced accuracy of one word's presence
  ("description contains 'makes' gives shot = 'H'"), fitted on all rows like a threshold;
- classification, every column with missing values (mostly missing ones too):
  the balanced accuracy of its missingness alone ("yrdth missing gives
  death = 0"), leave-one-out.

Thresholds over numeric columns are found for all columns at once (sorting a
matrix), so wide tables cost time roughly linear in their cells.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

import numpy as np
import pandas as pd

from mlpilot.data._schema import Schema, looks_like_datetime
from mlpilot.data._times import CLOCK_DAY, elapsed_days, parse_times

# A single column whose best rule scores at least this is a leak suspect.
LEAK_THRESHOLD = 0.98
_SAMPLE = 20_000
# Fewer rows than this in the rarest class and a near-perfect rule can happen by chance.
_MIN_CLASS_ROWS = 10
_MIN_ROWS = 20
_BLOCK = 2_000  # numeric columns scored together
_MAX_WORDS = 3  # words in a text column's rule
#: R² of a weighted sum of two or three columns that makes each a suspect (a formula, not a fit)
COMBINATION_THRESHOLD = 0.9999
_MAX_TERMS = 3
_MONOTONE_FLOOR = 0.3  # linear R² under which a column is not ranked
#: linear R² under which a column is no term of a sum (chance alone gives about 1 / rows)
_TERM_FLOOR = 0.01
_WORD_ROWS = 5_000  # rows of a text column its words are counted in


@dataclass(frozen=True)
class LeakScore:
    """How well one column alone predicts the target, and by which rule."""

    column: str
    score: float
    metric: str  # "balanced accuracy", "R²" or "rank R²"
    rule: str

    @property
    def suspect(self) -> bool:
        return self.score >= LEAK_THRESHOLD

    def describe(self) -> str:
        return f"{self.rule} gives {self.metric} {self.score:.4f}"


def _number(value: float) -> str:
    return f"{value:.6g}"


def _value_codes(x: pd.Series) -> tuple[np.ndarray, str] | None:
    """Group codes for the value map of a non-numeric column (missing is a value of its own)."""
    codes, uniques = pd.factorize(x, use_na_sentinel=False)
    if len(uniques) > 0.5 * len(x):
        return None  # id-like: every value its own group, nothing to generalise
    return codes.astype(np.int64), f"its {len(uniques)} values"


def _loo_balanced_accuracy(codes: np.ndarray, y: np.ndarray, n_classes: int, class_rows: np.ndarray) -> float:
    """Balanced accuracy of predicting each row's class by the majority of the other rows of its group."""
    n_groups = int(codes.max()) + 1
    counts = np.bincount(codes * n_classes + y, minlength=n_groups * n_classes).reshape(n_groups, n_classes)
    own = counts[codes].astype(float)
    own[np.arange(len(y)), y] -= 1  # leave the row itself out
    # ties go to the most frequent class overall, deterministically
    own += class_rows / (class_rows.sum() * 10.0)
    predicted = own.argmax(axis=1)
    recall = np.bincount(y[predicted == y], minlength=n_classes) / class_rows
    return float(recall.mean())


def _loo_r2(codes: np.ndarray, y: np.ndarray) -> float:
    """R² of predicting each row by the mean of the other rows of its group."""
    n_groups = int(codes.max()) + 1
    sums = np.bincount(codes, weights=y, minlength=n_groups)
    sizes = np.bincount(codes, minlength=n_groups).astype(float)
    others = sizes[codes] - 1
    overall = (y.sum() - y) / (len(y) - 1)
    predicted = np.where(others > 0, (sums[codes] - y) / np.maximum(others, 1), overall)
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - predicted) ** 2)) / total if total > 0 else 0.0


def _sorted_block(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's sort order and sorted values; missing values sort below every number."""
    filled = np.where(np.isnan(block), -np.inf, block)
    order = np.argsort(filled, axis=0, kind="stable")
    return order, np.take_along_axis(filled, order, axis=0)


def _best_thresholds(order: np.ndarray, xs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For binary ``y`` (0/1) and each column: the best balanced accuracy of ``x > t``, ``t`` and the class above."""
    n = len(y)
    ys = y[order]
    n_pos = float(y.sum())
    n_neg = n - n_pos
    below_pos = np.cumsum(ys, axis=0)[:-1]
    below_neg = np.arange(1, n)[:, None] - below_pos
    # rule "x > t gives class 1": negatives below the cut, positives above
    ba = 0.5 * (below_neg / n_neg + (n_pos - below_pos) / n_pos)
    valid = xs[1:] > xs[:-1]  # cut only between distinct values
    flipped = 1.0 - ba
    best_dir = np.where(flipped > ba, 0, 1)  # class above the cut
    score = np.where(valid, np.maximum(ba, flipped), -1.0)
    at = score.argmax(axis=0)
    cols = np.arange(order.shape[1])
    return score[at, cols], xs[at, cols], best_dir[at, cols]


def _block_codes(order: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Value-map groups for a block of numeric columns: the values when few, else quantile ranges.

    Returns the codes (rows x columns), each column's number of distinct values (0 for the
    many-valued ones) and the number of ranges used for those.
    """
    n = xs.shape[0]
    n_bins = min(32, max(2, n // 20))
    change = np.vstack([np.zeros((1, xs.shape[1]), dtype=bool), xs[1:] != xs[:-1]])
    dense = np.cumsum(change, axis=0)
    n_values = dense[-1] + 1
    ranges = (np.arange(n)[:, None] * n_bins) // n
    sorted_codes = np.where(n_values <= n_bins, dense, ranges)
    codes = np.empty_like(sorted_codes)
    np.put_along_axis(codes, order, sorted_codes, axis=0)
    return codes, np.where(n_values <= n_bins, n_values, 0), n_bins


def _block_loo_balanced_accuracy(codes: np.ndarray, y: np.ndarray, n_classes: int, class_rows: np.ndarray) -> np.ndarray:
    """`_loo_balanced_accuracy` for every column of ``codes`` at once."""
    n, m = codes.shape
    n_groups = int(codes.max()) + 1
    out = np.empty(m)
    step = max(1, int(4e6 // (n * n_classes)))
    tie = class_rows / (class_rows.sum() * 10.0)
    for start in range(0, m, step):
        part = codes[:, start : start + step]
        k = part.shape[1]
        flat = (np.arange(k)[None, :] * n_groups + part) * n_classes + y[:, None]
        counts = np.bincount(flat.ravel(), minlength=k * n_groups * n_classes).reshape(k, n_groups, n_classes)
        own = counts[np.arange(k)[None, :], part].astype(float)  # rows x columns x classes
        own[np.arange(n), :, y] -= 1
        own += tie
        hit = own.argmax(axis=2) == y[:, None]
        recall = np.stack([hit[y == c].sum(axis=0) / class_rows[c] for c in range(n_classes)])
        out[start : start + k] = recall.mean(axis=0)
    return out


def _block_loo_r2(codes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`_loo_r2` for every column of ``codes`` at once."""
    n, m = codes.shape
    n_groups = int(codes.max()) + 1
    flat = np.arange(m)[None, :] * n_groups + codes
    sums = np.bincount(flat.ravel(), weights=np.repeat(y, m), minlength=m * n_groups)
    sizes = np.bincount(flat.ravel(), minlength=m * n_groups).astype(float)
    others = sizes[flat] - 1
    overall = ((y.sum() - y) / (n - 1))[:, None]
    predicted = np.where(others > 0, (sums[flat] - y[:, None]) / np.maximum(others, 1), overall)
    total = float(np.sum((y - y.mean()) ** 2))
    if total <= 0:
        return np.zeros(m)
    return 1.0 - ((y[:, None] - predicted) ** 2).sum(axis=0) / total


@overload
def leakage_scores(
    frame: pd.DataFrame, target: str, task: str, features: list[str], *,
    random_state: int = 0, on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, LeakScore]: ...


@overload
def leakage_scores(frame: pd.DataFrame, target: Schema, *, random_state: int = 0) -> dict[str, float]: ...


def leakage_scores(
    frame: pd.DataFrame,
    target: str | Schema,
    task: str | None = None,
    features: list[str] | None = None,
    *,
    random_state: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, LeakScore] | dict[str, float]:
    """Score how well each of ``features`` alone predicts ``target``, with the rule that does it.

    ``leakage_scores(frame, schema)``, the form before mlpilot 0.2, still works
    (scores only, with a ``FutureWarning``); it will be removed in 0.3.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    on_progress : callable, optional
        Called with (columns scored, columns in all).

    Returns
    -------
    dict
        Column name to `LeakScore`; columns that cannot be scored (text,
        id-like, mostly missing) are left out. Empty when the target has
        fewer than 20 rows, or a class with fewer than 10.
    """
    if isinstance(target, Schema):
        warnings.warn(
            "leakage_scores(frame, schema) is deprecated and will be removed in mlpilot 0.3; call "
            "leakage_scores(frame, target, task, features), which also gives each column's rule.",
            FutureWarning,
            stacklevel=2,
        )
        schema = target
        if schema.target is None:
            return {}
        target_col = schema[schema.target]
        old_task = (
            "regression" if target_col.dtype in ("integer", "float") and target_col.n_unique > 20
            else "binary" if target_col.n_unique == 2 else "multiclass"
        )
        names = [c.name for c in schema.features if c.role != "text"]
        scored = leakage_scores(frame, schema.target, old_task, names, random_state=random_state)
        return {name: score.score for name, score in scored.items()}
    if task is None or features is None:
        raise TypeError("leakage_scores needs the task and the feature names")
    if target not in frame.columns:
        return {}
    rows = np.flatnonzero(frame[target].notna().to_numpy())
    if len(rows) > _SAMPLE:  # sample before selecting: no copy of a long table
        rows = np.sort(np.random.default_rng(random_state).choice(rows, _SAMPLE, replace=False))
    data = frame.iloc[rows][[*features, target]]
    n = len(data)
    if n < _MIN_ROWS or not features:
        return {}
    regression = task == "regression"
    if regression:
        y_float = pd.to_numeric(data[target], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(y_float)
        if keep.sum() < _MIN_ROWS or np.std(y_float[keep]) == 0:
            return {}
        data, y_float = data.loc[keep], y_float[keep]
        n = len(data)
        classes: np.ndarray = np.array([])
        y_codes = np.zeros(n, dtype=np.int64)
        class_rows = np.zeros(0)
    else:
        y_codes, labels = pd.factorize(data[target].astype(str), sort=True)
        classes = np.asarray(labels)
        class_rows = np.bincount(y_codes, minlength=len(classes)).astype(float)
        if len(classes) < 2 or class_rows.min() < _MIN_CLASS_ROWS:
            return {}
    scores: dict[str, LeakScore] = {}
    numeric_cols: list[str] = []
    other_cols: list[str] = []
    mostly_missing = data[features].isna().mean().to_numpy() > 0.5
    dates = _date_columns(data, [f for f, skip in zip(features, mostly_missing, strict=True) if not skip])
    raw = data
    if dates:  # ordered in time: scored as the numbers they are, not as one category per date
        data = data.assign(**{name: days for name, days in dates.items()})
    for col, dtype, skip in zip(features, data[features].dtypes, mostly_missing, strict=True):
        if skip:
            continue
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            numeric_cols.append(col)
        else:
            other_cols.append(col)
    done = 0
    total = len(numeric_cols) + len(other_cols)
    step = max(1, min(_BLOCK, int(1.5e6 // max(n, 1))))  # about 12 MB per n x step array
    line_r2: dict[str, float] = {}
    for start in range(0, len(numeric_cols), step):
        names = numeric_cols[start : start + step]
        block = data[names].to_numpy(dtype=float, na_value=np.nan)
        order, xs = _sorted_block(block)
        if regression:
            r2 = _score_linear(block, y_float, names, target, scores)
            _score_monotone(block, y_float, r2, names, target, scores)
            line_r2.update(zip(names, np.nan_to_num(r2).tolist(), strict=True))
        elif len(classes) == 2:
            best, cut, above = _best_thresholds(order, xs, y_codes)
            for j, name in enumerate(names):
                if best[j] >= 0:
                    label = classes[above[j]]
                    shown = _moment(cut[j]) if name in dates else _number(cut[j])
                    rule = f"{name} > {shown} → {target} = {label!r}" if np.isfinite(cut[j]) else (
                        f"{name} present → {target} = {label!r}"
                    )
                    scores[name] = LeakScore(name, float(best[j]), "balanced accuracy", rule)
        codes, n_groups, n_bins = _block_codes(order, xs)
        mapped = (
            _block_loo_r2(codes, y_float) if regression
            else _block_loo_balanced_accuracy(codes, y_codes, len(classes), class_rows)
        )
        metric = "R²" if regression else "balanced accuracy"
        for j, name in enumerate(names):
            previous = scores.get(name)
            if previous is None or mapped[j] > previous.score:
                what = f"its {n_groups[j]} values" if n_groups[j] else f"{n_bins} ranges of its values"
                scores[name] = LeakScore(name, float(mapped[j]), metric, _map_rule(name, what, target, regression))
        done += len(names)
        if on_progress is not None:
            on_progress(done, total)
    terms = [c for c in numeric_cols if line_r2.get(c, 0.0) >= _TERM_FLOOR]
    if regression and len(terms) >= 2:
        _score_combination(data, terms, y_float, target, scores)
    for name in other_cols:
        _score_value_map(data[name], name, target, regression, y_float if regression else y_codes,
                         len(classes), class_rows, scores)
        if len(classes) == 2:
            _score_words(data[name], name, target, y_codes, classes, scores)
        done += 1
        if on_progress is not None and (done % 200 == 0 or done == total):
            on_progress(done, total)
    if not regression:
        _score_missingness(raw, features, target, y_codes, classes, class_rows, scores)
    return scores


def _moment(days: float) -> str:
    """Days since 1970 as a date (``2020-03-31``), a time (``2020-03-31 12:00:00``) or, on the day clock
    times are read on, the time alone (``01:15:00``)."""
    if not np.isfinite(days):
        return _number(days)
    moment = pd.Timestamp(days, unit="D").round("s")
    if moment.normalize() == CLOCK_DAY:
        return moment.strftime("%H:%M:%S")
    return str(moment.date()) if moment == moment.normalize() else str(moment)


def _date_columns(data: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    """The days since 1970 of each of ``names`` that holds dates or times (as datetimes, or as text the
    schema reads as dates: ``2024-05-01``, ``1998 Q1``, ``02:31:38``)."""
    found: dict[str, np.ndarray] = {}
    for name in names:
        column = data[name]
        if not pd.api.types.is_datetime64_any_dtype(column):
            if column.dtype != object and not pd.api.types.is_string_dtype(column):
                continue
            present = column.dropna()
            head = present.iloc[:: max(len(present) // 200, 1)].astype(str).tolist()
            if not looks_like_datetime(head):
                continue
        found[name] = elapsed_days(parse_times(column))
    return found


def _score_missingness(data: pd.DataFrame, features: list[str], target: str, y: np.ndarray, classes: np.ndarray,
                       class_rows: np.ndarray, scores: dict[str, LeakScore]) -> None:
    """The rule "COL is missing → class", for every feature with some values missing, mostly missing ones too.

    A date of death, missing for everyone alive (causaldata/nhefs: ``yrdth``, 80% missing), gives
    ``death`` away by its missingness alone; the value rules above skip a column that is mostly missing.
    """
    missing = data[features].isna().to_numpy()
    some = np.flatnonzero(missing.any(axis=0) & ~missing.all(axis=0))
    if not len(some):
        return
    codes = missing[:, some].astype(np.int64)
    mapped = _block_loo_balanced_accuracy(codes, y, len(classes), class_rows)
    for j, column in enumerate(some):
        name = features[column]
        previous = scores.get(name)
        if previous is None or mapped[j] > previous.score:
            absent = codes[:, j] == 1
            label = classes[np.bincount(y[absent], minlength=len(classes)).argmax()]
            rule = f"{name} missing → {target} = {label!r} ({int(absent.sum())} of {len(y)} rows missing)"
            scores[name] = LeakScore(name, float(mapped[j]), "balanced accuracy", rule)


def _score_words(x: pd.Series, name: str, target: str, y: np.ndarray, classes: np.ndarray,
                 scores: dict[str, LeakScore]) -> None:
    """The rule "COL contains WORD (or one of up to `_MAX_WORDS` words) → class" for a text column
    (two words a value or more on average), binary targets only, the words chosen greedily on all
    rows like a threshold: a play-by-play line that says "misses" or "Missed" gives the shot away,
    while each line is a value of its own to the value map."""
    present = x.notna().to_numpy()
    if present.sum() > _WORD_ROWS:  # every k-th row holding text: a leak's words are in nearly all of them
        present = present & (np.arange(len(x)) % int(np.ceil(present.sum() / _WORD_ROWS)) == 0)
    text = x[present].astype(str)
    if text.empty or text.str.count(r"\w+").mean() < 2:
        return
    from sklearn.feature_extraction.text import CountVectorizer

    class_rows = np.bincount(y[present], minlength=2).astype(float)
    if class_rows.min() == 0:
        return
    try:
        vectorizer = CountVectorizer(binary=True, min_df=2, max_features=5000)
        words = vectorizer.fit_transform(text).tocsc()
    except ValueError:  # no word in any value
        return
    y_present = y[present]
    onehot = np.eye(2)[y_present]
    with_word = np.asarray(words.T @ onehot)  # rows of each class holding each word
    best: tuple[float, list[int], int] = (-1.0, [], 0)
    for label in (0, 1):  # rows holding one of the words → label, the other rows with text → the other class
        chosen: list[int] = []
        covered = np.zeros(len(y_present), dtype=bool)
        score = -1.0
        for _ in range(_MAX_WORDS):
            held = np.asarray(words.T @ (onehot * covered[:, None]))  # rows already covered, per word and class
            union = with_word - held + onehot[covered].sum(axis=0)  # rows covered with each word added
            recall = union / class_rows
            balanced = 0.5 * (recall[:, label] + 1.0 - recall[:, 1 - label])
            balanced[chosen] = -1.0
            word = int(np.argmax(balanced))
            if balanced[word] <= score + 1e-9:
                break
            chosen.append(word)
            covered |= words[:, word].toarray().ravel() > 0
            score = float(balanced[word])
        if score > best[0]:
            best = (score, chosen, label)
    score, chosen, label = best
    previous = scores.get(name)
    if chosen and (previous is None or score > previous.score):
        names = vectorizer.get_feature_names_out()
        said = " or ".join(repr(str(names[w])) for w in chosen)
        scores[name] = LeakScore(name, score, "balanced accuracy", f"{name} contains {said} → {target} = {classes[label]!r}")


def _score_combination(data: pd.DataFrame, names: list[str], y: np.ndarray, target: str,
                       scores: dict[str, LeakScore]) -> None:
    """The least-squares sum of up to `_MAX_TERMS` complete numeric columns, chosen greedily (orthogonal
    matching pursuit: each step takes the column that explains most of what is left). When two or
    more columns reach `COMBINATION_THRESHOLD`, each of them gets the rule, shown as the formula."""
    block = data[names].to_numpy(dtype=float, na_value=np.nan)
    complete = np.isfinite(block).all(axis=0) & (np.nanstd(block, axis=0) > 0)
    if complete.sum() < 2:
        return
    columns = np.flatnonzero(complete)
    X = block[:, columns] - block[:, columns].mean(axis=0)
    X /= np.linalg.norm(X, axis=0)
    centred = y - y.mean()
    total = float(centred @ centred)
    residual, left = centred.copy(), X.copy()
    chosen: list[int] = []
    for _ in range(_MAX_TERMS):
        norms = np.linalg.norm(left, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = np.where(norms > 1e-8, (left.T @ residual) / norms, 0.0) ** 2
        gain[chosen] = 0.0
        best = int(np.argmax(gain))
        if gain[best] <= 0:
            break
        chosen.append(best)
        q = left[:, best] / norms[best]
        residual = residual - q * (q @ residual)
        left = left - np.outer(q, q @ left)
        if 1.0 - float(residual @ residual) / total >= COMBINATION_THRESHOLD:
            break
    r2 = 1.0 - float(residual @ residual) / total
    if len(chosen) < 2 or r2 < COMBINATION_THRESHOLD:
        return
    picked = [names[columns[j]] for j in chosen]
    design = np.column_stack([block[:, columns[chosen]], np.ones(len(y))])
    weights = np.linalg.lstsq(design, y, rcond=None)[0]
    terms = " + ".join(f"{_number(w)} × {n}" for w, n in zip(weights[:-1], picked, strict=True))
    offset = f" {'+' if weights[-1] >= 0 else '-'} {_number(abs(weights[-1]))}" if abs(weights[-1]) > 1e-4 * np.std(y) else ""
    rule = f"{target} ≈ {terms}{offset}, {', '.join(picked)} together"
    for name in picked:
        previous = scores.get(name)
        if previous is None or r2 > previous.score or not previous.suspect:
            scores[name] = LeakScore(name, r2, "R²", rule)


def _score_linear(block: np.ndarray, y: np.ndarray, names: list[str], target: str,
                  scores: dict[str, LeakScore]) -> np.ndarray:
    """Each column's R² of a straight line to the target, scored; returned for the rules built on it."""
    r2 = _line_r2(block, y)
    for j, name in enumerate(names):
        if np.isfinite(r2[j]):
            scores[name] = LeakScore(name, float(r2[j]), "R²", f"a straight line in {name} → {target}")
    return r2


def _score_monotone(block: np.ndarray, y: np.ndarray, linear: np.ndarray, names: list[str], target: str,
                    scores: dict[str, LeakScore]) -> None:
    """The R² of a straight line between ranks (Spearman's ρ²): a log or a square root of the target
    (wooldridge/wage1's ``lwage``) is a monotone function of it, which the value map's ranges score
    below 0.98 where the target is skewed."""
    # ranked only where a straight line already explains some (a log of a skewed target: about 0.85);
    # ranking every column of a wide table would cost more than all the other rules
    candidates = np.flatnonzero(np.nan_to_num(linear) >= _MONOTONE_FLOOR)
    if not len(candidates):
        return
    r2 = np.full(len(names), np.nan)
    ranks = pd.DataFrame(block[:, candidates]).rank().to_numpy()  # ties averaged, NaN kept (pandas: not scipy's import)
    r2[candidates] = _line_r2(ranks, pd.Series(y).rank().to_numpy())
    for j, name in enumerate(names):
        previous = scores.get(name)
        if np.isfinite(r2[j]) and (previous is None or r2[j] > previous.score):
            scores[name] = LeakScore(name, float(r2[j]), "rank R²", f"a monotone function of {name} → {target}")


def _line_r2(block: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each column's R² of a straight line to ``y`` over the rows it has a value in (NaN if under 11)."""
    present = ~np.isnan(block)
    filled = np.where(present, block, 0.0)
    counts = present.sum(axis=0)
    yc = y[:, None] * present
    mean_x = filled.sum(axis=0) / np.maximum(counts, 1)
    mean_y = yc.sum(axis=0) / np.maximum(counts, 1)
    dx = np.where(present, filled - mean_x, 0.0)
    dy = np.where(present, y[:, None] - mean_y, 0.0)
    sxx, syy, sxy = (dx * dx).sum(axis=0), (dy * dy).sum(axis=0), (dx * dy).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((sxx > 0) & (syy > 0) & (counts > 10), sxy * sxy / (sxx * syy), np.nan)


def _score_value_map(
    x: pd.Series, name: str, target: str, regression: bool,
    y: np.ndarray, n_classes: int, class_rows: np.ndarray, scores: dict[str, LeakScore],
) -> None:
    grouped = _value_codes(x)
    if grouped is None:
        return
    codes, what = grouped
    if regression:
        score, metric = _loo_r2(codes, y), "R²"
    else:
        score, metric = _loo_balanced_accuracy(codes, y, n_classes, class_rows), "balanced accuracy"
    previous = scores.get(name)
    if previous is None or score > previous.score:
        scores[name] = LeakScore(name, score, metric, _map_rule(name, what, target, regression))


def _map_rule(name: str, what: str, target: str, regression: bool) -> str:
    return f"{name} ({what}, each mapped to its {'mean' if regression else 'majority'} {target}, leave-one-out)"


def leak_suspects(frame: pd.DataFrame, target: str, task: str, features: list[str]) -> list[LeakScore]:
    """The `LeakScore` of every feature whose best rule scores at least 0.98, strongest first."""
    found = [s for s in leakage_scores(frame, target, task, features).values() if s.suspect]
    return sorted(found, key=lambda s: -s.score)


def find_leaks(frame: pd.DataFrame, target: str, task: str, features: list[str]) -> list[str]:
    """Return the ``features`` of ``frame`` that alone nearly determine ``target``, strongest first.

    A column is a suspect when its best single-column rule (see the module
    docstring) scores a balanced accuracy or R² of at least 0.98.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [0, 1] * 50, "copy": ["n", "y"] * 50, "x": range(100)})
    >>> find_leaks(df, "y", "binary", ["copy", "x"])
    ['copy']
    """
    return [s.column for s in leak_suspects(frame, target, task, features)]
