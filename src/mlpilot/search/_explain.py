"""Per-row explanations of a `TabularEnsemble`: additive contributions per input column.

Each member explains itself in its own raw output space with the method its
library provides (LightGBM ``pred_contrib``, XGBoost ``pred_contribs``,
CatBoost ``ShapValues``, exact ``coef * x`` terms for linear models, Saabas path
attributions for scikit-learn forests and histogram gradient boosting, exact
per-feature log-likelihood terms for naive Bayes); the
contributions of its transformed features are summed back to the input column
they came from (one-hot columns, text components, date parts, target
encodings), which keeps them additive. The ensemble then combines its members
(see `explain_ensemble`). Families without such a method are refused with the
reason (`REFUSALS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mlpilot.exceptions import InvalidParameterError
from mlpilot.search._families import FAMILIES, _threads

#: Families whose members explain themselves exactly, and how.
METHODS = {
    "lightgbm": "lightgbm pred_contrib (TreeSHAP)",
    "xgboost": "xgboost pred_contribs (TreeSHAP)",
    "catboost": "catboost ShapValues (TreeSHAP)",
    "random_forest": "random forest path attribution (Saabas: each split's change in node value, averaged over trees)",
    "extra_trees": "extra trees path attribution (Saabas: each split's change in node value, averaged over trees)",
    "hist_gradient_boosting": "histogram gradient boosting path attribution (Saabas: each split's change in "
                              "node value, summed over trees; a node's value is its training rows' mean leaf value)",
    "linear": "linear terms coef * x (numeric columns standardised to their training mean)",
    "naive_bayes": "naive Bayes log-likelihood terms x * log P(feature | class) (exact: the class scores are their "
                   "sum)",
    "dummy": "constant model (every contribution is zero)",
}


@dataclass(frozen=True)
class Explanation:
    """Contributions of each input column to each row's output, additive with a base value.

    ``contributions`` has shape ``(n_rows, n_outputs, n_columns)``; ``base`` and
    ``output`` ``(n_rows, n_outputs)``: per row, ``base + contributions.sum(-1) ==
    output``. ``outputs`` names the outputs (one per class for multiclass; the
    positive class for binary; empty for regression). ``space`` is the unit of
    ``output`` (``log_odds``, ``raw_score`` per class, ``prediction``,
    ``probability``); ``exact`` is False when the split between columns is an
    approximation (the sum still holds).
    """

    contributions: np.ndarray
    base: np.ndarray
    output: np.ndarray
    columns: tuple[str, ...]
    outputs: tuple[str, ...]
    space: str
    method: str
    exact: bool

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per row (the shape of the API's ``explanations``).

        ``contributions`` maps column to value (multiclass: class to column to
        value); ``base_value`` and ``output`` are numbers (multiclass: by class).
        """
        multi = len(self.outputs) > 1
        answer = []
        for i in range(self.output.shape[0]):
            if multi:
                contributions: Any = {k: dict(zip(self.columns, map(float, self.contributions[i, j]), strict=True))
                                      for j, k in enumerate(self.outputs)}
                base: Any = dict(zip(self.outputs, map(float, self.base[i]), strict=True))
                output: Any = dict(zip(self.outputs, map(float, self.output[i]), strict=True))
            else:
                contributions = dict(zip(self.columns, map(float, self.contributions[i, 0]), strict=True))
                base, output = float(self.base[i, 0]), float(self.output[i, 0])
            row = {"contributions": contributions, "base_value": base, "output": output, "space": self.space,
                   "method": self.method, "exact": self.exact}
            if len(self.outputs) == 1:
                row["class"] = self.outputs[0]
            answer.append(row)
        return answer

    def frame(self) -> pd.DataFrame:
        """The contributions as a DataFrame, one row per input row (binary and regression) or per (row, class)."""
        n, k, c = self.contributions.shape
        out = pd.DataFrame(self.contributions.reshape(n * k, c), columns=list(self.columns))
        if len(self.outputs) > 1:
            out.insert(0, "class", list(self.outputs) * n)
            out.insert(0, "row", np.repeat(np.arange(n), k))
        out["base_value"] = self.base.reshape(-1)
        out["output"] = self.output.reshape(-1)
        return out


@dataclass(frozen=True)
class _Member:
    """One member's explanation in its raw space: arrays ``(n, k, c)``, ``(n, k)``, ``(n, k)``."""

    phi: np.ndarray
    base: np.ndarray
    raw: np.ndarray
    link: str  # how raw maps to what the ensemble averages: identity, logistic or softmax


