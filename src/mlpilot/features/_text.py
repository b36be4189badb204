"""Features of one free-text column for the tree families.

- a linear model over word (1-2-gram) TF-IDF, and character (2-4-gram) TF-IDF
  for short documents (titles, messages: `SHORT_TEXT`), whose
  cross-fitted predictions are features (`_supervised.cross_fit`: a training
  row's value comes from a model that never saw that row's target);
- SVD components of the word TF-IDF;
- text statistics: length, words, and the shares of digits, capitals and
  punctuation among the characters.

The linear model needs the target; without one (``fit(docs)``) only the SVD
components and the statistics are made.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from mlpilot.features._supervised import cross_fit, target_type

STATISTICS = ("length", "words", "digits", "capitals", "punctuation")
#: Inverse regularisation of the stacked logistic regression (ridge alpha is its inverse).
LINEAR_C = 1.0
#: Mean characters per document up to which character n-grams are added (titles, messages):
#: longer documents have words enough, and their character n-grams cost more than they add.
SHORT_TEXT = 200


def text_statistics(docs: list[str]) -> np.ndarray:
    """Per document: characters, words, and the shares of digits, capitals and punctuation."""
    series = pd.Series(docs, dtype=object).astype(str)
    length = series.str.len().to_numpy(dtype=float)
    share = np.maximum(length, 1.0)
    columns = [
        length,
        series.str.count(r"\S+").to_numpy(dtype=float),
        series.str.count(r"\d").to_numpy(dtype=float) / share,
        series.str.count(r"[A-Z]").to_numpy(dtype=float) / share,
        series.str.count(r"[^\w\s]").to_numpy(dtype=float) / share,
    ]
    return np.column_stack(columns)


def _linear_model(kind: str, random_state: int) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier

    if kind == "continuous":
        return Ridge(alpha=1.0 / LINEAR_C)
    # the dual problem: far faster when the n-grams outnumber the rows, as they do
    binary = LogisticRegression(C=LINEAR_C, solver="liblinear", dual=True, max_iter=1000, random_state=random_state)
    return binary if kind == "binary" else OneVsRestClassifier(binary)


def _linear_values(model: Any, matrix: Any, kind: str, classes: np.ndarray) -> np.ndarray:
    """The model's output as features: a logit (binary), one per class (one-vs-rest), or the value."""
    if kind == "continuous":
        return np.asarray(model.predict(matrix), dtype=float)[:, None]
    if len(model.classes_) < 2:
        return np.zeros((matrix.shape[0], 1 if kind == "binary" else len(classes)))
    values = np.asarray(model.decision_function(matrix), dtype=float)
    if kind == "binary":
        return values[:, None]
    out = np.full((matrix.shape[0], len(classes)), -10.0)  # a class absent from the fold: never predicted
    out[:, np.searchsorted(classes, model.classes_)] = values.reshape(matrix.shape[0], -1)
    return out


def _short(docs: list[str]) -> bool:
    return bool(docs) and sum(map(len, docs)) / len(docs) <= SHORT_TEXT


