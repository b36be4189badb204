"""A single serialisable transformer that turns a raw table into model inputs.

Two encodings serve the model families:

- ``"ordinal"`` (gradient boosting, forests): numbers pass through with their
  missing values, categoricals become integer codes (the most frequent
  ``max_categories`` values; the rest share one code, unknown values are
  missing), datetimes become calendar parts, cyclical encodings, flags and
  the elapsed days (`_dates`), text becomes SVD components and statistics
  (`_text`). With the target, a text column also gets a cross-fitted linear
  model over its word and character TF-IDF, and a high-cardinality
  categorical its cross-fitted mean target (`_target`).
  ``categorical_indices_`` tells learners which output columns are codes.
- ``"onehot"`` (linear, kNN, naive Bayes): numbers are imputed with the
  median, scaled, and get missing-value indicators; categoricals are one-hot
  (frequent values only, so high cardinality stays small); text is word
  (1-2-gram) TF-IDF.
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
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from mlpilot.exceptions import DataError, InvalidParameterError
from mlpilot.features._dates import PARTS, date_parts, fit_date_parts
from mlpilot.features._parts import (
    LookupPart,
    MissingPart,
    NumberPart,
    OneHotPart,
    Part,
    PreprocessorParts,
)
from mlpilot.features._target import encode as target_encode
from mlpilot.features._target import encoding_tables, fit_target_encoder
from mlpilot.features._target import output_names as target_output_names
from mlpilot.features._text import SHORT_TEXT, TextEncoder, string_array, vocabulary_terms

_ROLES = ("numeric", "categorical", "datetime", "text")
#: The date parts of models saved before `fit_date_parts` (days since 1970 first).
_LEGACY_DATE_PARTS = ("days", "year", "month", "day", "dow", "hour")


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


def looks_like_titles(present: pd.Series, n_unique: int) -> bool:
    """Whether a categorical column's values are short free text (titles, names): mostly distinct, several words."""
    if n_unique < 0.5 * len(present):
        return False
    sample = present.iloc[:2000]
    return float(sample.str.count(r"\s+").mean()) + 1.0 >= 2.0


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