#: Why a family has no per-row explanation (families not named: no method known here).
REFUSALS = {
    "knn": "a k-nearest-neighbours prediction is a distance-weighted vote of the training rows closest to the row; "
           "changing one column can change which rows those are, so the prediction is not a sum of per-column "
           "terms and any split between columns would be made up",
    "mlp": "a neural network's output is not a sum of per-column terms; an additive split would need sampling "
           "approximations (KernelSHAP), which mlpilot does not run at prediction time",
}


def unsupported(family: str) -> InvalidParameterError:
    """The refusal for a family with no per-row explanation method, with the reason."""
    reason = REFUSALS.get(family, "neither mlpilot nor a library it depends on computes additive per-row "
                                  "contributions for it")
    return InvalidParameterError(
        f"Explanations are not available for the {family!r} model family: {reason}. Explainable families: "
        f"{', '.join(METHODS)}; train with families limited to them (e.g. --families lightgbm,linear) "
        "to explain predictions."
    )


def column_map(sources: list[str], columns: tuple[str, ...]) -> sp.csr_matrix:
    """A ``(n_features, n_columns)`` 0/1 matrix summing transformed features into their input column."""
    index = {c: i for i, c in enumerate(columns)}
    rows = [j for j, s in enumerate(sources) if s in index]
    cols = [index[sources[j]] for j in rows]
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sources), len(columns)))


