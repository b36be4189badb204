"""A single serialisable transformer that turns a raw table into model inputs.

Two encodings serve the model families:

- ``"ordinal"`` (gradient boosting, forests): numbers pass through with their
  missing values, categoricals become integer codes (the most frequent
  ``max_categories`` values; the rest share one code, unknown values are
  missing), datetimes become parts, text becomes TF-IDF reduced by SVD.
  ``categorical_indices_`` tells learners which output columns are codes.
- ``"onehot"`` (linear, kNN, naive Bayes): numbers are imputed with the
  median, scaled, and get missing-value indicators; categoricals are one-hot
  (frequent values only, so high cardinality stays small); text is TF-IDF.
  The output is sparse when text is present.

Fitted state is plain arrays and lists, so skops can persist it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from mlpilot.exceptions import DataError, InvalidParameterError

_ROLES = ("numeric", "categorical", "datetime", "text")


def column_roles(frame: pd.DataFrame) -> dict[str, str]:
    """Infer a role for each column of ``frame`` with mlpilot's schema rules.

    Boolean columns count as categorical; id-like and constant columns are left out.
    """
    from mlpilot.data._schema import infer_column

    roles: dict[str, str] = {}
    for name in frame.columns:
        col = infer_column(str(name), frame[name])
        if col.role in ("id", "constant"):
            continue
        role = "categorical" if col.role == "boolean" else col.role
        if role == "numeric" and not pd.api.types.is_numeric_dtype(frame[name]):
            role = "categorical"
        roles[str(name)] = role
    return roles


def _to_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise DataError(f"Expected a 2-D table of features; got an array of shape {array.shape}.")
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


def _as_float(series: pd.Series) -> np.ndarray:
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiub":
        return series.to_numpy(dtype=float)  # the common case, without pandas' conversions
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float).to_numpy()
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _as_str(series: pd.Series) -> np.ndarray:
    out = series.astype(object).where(series.notna(), None).to_numpy(dtype=object)
    return np.array([None if v is None else str(v) for v in out], dtype=object)


def _category_codes(series: pd.Series, categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the values of ``series`` in ``categories`` (-1: unknown) and the missing mask.

    Matches `_as_str`: values are compared by their ``str``; vectorised when they are strings already.
    """
    values = series.to_numpy(dtype=object)
    missing = np.asarray(pd.isna(values), dtype=bool)
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        values = values.copy()
        present = ~missing
        values[present] = [str(v) for v in values[present]]
    position = {c: i for i, c in enumerate(categories)}.get
    codes = np.array([position(v, -1) for v in values], dtype=np.int64)
    codes[missing] = -1
    return codes, missing


