"""Item content from item metadata: TF-IDF rows that give items without interactions neighbours.

Columns are chosen by what they hold, not by their names: free text (many
distinct, multi-word values) is split into words; multi-value fields such as
``"Action|Comedy"`` into their values; low-cardinality text, booleans and
small-range numbers are one token per value; other numbers are binned into
quantiles. Identifier-like columns (a distinct single token per item) and
columns that vary within an item (interaction columns of a table with one row
per interaction) are left out. Each column is TF-IDF weighted and
L2-normalised on its own, so a long description does not drown the genres,
then the rows are L2-normalised again: a dot product of two rows is their
cosine similarity.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mlpilot.exceptions import DataError, DataQualityWarning

logger = logging.getLogger(__name__)

MULTI_VALUE_SEPARATORS = ("|", ";", ",")
MAX_FEATURES_PER_COLUMN = 20_000
N_BINS = 5
# weight of each kind of column before the final normalisation: a quantile bin
# is shared by a fifth of the catalogue, and the few words of a name (a title)
# link items more loosely than a description or a genre does
KIND_WEIGHTS = {"text": 1.0, "name": 0.5, "multi": 1.0, "category": 1.0, "numeric": 0.5}


@dataclass(frozen=True)
class ItemContent:
    """TF-IDF content rows of the items of an item-metadata table.

    ``items`` are the ids (coerced to the type of the interaction ids),
    ``matrix`` holds one L2-normalised float32 row per id (all-zero when the
    item has no usable metadata), ``columns`` maps each column used to its kind.
    """

    items: np.ndarray
    matrix: sp.csr_matrix
    columns: dict[str, str]


def align_item_ids(frame: pd.DataFrame, item: str, reference: np.ndarray) -> pd.DataFrame:
    """The item-metadata rows with an id, ids converted to the type of the interaction ids.

    Numbers written as text (``"31"``) become numbers when the interactions use
    numbers, numbers become text when they use text.

    Raises
    ------
    DataError
        When ids cannot be converted, or none matches an interaction item.
    """
    frame = frame[frame[item].notna()].reset_index(drop=True)
    ids = frame[item]
    kind = reference.dtype.kind
    if kind in "iuf" and not (pd.api.types.is_numeric_dtype(ids) and not pd.api.types.is_bool_dtype(ids)):
        converted = pd.to_numeric(ids, errors="coerce")
        bad = ids[converted.isna()]
        if len(bad):
            examples = ", ".join(repr(v) for v in bad.astype(str).unique()[:3])
            raise DataError(
                f"The item column {item!r} of the item metadata must hold numbers, as the item ids "
                f"of the interactions do (dtype {reference.dtype}). {len(bad)} id(s) are not numbers, "
                f"e.g. {examples}. Use the same item ids in both tables."
            )
        ids = converted
    if kind in "iu":
        if not np.all(np.mod(ids.to_numpy(dtype=np.float64), 1) == 0):
            raise DataError(
                f"The item column {item!r} of the item metadata holds fractional numbers; the "
                f"interactions use integer item ids (dtype {reference.dtype}). Use the same item ids "
                "in both tables."
            )
        ids = ids.astype(reference.dtype)
    elif kind == "f":
        ids = ids.astype(np.float64)
    elif kind in "OUS" and all(isinstance(v, str) for v in reference[:1000].tolist()):
        ids = ids.map(_as_text)
    if len(ids) and not ids.isin(set(reference.tolist())).any():
        examples = ", ".join(repr(v) for v in reference[:3].tolist())
        got = ", ".join(repr(v) for v in ids.iloc[:3].tolist())
        raise DataError(
            f"None of the {ids.nunique()} item ids of the item metadata (column {item!r}, "
            f"e.g. {got}) matches an item id of the interactions (e.g. {examples}). Check that "
            "both tables use the same item column."
        )
    out = frame.copy()
    out[item] = ids
    return out


def _as_text(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def item_content(frame: pd.DataFrame, item: str) -> ItemContent | None:
    """TF-IDF content of each item of an item-metadata table (see the module docstring).

    ``frame[item]`` must already hold ids of the interactions' type (`align_item_ids`).
    Returns None, with a `DataQualityWarning`, when no column is usable.
    """
    columns = _item_attribute_columns(frame, item)
    table = frame.drop_duplicates(subset=[item]).reset_index(drop=True)
    kinds = {c: k for c in columns if (k := _column_kind(table[c])) is not None}
    if not kinds:
        warnings.warn(
            f"The item metadata has no column usable for content similarity (columns: "
            f"{[str(c) for c in frame.columns]}); it gives titles only, and items without "
            "interactions stay unknown. Add text, genre or category columns.",
            DataQualityWarning,
            stacklevel=3,
        )
        return None
    blocks = []
    used = {}
    for column, kind in kinds.items():
        block = _column_block(table[column], kind)
        if block is not None:
            blocks.append(block * KIND_WEIGHTS[kind])
            used[str(column)] = kind
    if not blocks:
        warnings.warn(
            "No column of the item metadata has a value shared by two items, so no item has a "
            "content neighbour; items without interactions stay unknown.",
            DataQualityWarning,
            stacklevel=3,
        )
        return None
    from sklearn.preprocessing import normalize

    matrix = sp.csr_matrix(normalize(sp.hstack(blocks, format="csr")), dtype=np.float32)
    matrix.eliminate_zeros()
    logger.info("item content: %d items, %d features from %s", matrix.shape[0], matrix.shape[1], used)
    return ItemContent(items=table[item].to_numpy(), matrix=matrix, columns=used)


def _item_attribute_columns(frame: pd.DataFrame, item: str) -> list[Any]:
    """Columns that are constant within each item: a table with one row per
    interaction also carries users, ratings and times, which describe no item."""
    columns = [c for c in frame.columns if c != item]
    if not frame[item].duplicated().any():
        return columns
    varying = frame.groupby(item, sort=False)[columns].nunique(dropna=True).max()
    dropped = [c for c in columns if varying[c] > 1]
    if dropped:
        logger.info("item metadata: %s vary within an item; not used for content", dropped)
    return [c for c in columns if varying[c] <= 1]


def _column_kind(values: pd.Series) -> str | None:
    present = values.dropna()
    n_unique = present.nunique()
    if len(present) < 2 or n_unique < 2:
        return None
    if pd.api.types.is_bool_dtype(values):
        return "category"
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
        return None
    if pd.api.types.is_numeric_dtype(values):
        integral = bool(np.all(np.mod(present.to_numpy(dtype=np.float64), 1) == 0))
        if integral and n_unique == len(present):
            return None  # an identifier
        return "category" if n_unique <= 20 else "numeric"
    text = present.astype(str)
    if _separator(text) is not None:
        return "multi"
    words = text.str.count(r"\w+")
    if words.mean() <= 1.2 and n_unique == len(text):
        return None  # an identifier
    if n_unique <= 0.5 * len(text) and words.mean() <= 4:
        return "category"
    return "name" if words.mean() <= 6 else "text"


def _separator(text: pd.Series) -> str | None:
    """The separator of a multi-value column ("Action|Comedy"), if it is one."""
    for sep in MULTI_VALUE_SEPARATORS:
        has = text.str.contains(sep, regex=False)
        if has.mean() < 0.1:
            continue
        parts = text.str.split(sep, regex=False).explode().str.strip().str.lower()
        parts = parts[parts != ""]
        # values are short and, for a comma, repeat across items, unlike the clauses of prose
        short = parts.str.count(r"\w+").mean() <= 3
        if short and (sep != "," or parts.nunique() <= 0.5 * len(parts)):
            return sep
    return None


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _tokens(values: pd.Series, kind: str) -> list[list[str]]:
    if kind == "multi":
        text = values.astype(str)
        sep = _separator(text.dropna()) or "|"
        return [
            [] if v is None or v != v else [p.strip().lower() for p in str(v).split(sep) if p.strip()]
            for v in values.astype(object).tolist()
        ]
    if kind == "numeric":
        numbers = values.astype(np.float64)
        edges = np.unique(np.nanquantile(numbers.to_numpy(), np.linspace(0, 1, N_BINS + 1)[1:-1]))
        bins = np.searchsorted(edges, numbers.to_numpy(), side="right")
        return [[] if np.isnan(x) else [f"q{b}"] for x, b in zip(numbers.tolist(), bins.tolist(), strict=True)]
    return [[] if v is None or v != v else [str(v).strip().lower()] for v in values.astype(object).tolist()]


def _column_block(values: pd.Series, kind: str) -> sp.csr_matrix | None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer: Callable[[Any], list[str]] | str
    if kind in ("text", "name"):
        documents: list[Any] = [
            "" if v is None or v != v else str(v) for v in values.astype(object).tolist()
        ]
        options: dict[str, Any] = {"stop_words": "english", "token_pattern": r"(?u)\b\w\w+\b"}
        analyzer = "word"
    else:
        documents = _tokens(values, kind)
        options = {}
        analyzer = _identity
    # a token of one item links it to nothing; drop such tokens when some are shared
    for min_df in (2, 1):
        vectorizer = TfidfVectorizer(
            analyzer=analyzer, min_df=min_df, max_features=MAX_FEATURES_PER_COLUMN,
            sublinear_tf=True, dtype=np.float32, **options,
        )
        try:
            block = vectorizer.fit_transform(documents)
        except ValueError:  # an empty vocabulary
            continue
        return sp.csr_matrix(block, dtype=np.float32)
    return None


def nearest(
    queries: sp.csr_matrix,
    candidates: sp.csr_matrix,
    n_neighbors: int,
    *,
    exclude: np.ndarray | None = None,
) -> sp.csr_matrix:
    """The ``n_neighbors`` most cosine-similar candidate rows of each query row.

    Returns a queries x candidates CSR matrix of the similarities kept (only
    positive ones). ``exclude[q]`` is a candidate index left out for query
    ``q`` (-1: none), e.g. the query itself.
    """
    n_q, n_c = queries.shape[0], candidates.shape[0]
    n_neighbors = min(n_neighbors, n_c)
    rows, cols, vals = [], [], []
    if n_neighbors == 0 or n_q == 0:
        return sp.csr_matrix((n_q, n_c), dtype=np.float32)
    candidates_t = sp.csr_matrix(candidates.T)
    # dense blocks of about 16M similarities bound the memory on large catalogues
    step = max(1, (1 << 24) // max(n_c, 1))
    for start in range(0, n_q, step):
        block = np.asarray((queries[start : start + step] @ candidates_t).todense(), dtype=np.float32)
        if exclude is not None:
            own = exclude[start : start + step]
            hit = own >= 0
            block[np.flatnonzero(hit), own[hit]] = 0.0
        top = np.argpartition(-block, n_neighbors - 1, axis=1)[:, :n_neighbors]
        sims = np.take_along_axis(block, top, axis=1)
        keep = sims > 0
        rows.append((np.arange(block.shape[0])[:, None] + start).repeat(n_neighbors, axis=1)[keep])
        cols.append(top[keep])
        vals.append(sims[keep])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_q, n_c), dtype=np.float32
    )