def _split(values: np.ndarray, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A library's ``(n, [k,] p + 1)`` contributions as ``(n, k, p)`` features and ``(n, k)`` base values."""
    values = np.asarray(values, dtype=float).reshape(n, k, -1)
    return values[:, :, :-1], values[:, :, -1]


def _outputs(learner: Any) -> int:
    return learner.n_classes if learner.task == "multiclass" else 1


def _link(learner: Any) -> str:
    return {"binary": "logistic", "multiclass": "softmax"}.get(learner.task, "identity")


def _tree_member(learner: Any, X: Any, mapping: sp.csr_matrix) -> _Member:
    model, n, k = learner.estimator_, X.shape[0], _outputs(learner)
    if learner.family == "lightgbm":
        threads = {"num_threads": _threads(learner.n_jobs, n * model.booster_.num_trees())}
        contrib = model.predict(X, pred_contrib=True, **threads)
        raw = model.predict(X, raw_score=True, **threads)
    elif learner.family == "catboost":
        import catboost

        frame = FAMILIES["catboost"].library_input(learner, X)
        pool = catboost.Pool(frame, cat_features=[str(i) for i in learner.categorical_indices])
        contrib = model.get_feature_importance(pool, type="ShapValues")
        raw = model.predict(frame, prediction_type="RawFormulaVal")
    else:  # xgboost
        import xgboost

        booster = model.get_booster()
        matrix = xgboost.DMatrix(X, feature_types=booster.feature_types, enable_categorical=True)
        best = getattr(model, "best_iteration", None)
        rounds = (0, best + 1) if best is not None else (0, 0)
        contrib = booster.predict(matrix, pred_contribs=True, iteration_range=rounds)
        raw = booster.predict(matrix, output_margin=True, iteration_range=rounds)
    if sp.issparse(contrib) or isinstance(contrib, list):
        raise InvalidParameterError(f"The {learner.family} member was given sparse input; it cannot be explained.")
    features, base = _split(contrib, n, k)
    phi = (features.reshape(n * k, -1) @ mapping).reshape(n, k, -1)
    return _Member(phi, base, np.asarray(raw, dtype=float).reshape(n, k), _link(learner))


def _tree_values(tree: Any, classifier: bool) -> np.ndarray:
    """Each node's output ``(nodes, k)``: class fractions (classifiers, as ``predict_proba``) or the mean."""
    value = np.asarray(tree.tree_.value, dtype=float)
    if not classifier:
        return value[:, 0, :1]
    return value[:, 0, :] / value[:, 0, :].sum(axis=1, keepdims=True)


def path_attributions(forest: Any, X: Any, classifier: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact additive contributions of a fitted scikit-learn forest (Saabas path attribution).

    Along each row's path through a tree, every split moves the node value (class
    fractions, or the mean target) from the parent's to the child's; that change is
    credited to the feature the parent splits on. Per tree the root value plus the
    changes is the leaf value, so averaged over the trees the base value plus the
    contributions is the forest's ``predict_proba`` (every class) or ``predict``.

    Returns contributions ``(n, k, p)`` over the forest's input features, base values
    and outputs ``(n, k)``.
    """
    matrix = np.ascontiguousarray(X.toarray() if sp.issparse(X) else X, dtype=np.float32)  # the trees' dtype
    n, p = matrix.shape
    trees = forest.estimators_
    k = int(forest.n_classes_) if classifier else 1
    phi = np.zeros((n, k, p))
    base = np.zeros((n, k))
    for tree in trees:
        values = _tree_values(tree, classifier)
        inner = tree.tree_
        parent = np.full(inner.node_count, -1)
        for side in (inner.children_left, inner.children_right):
            has = side >= 0
            parent[side[has]] = np.flatnonzero(has)
        child = np.flatnonzero(parent >= 0)
        change = values[child] - values[parent[child]]  # (children, k)
        split_on = inner.feature[parent[child]]
        path = tree.decision_path(matrix).tocsr().astype(float)  # (n, nodes)
        for j in range(k):
            credit = sp.csr_matrix((change[:, j], (child, split_on)), shape=(inner.node_count, p))
            phi[:, j, :] += (path @ credit).toarray()
        base += values[0]
    phi /= len(trees)
    base /= len(trees)
    return phi, base, base + phi.sum(axis=2)


def _forest_member(learner: Any, X: Any, mapping: sp.csr_matrix) -> _Member:
    phi, base, raw = path_attributions(learner.estimator_, X, learner.classifier)
    if learner.task == "binary":  # the positive class's probability, as the ensemble reports it
        phi, base, raw = phi[:, 1:], base[:, 1:], raw[:, 1:]
    n, k, _ = phi.shape
    return _Member((phi.reshape(n * k, -1) @ mapping).reshape(n, k, -1), base, raw, "identity")


def _hgb_leaf_credit(nodes: np.ndarray, p: int) -> tuple[np.ndarray, float]:
    """Per node of one histogram-boosting tree: the credit per feature on the path from the root, and the root value.

    A leaf's value is what the tree adds; an inner node's is the mean leaf value of
    its training rows (the counts), so the root value plus the path's credits is the leaf value.
    """
    count = np.maximum(nodes["count"].astype(float), 1.0)
    value = nodes["value"].astype(float)
    left, right = nodes["left"].astype(int), nodes["right"].astype(int)
    inner = np.flatnonzero(~nodes["is_leaf"].astype(bool))
    for node in inner[::-1]:  # children follow their parent (depth-first order): bottom-up
        a, b = left[node], right[node]
        value[node] = (count[a] * value[a] + count[b] * value[b]) / (count[a] + count[b])
    credit = np.zeros((len(nodes), p))
    for node in inner:  # top-down
        for child in (left[node], right[node]):
            credit[child] = credit[node]
            credit[child, int(nodes["feature_idx"][node])] += value[child] - value[node]
    return credit, float(value[0])


def hist_boosting_attributions(model: Any, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact additive contributions of a fitted scikit-learn histogram gradient boosting model (Saabas).

    Each tree's leaf for a row is found by scikit-learn's own traversal (a copy of the
    tree whose leaves hold their index), so missing values and category splits go
    where they go when predicting (after the model's own re-coding of categories); the
    path's changes in node value are credited to the features split on
    (`_hgb_leaf_credit`). Base (the baseline plus every root value) plus contributions
    is the model's raw output (``decision_function``): log-odds (binary), class scores
    (multiclass) or the prediction (regression).

    Returns contributions ``(n, k, p)``, base values and raw outputs ``(n, k)``.
    """
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    matrix = np.ascontiguousarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
    n, p = matrix.shape
    try:
        predictors, mapper = model._predictors, model._bin_mapper
        baseline = np.asarray(model._baseline_prediction, dtype=float).reshape(-1)
    except AttributeError as exc:  # scikit-learn's internals moved
        raise InvalidParameterError(f"This scikit-learn's histogram gradient boosting cannot be explained ({exc}).") \
            from None
    known, index = mapper.make_known_categories_bitsets()
    order = np.arange(p)  # the trees' feature j is input column order[j]
    if getattr(model, "_preprocessor", None) is not None:  # categories re-coded, and put first
        pre = model._preprocessor
        for name, _, selected in pre.transformers_:
            columns = np.arange(p)[np.asarray(selected)] if len(np.atleast_1d(selected)) else []
            order[pre.output_indices_[name]] = columns
        matrix = np.ascontiguousarray(pre.transform(matrix), dtype=np.float64)
    k = len(baseline)
    phi = np.zeros((n, k, p))
    base = np.broadcast_to(baseline, (n, k)).copy()
    for iteration in predictors:
        for j, tree in enumerate(iteration):
            credit, root = _hgb_leaf_credit(tree.nodes, p)
            nodes = tree.nodes.copy()
            nodes["value"] = np.arange(len(nodes))
            leaves = TreePredictor(nodes, tree.binned_left_cat_bitsets, tree.raw_left_cat_bitsets).predict(
                matrix, known, index, 1).astype(int)
            phi[:, j, order] += credit[leaves]
            base[:, j] += root
    return phi, base, base + phi.sum(axis=2)


def _hgb_member(learner: Any, X: Any, mapping: sp.csr_matrix) -> _Member:
    phi, base, raw = hist_boosting_attributions(learner.estimator_, X)
    n, k, _ = phi.shape
    return _Member((phi.reshape(n * k, -1) @ mapping).reshape(n, k, -1), base, raw, _link(learner))


def _naive_bayes_member(learner: Any, X: Any, mapping: sp.csr_matrix) -> _Member:
    """ComplementNB's class scores are ``X @ feature_log_prob_.T``: exact terms per feature, no base.

    Binary: the log-odds, the positive class's terms less the negative's.
    """
    log_prob = np.asarray(learner.estimator_.feature_log_prob_, dtype=float)
    coef = log_prob[1:] - log_prob[:1] if learner.task == "binary" else log_prob
    return _Member(*additive_terms(coef, np.zeros(len(coef)), X, mapping), _link(learner))


def linear_terms(model: Any, X: Any, mapping: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact terms ``coef * x`` of a fitted linear model on its input ``X``, summed by ``mapping``.

    Returns contributions ``(n, k, c)``, base values (the intercept) and the
    decision function ``(n, k)``: one output for binary and regression, one per
    class for multiclass.
    """
    return additive_terms(model.coef_, model.intercept_, X, mapping)


def additive_terms(coef: Any, intercept: Any, X: Any,
                   mapping: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Terms ``coef * x`` per output (rows of ``coef``) summed by ``mapping``, the intercept as base (`linear_terms`)."""
    n = X.shape[0]
    coef = np.atleast_2d(np.asarray(coef, dtype=float))
    intercept = np.atleast_1d(np.asarray(intercept, dtype=float))
    if sp.issparse(X):
        matrix = sp.csr_matrix(X)
        phi = np.stack([sp.csr_matrix(matrix.multiply(c) @ mapping).toarray() for c in coef], axis=1)
    else:
        dense = np.asarray(X, dtype=float)
        phi = np.stack([np.asarray((dense * c) @ mapping) for c in coef], axis=1)
    base = np.broadcast_to(intercept, (n, len(intercept))).copy()
    return phi, base, base + phi.sum(axis=2)


def _linear_member(learner: Any, X: Any, mapping: sp.csr_matrix) -> _Member:
    return _Member(*linear_terms(learner.estimator_, X, mapping), _link(learner))


def _dummy_member(learner: Any, X: Any, mapping: sp.csr_matrix) -> _Member:
    values = learner.predict_values(X)
    raw = values.reshape(len(values), -1)
    if learner.task == "binary":
        raw = raw[:, 1:]
    return _Member(np.zeros((*raw.shape, mapping.shape[1])), raw, raw, "identity")


def explain_member(learner: Any, X: Any, mapping: sp.csr_matrix) -> _Member:
    """One fitted `Learner`'s contributions on its preprocessed input ``X``, summed by ``mapping``."""
    family = learner.family
    if family not in METHODS:
        raise unsupported(family)
    if learner.task != "regression" and family != "dummy":
        classes = learner.xgb_classes_ if family == "xgboost" else learner.estimator_.classes_
        if len(classes) != learner.n_classes:
            raise InvalidParameterError(
                f"The {family} member was fitted on {len(classes)} of the {learner.n_classes} classes; "
                "its raw scores do not cover every class, so it cannot be explained."
            )
    if family == "linear":
        return _linear_member(learner, X, mapping)
    if family == "dummy":
        return _dummy_member(learner, X, mapping)
    if family in ("random_forest", "extra_trees"):
        return _forest_member(learner, X, mapping)
    if family == "hist_gradient_boosting":
        return _hgb_member(learner, X, mapping)
    if family == "naive_bayes":
        return _naive_bayes_member(learner, X, mapping)
    return _tree_member(learner, X, mapping)


def _probabilities(raw: np.ndarray, link: str) -> np.ndarray:
    if link == "logistic":
        return 1.0 / (1.0 + np.exp(-raw))
    if link == "softmax":
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return raw


def _in_probability(member: _Member) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A member's contributions rescaled so they sum to its change in probability from its base.

    Each output's contributions are multiplied by ``(p - q) / (f - b)``: ``p`` and
    ``q`` the probabilities of the raw output ``f`` and of the base value ``b``.
    Where ``f == b`` the change is shared out equally between the columns.
    """
    p, q = _probabilities(member.raw, member.link), _probabilities(member.base, member.link)
    delta = member.raw - member.base
    flat = np.abs(delta) < 1e-12
    ratio = np.where(flat, 0.0, (p - q) / np.where(flat, 1.0, delta))
    phi = member.phi * ratio[:, :, None]
    c = member.phi.shape[2]
    phi += np.where(flat, (p - q) / max(c, 1), 0.0)[:, :, None]
    return phi, q, p


def explain_ensemble(model: Any, frame: pd.DataFrame) -> Explanation:
    """Explain ``model`` (a fitted `TabularEnsemble`) on the raw rows of ``frame``.

    Regression ensembles, and ensembles of one member, give each member's exact
    contributions weighted by its ensemble weight: they add up, with the base
    value, to the prediction (regression) or to the member's log-odds (binary) or
    raw class scores (multiclass), of which the ensemble's probabilities are the
    logistic or softmax. Classifier ensembles of several members average
    probabilities, not raw scores: each member's contributions are rescaled to
    its change in probability from its base (`_in_probability`) and weighted;
    they add up exactly to the ensemble's probabilities, but the split between
    columns is an approximation (``exact`` False).
    """
    columns = tuple(str(c) for c in model.feature_names_in_)
    active = [(pre, learner, float(w)) for (pre, learner), w in zip(model.members_, model.weights_, strict=True)
              if w > 0]
    for _, learner, _ in active:
        if learner.family not in METHODS:
            raise unsupported(learner.family)
    transformed: dict[int, Any] = {}
    members: list[tuple[_Member, float, str]] = []
    for pre, learner, weight in active:
        if id(pre) not in transformed:
            transformed[id(pre)] = (pre.transform(frame), column_map(pre.output_sources(), columns))
        X, mapping = transformed[id(pre)]
        members.append((explain_member(learner, X, mapping), weight, learner.family))
    task = model.task
    if task == "regression":
        outputs: tuple[str, ...] = ()
    elif task == "binary":
        outputs = (str(model.classes_[1]),)
    else:
        outputs = tuple(str(c) for c in model.classes_)
    methods = "; ".join(dict.fromkeys(METHODS[f] for _, _, f in members))
    if task == "regression" or len(members) == 1:
        phi = sum(w * m.phi for m, w, _ in members)
        base = sum(w * m.base for m, w, _ in members)
        raw = sum(w * m.raw for m, w, _ in members)
        link = members[0][0].link
        space = {"identity": "prediction" if task == "regression" else "probability", "logistic": "log_odds",
                 "softmax": "raw_score"}[link]
        weighted = "" if len(members) == 1 else " weighted by ensemble weight"
        return Explanation(np.asarray(phi), np.asarray(base), np.asarray(raw), columns, outputs, space,
                           methods + weighted, True)
    phi_p = np.zeros_like(members[0][0].phi)
    base_p = np.zeros_like(members[0][0].base)
    out_p = np.zeros_like(members[0][0].raw)
    for member, weight, _ in members:
        phi, q, p = _in_probability(member)
        phi_p += weight * phi
        base_p += weight * q
        out_p += weight * p
    method = (f"{methods}; each member's contributions rescaled to its probability change from its base, "
              "weighted by ensemble weight (approximate)")
    return Explanation(phi_p, base_p, out_p, columns, outputs, "probability", method, False)


__all__ = ["METHODS", "REFUSALS", "Explanation", "additive_terms", "column_map", "explain_ensemble",
           "explain_member", "hist_boosting_attributions", "linear_terms", "path_attributions", "unsupported"]