def _datetime_parts(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series):
        dt = series
    else:
        dt = pd.to_datetime(series.astype(object), errors="coerce", format="mixed")
    if getattr(dt.dt, "tz", None) is not None:
        dt = dt.dt.tz_convert(None)
    epoch = (dt - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0
    parts = [epoch, dt.dt.year, dt.dt.month, dt.dt.day, dt.dt.day_of_week, dt.dt.hour]
    return np.column_stack([p.to_numpy(dtype=float, na_value=np.nan) for p in parts])


class TabularPreprocessor(TransformerMixin, BaseEstimator):
    """Turn a raw DataFrame into a numeric matrix for one model family.

    Parameters
    ----------
    encoding : {"ordinal", "onehot"}
        ``"ordinal"`` for tree models, ``"onehot"`` for linear and distance models.
    roles : dict of str to str, optional
        Column name to role (numeric, categorical, datetime, text). Inferred when None;
        columns not listed are ignored.
    max_categories : int
        Most frequent categories kept per column; the rest share one code.
    text_features : int
        TF-IDF vocabulary size per text column.
    text_components : int
        SVD components per text column for the ordinal encoding.
    random_state : int
        Seed of the SVD.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [1.0, None, 3.0], "c": ["a", "b", None]})
    >>> TabularPreprocessor(encoding="onehot").fit_transform(df).shape
    (3, 4)
    """

    def __init__(
        self,
        *,
        encoding: str = "ordinal",
        roles: dict[str, str] | None = None,
        max_categories: int = 254,
        text_features: int = 20000,
        text_components: int = 30,
        random_state: int = 0,
    ) -> None:
        self.encoding = encoding
        self.roles = roles
        self.max_categories = max_categories
        self.text_features = text_features
        self.text_components = text_components
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> TabularPreprocessor:
        if self.encoding not in ("ordinal", "onehot"):
            raise InvalidParameterError(
                f"The 'encoding' parameter of TabularPreprocessor must be 'ordinal' or 'onehot'. Got {self.encoding!r}."
            )
        frame = _to_frame(X)
        roles = dict(self.roles) if self.roles is not None else column_roles(frame)
        bad = {k: v for k, v in roles.items() if v not in _ROLES}
        if bad:
            raise InvalidParameterError(f"Unknown column roles {bad}; accepted: {', '.join(_ROLES)}.")
        self.columns_ = [c for c in roles if c in frame.columns]
        self.roles_ = {c: roles[c] for c in self.columns_}
        self.medians_: dict[str, float] = {}
        self.scales_: dict[str, list[float]] = {}
        self.indicators_: list[str] = []
        self.categories_: dict[str, list[str]] = {}
        self.text_models_: dict[str, Any] = {}
        self.feature_names_out_: list[str] = []
        self.categorical_indices_: list[int] = []
        onehot = self.encoding == "onehot"
        names: list[str] = []
        for col in self.columns_:
            role = self.roles_[col]
            series = frame[col]
            if role == "numeric":
                values = _as_float(series)
                names.append(col)
                if onehot:
                    finite = values[np.isfinite(values)]
                    median = float(np.median(finite)) if finite.size else 0.0
                    filled = np.where(np.isfinite(values), values, median)
                    std = float(filled.std()) or 1.0
                    self.medians_[col] = median
                    self.scales_[col] = [float(filled.mean()), std]
                    if not np.all(np.isfinite(values)):
                        self.indicators_.append(col)
            elif role == "datetime":
                parts = _datetime_parts(series)
                part_names = [f"{col}__{p}" for p in ("days", "year", "month", "day", "dow", "hour")]
                names.extend(part_names)
                if onehot:
                    for i, pname in enumerate(part_names):
                        v = parts[:, i]
                        finite = v[np.isfinite(v)]
                        median = float(np.median(finite)) if finite.size else 0.0
                        filled = np.where(np.isfinite(v), v, median)
                        self.medians_[pname] = median
                        self.scales_[pname] = [float(filled.mean()), float(filled.std()) or 1.0]
            elif role == "categorical":
                present = pd.Series(_as_str(series)).dropna()
                counts = present.value_counts(sort=True)
                keep = counts.index[: self.max_categories].tolist()
                # sorted for a stable order independent of ties in the counts
                self.categories_[col] = sorted(str(k) for k in keep)
                if onehot:
                    names.extend(f"{col}={c}" for c in self.categories_[col])
                else:
                    self.categorical_indices_.append(len(names))
                    names.append(col)
            else:  # text
                docs = pd.Series(_as_str(series)).fillna("").tolist()
                vectorizer = TfidfVectorizer(
                    max_features=self.text_features, sublinear_tf=True, min_df=1, dtype=np.float64
                )
                try:
                    matrix = vectorizer.fit_transform(docs)
                except ValueError:  # empty vocabulary
                    continue
                if onehot:
                    self.text_models_[col] = vectorizer
                    names.extend(f"{col}__{w}" for w in vectorizer.get_feature_names_out())
                else:
                    k = max(1, min(self.text_components, matrix.shape[1] - 1, matrix.shape[0] - 1))
                    svd = TruncatedSVD(n_components=k, random_state=self.random_state)
                    if matrix.shape[1] > 1:
                        svd.fit(matrix)
                        self.text_models_[col] = [vectorizer, svd]
                        names.extend(f"{col}__svd{i}" for i in range(k))
        if onehot:
            names.extend(f"{c}__missing" for c in self.indicators_)
        self.feature_names_out_ = names
        self.n_features_out_ = len(names)
        return self

    def transform(self, X: Any) -> Any:
        check_is_fitted(self, "columns_")
        frame = _to_frame(X)
        n = len(frame)
        onehot = self.encoding == "onehot"
        sparse = onehot and any(col in self.text_models_ for col in self.columns_)
        dense: list[np.ndarray] = []
        for col in self.columns_:
            role = self.roles_[col]
            series = frame[col] if col in frame.columns else pd.Series([None] * n, dtype=object)
            if role == "numeric":
                values = _as_float(series)
                values = np.where(np.isinf(values), np.nan, values)
                if onehot:
                    mean, std = self.scales_[col]
                    values = (np.where(np.isnan(values), self.medians_[col], values) - mean) / std
                dense.append(values[:, None])
            elif role == "datetime":
                parts = _datetime_parts(series)
                if onehot:
                    for i, pname in enumerate(f"{col}__{p}" for p in ("days", "year", "month", "day", "dow", "hour")):
                        mean, std = self.scales_[pname]
                        v = parts[:, i]
                        parts[:, i] = (np.where(np.isnan(v), self.medians_[pname], v) - mean) / std
                dense.append(parts)
            elif role == "categorical":
                cats = self.categories_[col]
                codes, missing = _category_codes(series, cats)
                if onehot:
                    rows = np.flatnonzero(codes >= 0)
                    if sparse:
                        dense.append(sp.csr_matrix(  # type: ignore[arg-type]
                            (np.ones(len(rows)), (rows, codes[rows])), shape=(n, len(cats))
                        ))
                    else:
                        block = np.zeros((n, len(cats)))
                        block[rows, codes[rows]] = 1.0
                        dense.append(block)
                else:
                    codes_f = np.where(codes >= 0, codes, len(cats)).astype(float)
                    codes_f[missing] = np.nan
                    dense.append(codes_f[:, None])
            elif col in self.text_models_:
                docs = pd.Series(_as_str(series)).fillna("").tolist()
                if onehot:
                    dense.append(self.text_models_[col].transform(docs))
                else:
                    vectorizer, svd = self.text_models_[col]
                    dense.append(svd.transform(vectorizer.transform(docs)))
        if onehot and self.indicators_:
            flags = [
                np.isnan(_as_float(frame[c])) if c in frame.columns else np.ones(n, dtype=bool)
                for c in self.indicators_
            ]
            dense.append(np.column_stack(flags).astype(float))
        blocks: list[Any] = dense
        if not blocks:
            return np.zeros((n, 0))
        if sparse:
            return sp.hstack([sp.csr_matrix(b) for b in blocks], format="csr")
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "columns_")
        return np.asarray(self.feature_names_out_, dtype=object)

    # Serialisers (skops above all) pay per Python object, and a TF-IDF vocabulary,
    # the categories and the output names can be tens of thousands of strings: the
    # state keeps them as numpy string arrays, one block each, restored on load.
    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = dict(super().__getstate__())  # for non-sklearn classes, the __dict__ itself
        names = state.get("feature_names_out_")
        if isinstance(names, list) and (packed := _string_array(names)) is not None:
            state["feature_names_out_"] = packed
        if isinstance(state.get("categories_"), dict):
            state["categories_"] = {col: _string_array(cats) if isinstance(cats, list) and _string_array(cats) is not None
                                    else cats for col, cats in state["categories_"].items()}
        models, vocabularies = {}, {}
        for col, model in (state.get("text_models_") or {}).items():
            vectorizer = model[0] if isinstance(model, list) else model
            if (packed := _vocabulary_terms(vectorizer)) is not None:
                vectorizer = copy.copy(vectorizer)
                del vectorizer.vocabulary_
                vocabularies[col] = packed
                model = [vectorizer, *model[1:]] if isinstance(model, list) else vectorizer
            models[col] = model
        if vocabularies:
            state["text_models_"], state["text_vocabularies_"] = models, vocabularies
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        vocabularies = state.pop("text_vocabularies_", {})
        if isinstance(state.get("feature_names_out_"), np.ndarray):
            state["feature_names_out_"] = state["feature_names_out_"].tolist()
        if isinstance(state.get("categories_"), dict):
            state["categories_"] = {col: cats.tolist() if isinstance(cats, np.ndarray) else cats
                                    for col, cats in state["categories_"].items()}
        super().__setstate__(state)
        for col, terms in vocabularies.items():
            model = self.text_models_[col]
            vectorizer = model[0] if isinstance(model, list) else model
            vectorizer.vocabulary_ = {term: i for i, term in enumerate(terms.tolist())}


def _vocabulary_terms(vectorizer: Any) -> np.ndarray | None:
    """A fitted vectorizer's terms in index order, when its indices are exactly 0..n-1."""
    vocabulary = getattr(vectorizer, "vocabulary_", None)
    if not isinstance(vocabulary, dict):
        return None
    terms = sorted(vocabulary, key=vocabulary.__getitem__)
    if [int(vocabulary[t]) for t in terms] != list(range(len(terms))):
        return None
    return _string_array(terms)


def _string_array(values: list[Any]) -> np.ndarray | None:
    """``values`` as a numpy string array, or None unless it holds exactly these strings."""
    if not all(isinstance(v, str) for v in values):
        return None
    array = np.asarray(values, dtype=str)
    return array if array.tolist() == values else None