class TabularPreprocessor(TransformerMixin, BaseEstimator):
    """Turn a raw DataFrame into a numeric matrix for one model family.

    Given the target (``fit(X, y)``), the ordinal encoding adds features learned
    from it: a linear model over each text column's word and character TF-IDF,
    and the mean target of each categorical column with at least
    ``target_encoding_min`` distinct values. ``fit_transform(X, y)`` gives the
    training rows those features cross-fitted (each row's value from models
    that did not see its target), so use it, not ``fit(X, y).transform(X)``,
    for the rows a model is then trained on.

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
        TF-IDF vocabulary size per text column (and per analyzer).
    text_components : int
        SVD components per text column for the ordinal encoding.
    target_encoding_min : int
        Distinct values from which a categorical column is also target-encoded
        (ordinal encoding, with a target).
    random_state : int
        Seed of the SVD and of the cross-fitting folds.

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
        target_encoding_min: int = 20,
        random_state: int = 0,
    ) -> None:
        self.encoding = encoding
        self.roles = roles
        self.max_categories = max_categories
        self.text_features = text_features
        self.text_components = text_components
        self.target_encoding_min = target_encoding_min
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> TabularPreprocessor:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit on ``X`` (and ``y``) and encode ``X``, the target-based features cross-fitted."""
        frame = _to_frame(X)
        fitted = self._fit(frame, None if y is None else np.asarray(y))
        return self._transform(frame, fitted)

    def _fit(self, frame: pd.DataFrame, y: np.ndarray | None) -> dict[str, np.ndarray]:
        """Learn the state; return the cross-fitted training values of the target-based features."""
        if self.encoding not in ("ordinal", "onehot"):
            raise InvalidParameterError(
                f"The 'encoding' parameter of TabularPreprocessor must be 'ordinal' or 'onehot'. Got {self.encoding!r}."
            )
        if y is not None and len(y) != len(frame):
            raise DataError(f"The target has {len(y)} values for {len(frame)} rows of features.")
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
        self.date_parts_: dict[str, tuple[float, list[str]]] = {}
        self.target_encoders_: dict[str, Any] = {}
        self.feature_names_out_: list[str] = []
        self.categorical_indices_: list[int] = []
        self.decisions_: list[str] = []  # what was chosen from the data, with the numbers it rests on
        onehot = self.encoding == "onehot"
        supervised = y is not None and not onehot and len(np.unique(y)) > 1
        fitted: dict[str, np.ndarray] = {}
        names: list[str] = []
        for col in self.columns_:
            role = self.roles_[col]
            series = frame[col]
            if role == "numeric":
                values = _as_float(series)
                names.append(col)
                if onehot:
                    self._fit_scale(col, values)
                    if not np.all(np.isfinite(values)):
                        self.indicators_.append(col)
            elif role == "datetime":
                reference, parts = self.date_parts_[col] = fit_date_parts(series)
                constant = [p for p in PARTS if p not in parts]
                if constant:
                    self.decisions_.append(f"datetime {col!r}: {', '.join(constant)} never vary in the training rows, "
                                           "left out")
                part_names = [f"{col}__{p}" for p in parts]
                names.extend(part_names)
                if onehot:
                    matrix = date_parts(series, reference, parts)
                    for i, pname in enumerate(part_names):
                        self._fit_scale(pname, matrix[:, i])
            elif role == "categorical":
                strings = _as_str(series)
                present = pd.Series(strings).dropna()
                counts = present.value_counts(sort=True)
                keep = counts.index[: self.max_categories].tolist()
                # sorted for a stable order independent of ties in the counts
                self.categories_[col] = sorted(str(k) for k in keep)
                if onehot:
                    names.extend(f"{col}={c}" for c in self.categories_[col])
                    continue
                self.categorical_indices_.append(len(names))
                names.append(col)
                if supervised and len(counts) >= self.target_encoding_min:
                    assert y is not None
                    encoder, values = fit_target_encoder(strings, y, self.random_state)
                    self.target_encoders_[col] = encoder
                    names.extend(target_output_names(encoder, col))
                    self.decisions_.append(
                        f"categorical {col!r} has {len(counts)} values (>= {self.target_encoding_min}): "
                        "also target-encoded out of fold"
                    )
                    if looks_like_titles(present, len(counts)):  # short free text read as categories
                        self.decisions_.append(f"categorical {col!r} reads as short text (mostly distinct, "
                                               "several words): also given text features")
                        text = TextEncoder(max_features=self.text_features, n_components=self.text_components,
                                           random_state=self.random_state)
                        docs = pd.Series(strings).fillna("").tolist()
                        values = np.hstack([values, text.fit_transform(docs, y)])
                        self.text_models_[col] = text
                        names.extend(text.feature_names(col))
                    fitted[col] = values
            else:  # text
                docs = pd.Series(_as_str(series)).fillna("").tolist()
                if onehot:
                    vectorizer = TfidfVectorizer(ngram_range=(1, 2), max_features=self.text_features,
                                                 sublinear_tf=True, dtype=np.float64)
                    try:
                        vectorizer.fit(docs)
                    except ValueError:  # empty vocabulary
                        continue
                    self.text_models_[col] = vectorizer
                    names.extend(f"{col}__{w}" for w in vectorizer.get_feature_names_out())
                else:
                    text = TextEncoder(max_features=self.text_features, n_components=self.text_components,
                                       random_state=self.random_state)
                    try:
                        fitted[col] = text.fit_transform(docs, y if supervised else None)
                    except ValueError:  # empty vocabulary
                        continue
                    self.text_models_[col] = text
                    names.extend(text.feature_names(col))
                    if text.chars_ is not None:
                        self.decisions_.append(f"text {col!r} is short (mean <= {SHORT_TEXT} characters): "
                                               "character n-grams added to its linear model")
        if onehot:
            names.extend(f"{c}__missing" for c in self.indicators_)
        self.feature_names_out_ = names
        self.n_features_out_ = len(names)
        return fitted

    def _fit_scale(self, name: str, values: np.ndarray) -> None:
        finite = values[np.isfinite(values)]
        median = float(np.median(finite)) if finite.size else 0.0
        filled = np.where(np.isfinite(values), values, median)
        self.medians_[name] = median
        self.scales_[name] = [float(filled.mean()), float(filled.std()) or 1.0]

    def transform(self, X: Any) -> Any:
        check_is_fitted(self, "columns_")
        return self._transform(_to_frame(X), {})

    def _transform(self, frame: pd.DataFrame, fitted: dict[str, np.ndarray]) -> Any:
        """Encode ``frame``; ``fitted`` holds the training rows' cross-fitted blocks by column."""
        n = len(frame)
        onehot = self.encoding == "onehot"
        sparse = onehot and bool(self.text_models_)
        date_parts_ = getattr(self, "date_parts_", {})  # absent from models saved before it
        target_encoders = getattr(self, "target_encoders_", {})
        dense: list[Any] = []
        for col in self.columns_:
            role = self.roles_[col]
            series = frame[col] if col in frame.columns else pd.Series([None] * n, dtype=object)
            if role == "numeric":
                values = _as_float(series)
                values = np.where(np.isinf(values), np.nan, values)
                if onehot:
                    values = self._scaled(col, values)
                dense.append(values[:, None])
            elif role == "datetime":
                if col in date_parts_:
                    reference, parts = date_parts_[col]
                else:  # saved before the reference and the new parts
                    reference, parts = 0.0, list(_LEGACY_DATE_PARTS)
                matrix = date_parts(series, reference, parts)
                if onehot:
                    for i, part in enumerate(parts):
                        matrix[:, i] = self._scaled(f"{col}__{part}", matrix[:, i])
                dense.append(matrix)
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
                    if col in fitted:
                        dense.append(fitted[col])
                    elif col in target_encoders:
                        strings = _as_str(series)
                        dense.append(target_encode(target_encoders[col], strings))
                        if col in self.text_models_:
                            dense.append(self.text_models_[col].transform(pd.Series(strings).fillna("").tolist()))
            elif col in fitted:
                dense.append(fitted[col])
            elif col in self.text_models_:
                docs = pd.Series(_as_str(series)).fillna("").tolist()
                model = self.text_models_[col]
                if isinstance(model, list):  # saved before TextEncoder: [vectorizer, svd]
                    dense.append(model[1].transform(model[0].transform(docs)))
                else:
                    dense.append(model.transform(docs))
        if onehot and self.indicators_:
            flags = [
                np.isnan(_as_float(frame[c])) if c in frame.columns else np.ones(n, dtype=bool)
                for c in self.indicators_
            ]
            dense.append(np.column_stack(flags).astype(float))
        if not dense:
            return np.zeros((n, 0))
        if sparse:
            return sp.hstack([sp.csr_matrix(b) for b in dense], format="csr")
        return np.hstack(dense)

    def _scaled(self, name: str, values: np.ndarray) -> np.ndarray:
        mean, std = self.scales_[name]
        return (np.where(np.isnan(values), self.medians_[name], values) - mean) / std

    def compiled_parts(self) -> PreprocessorParts:
        """The output columns as plain parts, in output order, for the model runtime's compiler.

        This is the preprocessor's compiler hook (as `Learner.prediction_parts`
        is a learner's): the compiler builds its row-by-row form from these
        parts only. Date and text columns, and the text features of a
        categorical column, are not expressed as parts: ``unsupported`` names
        the first one (see `mlpilot.features._parts`).
        """
        check_is_fitted(self, "columns_")
        onehot = self.encoding == "onehot"
        target_encoders = getattr(self, "target_encoders_", {})  # absent from models saved before it
        parts: list[Part] = []
        for col in self.columns_:
            role = self.roles_[col]
            if role == "numeric":
                if onehot:
                    mean, std = self.scales_[col]
                    parts.append(NumberPart(col, fill=float(self.medians_[col]), centre=float(mean), scale=float(std)))
                else:
                    parts.append(NumberPart(col))
            elif role == "categorical":
                categories = list(self.categories_[col])
                if onehot:
                    parts.append(OneHotPart(col, {c: i for i, c in enumerate(categories)}, len(categories)))
                    continue
                if col in self.text_models_:
                    return PreprocessorParts(n_outputs=self.n_features_out_,
                                             unsupported=f"text features of categorical column {col!r}")
                codes = {c: float(i) for i, c in enumerate(categories)}
                parts.append(LookupPart(col, codes, missing=float("nan"), unseen=float(len(categories))))
                if col in target_encoders:
                    tables, missing, unseen = encoding_tables(target_encoders[col])
                    parts.extend(LookupPart(col, table, missing=m, unseen=u)
                                 for table, m, u in zip(tables, missing, unseen, strict=True))
            else:
                return PreprocessorParts(n_outputs=self.n_features_out_, unsupported=f"{role} column {col!r}")
        if onehot:
            parts.extend(MissingPart(c) for c in self.indicators_)
        return PreprocessorParts(parts, self.n_features_out_)

    def output_sources(self) -> list[str]:
        """The input column each output column of `transform` comes from, in output order.

        Explanations sum the contributions of one-hot columns, text components,
        date parts and target encodings back to the column they encode with it.
        """
        check_is_fitted(self, "columns_")
        onehot = self.encoding == "onehot"
        date_parts_ = getattr(self, "date_parts_", {})
        target_encoders = getattr(self, "target_encoders_", {})
        sources: list[str] = []
        for col in self.columns_:
            role, text = self.roles_[col], self.text_models_.get(col)
            if role == "numeric":
                width = 1
            elif role == "datetime":
                width = len(date_parts_[col][1]) if col in date_parts_ else len(_LEGACY_DATE_PARTS)
            elif role == "categorical" and onehot:
                width = len(self.categories_[col])
            elif role == "categorical":
                width = 1
                if col in target_encoders:
                    width += len(target_output_names(target_encoders[col], col))
                    width += _text_width(text, col) if text is not None else 0
            else:
                width = _text_width(text, col) if text is not None else 0
            sources.extend([col] * width)
        if onehot:
            sources.extend(self.indicators_)
        if len(sources) != self.n_features_out_:
            raise DataError(f"The preprocessor's {self.n_features_out_} output columns could not be traced back "
                            f"to its input columns ({len(sources)} traced); refit it with this mlpilot version.")
        return sources

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "columns_")
        return np.asarray(self.feature_names_out_, dtype=object)

    # Serialisers (skops above all) pay per Python object, and a TF-IDF vocabulary,
    # the categories and the output names can be tens of thousands of strings: the
    # state keeps them as numpy string arrays, one block each, restored on load.
    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = dict(super().__getstate__())  # for non-sklearn classes, the __dict__ itself
        names = state.get("feature_names_out_")
        if isinstance(names, list) and (packed := string_array(names)) is not None:
            state["feature_names_out_"] = packed
        if isinstance(state.get("categories_"), dict):
            state["categories_"] = {col: string_array(cats) if isinstance(cats, list) and string_array(cats) is not None
                                    else cats for col, cats in state["categories_"].items()}
        models, vocabularies = {}, {}
        for col, model in (state.get("text_models_") or {}).items():
            vectorizer = model[0] if isinstance(model, list) else model
            if (packed := vocabulary_terms(vectorizer)) is not None:
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



def _text_width(model: Any, column: str) -> int:
    """Output columns of one text column's fitted model (a TF-IDF vectorizer, a `TextEncoder` or a legacy pair)."""
    if isinstance(model, list):  # saved before TextEncoder: [vectorizer, svd]
        return int(model[1].n_components)
    if isinstance(model, TfidfVectorizer):
        return len(model.vocabulary_)
    return len(model.feature_names(column))