class TextEncoder:
    """Fitted features of one text column (see the module docstring).

    Parameters
    ----------
    max_features : int
        Vocabulary size of each TF-IDF (words, characters).
    n_components : int
        SVD components of the word TF-IDF.
    random_state : int
    """

    def __init__(self, *, max_features: int = 20000, n_components: int = 30, random_state: int = 0) -> None:
        self.max_features = max_features
        self.n_components = n_components
        self.random_state = random_state

    def fit_transform(self, docs: list[str], y: np.ndarray | None = None) -> np.ndarray:
        """Fit on ``docs`` (and ``y``); the training rows' features, the linear ones cross-fitted.

        Raises ``ValueError`` when the documents hold no word at all.
        """
        self.words_ = TfidfVectorizer(ngram_range=(1, 2), max_features=self.max_features, sublinear_tf=True,
                                      dtype=np.float64)
        words = self.words_.fit_transform(docs)  # ValueError: empty vocabulary
        self.svd_: TruncatedSVD | None = None
        blocks: list[np.ndarray] = []
        k = min(self.n_components, words.shape[1] - 1, words.shape[0] - 1)
        if k >= 1:
            self.svd_ = TruncatedSVD(n_components=k, n_iter=2, random_state=self.random_state)
            blocks.append(self.svd_.fit_transform(words))
        self.chars_: TfidfVectorizer | None = None
        self.linear_: Any = None
        self.kind_: str | None = None
        self.classes_ = np.zeros(0)
        if y is not None and len(np.unique(y)) > 1:
            y = np.asarray(y)
            matrix = words
            if _short(docs):
                self.chars_ = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2,
                                              max_features=self.max_features, sublinear_tf=True, dtype=np.float64)
                try:
                    matrix = sp.hstack([words, self.chars_.fit_transform(docs)], format="csr")
                except ValueError:  # no character n-gram in two documents
                    self.chars_ = None
            kind = self.kind_ = target_type(y)
            self.classes_ = np.unique(y) if kind != "continuous" else np.zeros(0)

            def fit_predict(train_rows: np.ndarray, predict_rows: np.ndarray) -> np.ndarray:
                model = _linear_model(kind, self.random_state).fit(matrix[train_rows], y[train_rows])
                return _linear_values(model, matrix[predict_rows], kind, self.classes_)

            blocks.insert(0, cross_fit(fit_predict, y, kind, self.random_state))
            self.linear_ = _linear_model(kind, self.random_state).fit(matrix, y)
        blocks.append(text_statistics(docs))
        return np.hstack(blocks)

    def transform(self, docs: list[str]) -> np.ndarray:
        words = self.words_.transform(docs)
        blocks: list[np.ndarray] = []
        if self.linear_ is not None and self.kind_ is not None:
            matrix = words if self.chars_ is None else sp.hstack([words, self.chars_.transform(docs)], format="csr")
            blocks.append(_linear_values(self.linear_, matrix, self.kind_, self.classes_))
        if self.svd_ is not None:
            blocks.append(self.svd_.transform(words))
        blocks.append(text_statistics(docs))
        return np.hstack(blocks)

    def feature_names(self, column: str) -> list[str]:
        """Output names, in output order, prefixed by ``column``."""
        names: list[str] = []
        if self.linear_ is not None:
            if self.kind_ == "multiclass":  # one-vs-rest decision values
                names.extend(f"{column}__linear_{c}" for c in self.classes_.tolist())
            else:
                names.append(f"{column}__linear")
        if self.svd_ is not None:
            names.extend(f"{column}__svd{i}" for i in range(self.svd_.n_components))
        names.extend(f"{column}__{s}" for s in STATISTICS)
        return names

    # vocabularies as numpy string arrays: serialisers pay per Python object
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for attr in ("words_", "chars_"):
            vectorizer = state.get(attr)
            if vectorizer is not None and (packed := vocabulary_terms(vectorizer)) is not None:
                vectorizer = copy.copy(vectorizer)
                del vectorizer.vocabulary_
                state[attr] = vectorizer
                state[f"{attr}terms"] = packed
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        for attr in ("words_", "chars_"):
            terms = state.pop(f"{attr}terms", None)
            if terms is not None:
                state[attr].vocabulary_ = {term: i for i, term in enumerate(terms.tolist())}
        self.__dict__.update(state)


def vocabulary_terms(vectorizer: Any) -> np.ndarray | None:
    """A fitted vectorizer's terms in index order, when its indices are exactly 0..n-1."""
    vocabulary = getattr(vectorizer, "vocabulary_", None)
    if not isinstance(vocabulary, dict):
        return None
    terms = sorted(vocabulary, key=vocabulary.__getitem__)
    if [int(vocabulary[t]) for t in terms] != list(range(len(terms))):
        return None
    return string_array(terms)


def string_array(values: list[Any]) -> np.ndarray | None:
    """``values`` as a numpy string array, or None unless it holds exactly these strings."""
    if not all(isinstance(v, str) for v in values):
        return None
    array = np.asarray(values, dtype=str)
    return array if array.tolist() == values else None
