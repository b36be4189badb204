"""The final fit on the whole training part, on the cluster, when it does not fit the driver.

The search ran on the driver's sample; its best boosted candidate's hyper-parameters
(XGBoost's as they are, LightGBM's, CatBoost's and scikit-learn's histogram boosting's
mapped to XGBoost's names; `FALLBACK` when no boosted candidate finished inside the
search's budget, as on a busy machine) are refitted with ``xgboost.spark`` on every training row:

1. the preprocessor (the ordinal encoding the ensemble's tree members use, else a new
   one fitted on the sample) turns each partition into the learner's matrix with
   ``mapInPandas``, so the learner sees the features the served pipeline produces;
2. ``SparkXGBClassifier``/``SparkXGBRegressor`` trains over the cluster's partitions, its
   rounds found by early stopping on a seeded 5% of the training rows (the search's rounds
   were found on the sample, under its deadline), the rounds past the best dropped;
3. its booster becomes an ordinary mlpilot XGBoost `Learner` behind that preprocessor,
   in a one-member `TabularEnsemble`: the registered model needs no Spark to serve;
4. a binary model's decision threshold is chosen again, by the run's rule, on this fit's
   own early-stopping rows (the sample ensemble's threshold was chosen for that ensemble's
   probabilities): the rows' probabilities are counted per class in bins of `THRESHOLD_BIN`
   on the cluster, and only the counts come to the driver.

Category codes are numeric features to the distributed learner (XGBoost's native
categorical splits are not used on the cluster).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot.spark._labels import class_codes, of_known_class
from mlpilot.spark._session import quiet, require_pyspark, spark_job

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: Families whose best candidate's hyper-parameters carry over to XGBoost.
BOOSTED = ("xgboost", "lightgbm", "catboost", "hist_gradient_boosting")
#: Hyper-parameter names of the boosted families, as XGBoost calls them (None: not carried over).
_RENAMES: dict[str, str | None] = {
    "num_leaves": "max_leaves", "max_leaf_nodes": "max_leaves", "min_child_samples": None,
    "min_samples_leaf": None, "feature_fraction": "colsample_bytree", "bagging_fraction": "subsample",
    "lambda_l2": "reg_lambda", "l2_regularization": "reg_lambda", "l2_leaf_reg": "reg_lambda",
    "lambda_l1": "reg_alpha", "depth": "max_depth", "iterations": "n_estimators", "max_iter": "n_estimators",
    "learning_rate": "learning_rate", "n_estimators": "n_estimators", "max_depth": "max_depth",
    "min_child_weight": "min_child_weight", "subsample": "subsample", "colsample_bytree": "colsample_bytree",
    "reg_lambda": "reg_lambda", "reg_alpha": "reg_alpha", "max_bin": "max_bin",
}
_DEFAULTS: dict[str, Any] = {"n_estimators": 300, "learning_rate": 0.05, "max_depth": 6}
#: The cluster's hyper-parameters when the search has no boosted candidate (none finished inside its budget):
#: XGBoost's depth, a slower rate than its 0.3, and rounds by early stopping up to `MIN_ROUNDS_CAP`.
FALLBACK: dict[str, Any] = {"learning_rate": 0.1, "max_depth": 6}
#: The cluster's fit stops when the held-out share of the training rows has not improved for this many rounds.
EARLY_STOPPING_ROUNDS = 20
#: Share of the training part the cluster's fit holds out for its early stopping (seeded).
VALIDATION_FRACTION = 0.05
#: The cluster's rounds cap: this many times the search's rounds, at least `MIN_ROUNDS_CAP`.
ROUNDS_FACTOR = 4
MIN_ROUNDS_CAP = 500
_VALIDATION = "__mlpilot_validation"
#: Width of the probability bins the cluster fit's threshold is chosen over (the driver sees at most 1/width bins
#: per class, whatever the rows).
THRESHOLD_BIN = 1e-4


def xgboost_params(family: str, params: dict[str, Any]) -> dict[str, Any]:
    """A boosted candidate's hyper-parameters under XGBoost's names; those without a counterpart are left out.

    Examples
    --------
    >>> xgboost_params("lightgbm", {"num_leaves": 31, "learning_rate": 0.1, "n_estimators": 120})
    {'n_estimators': 120, 'learning_rate': 0.1, 'max_depth': 0, 'max_leaves': 31, 'grow_policy': 'lossguide'}
    """
    out = dict(_DEFAULTS)
    for key, value in params.items():
        name = _RENAMES.get(key)
        if name is not None and value is not None:
            out[name] = value
    if "max_leaves" in out and family != "xgboost":  # leaf-wise growth, as LightGBM's trees grow
        out.setdefault("grow_policy", "lossguide")
        out["max_depth"] = 0 if "max_depth" not in params or params["max_depth"] in (None, -1) else out["max_depth"]
    return out


def best_boosted(search: Any) -> Any:
    """The search's best usable boosted candidate (by cross-validated score), or None."""
    boosted = [c for c in search.candidates if c.usable and c.family in BOOSTED]
    return max(boosted, key=lambda c: c.cv_mean, default=None)


def fit_on_cluster(train: DataFrame, sample: pd.DataFrame, outcome: Any, *, target: str, n_workers: int,
                   random_state: int) -> tuple[Any, dict[str, Any]]:
    """A one-member `TabularEnsemble` fitted with ``xgboost.spark`` on ``train``, and its decision record.

    ``sample`` is the driver's sample (it fits the preprocessor when the ensemble has
    no ordinal one). The hyper-parameters are the search's best boosted candidate's, or
    `FALLBACK` when it has none (the holdout then decides between this fit and the sample's).

    Raises
    ------
    SparkJobError
        When the transform or the distributed fit fails on an executor.
    """
    require_pyspark("The distributed final fit")
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from mlpilot.features import TabularPreprocessor
    from mlpilot.search import TabularEnsemble

    cand = best_boosted(outcome.search)
    model, features, task = outcome.model, list(outcome.features), outcome.task
    classes = list(outcome.encoding.classes) if task != "regression" else []

    def encoded(frame: pd.DataFrame) -> np.ndarray:
        if task != "regression":
            return class_codes(frame[target], classes)
        return np.asarray(pd.to_numeric(frame[target]), dtype=float)

    pre = next((p for p, _ in model.members_ if p.encoding == "ordinal"), None)
    if pre is None:  # no tree member: the ordinal encoding, fitted on the driver sample
        known = sample[sample[target].notna() & (task == "regression" or ~np.isnan(encoded(sample)))]
        pre = TabularPreprocessor(encoding="ordinal", roles=model.members_[0][0].roles, random_state=random_state)
        y = encoded(known)
        pre.fit(known[features], y.astype(np.int64) if task != "regression" else y)
    width = int(np.asarray(pre.transform(sample.head(1)[features])).shape[1])
    names = [f"f{i}" for i in range(width)]
    schema = T.StructType([T.StructField(n, T.DoubleType()) for n in [*names, "label"]])

    schema = schema.add(T.StructField(_VALIDATION, T.BooleanType()))

    def transform(batches: Any) -> Any:
        for batch in batches:
            Xt = np.asarray(pre.transform(batch[features]), dtype=float)
            out = pd.DataFrame(Xt, columns=names)
            out["label"] = encoded(batch)
            out[_VALIDATION] = batch[_VALIDATION].to_numpy(dtype=bool)
            yield out

    labelled = train.where(F.col(f"`{target}`").isNotNull()) if task == "regression" else (
        of_known_class(train, target, classes))
    # The search's rounds were found on the sample under its deadline (and a fold cut at the deadline says
    # nothing of how many rounds suit): the cluster's fit finds its own by early stopping on held-out rows of
    # the training part, up to a cap well above the search's.
    if cand is not None:
        params = xgboost_params(cand.family, cand.refit_params())
        searched_rounds: int | None = int(params["n_estimators"])
        params["n_estimators"] = max(ROUNDS_FACTOR * int(params["n_estimators"]), MIN_ROUNDS_CAP)
    else:
        params, searched_rounds = {**FALLBACK, "n_estimators": MIN_ROUNDS_CAP}, None
    rounds_cap = int(params["n_estimators"])
    from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

    cls = SparkXGBRegressor if task == "regression" else SparkXGBClassifier
    learner_spark = cls(features_col=names, label_col="label", num_workers=max(1, n_workers),
                        tree_method="hist", random_state=random_state, verbosity=0, verbose=False,
                        validation_indicator_col=_VALIDATION, early_stopping_rounds=EARLY_STOPPING_ROUNDS, **params)
    with spark_job("fitted the final model on the cluster (xgboost.spark)"), quiet():
        rows = labelled.select(*[F.col(f"`{c}`") for c in [*features, target]]).withColumn(
            _VALIDATION, F.rand(seed=random_state) < VALIDATION_FRACTION)
        booster = learner_spark.fit(rows.mapInPandas(transform, schema)).get_booster()
    best = booster.attr("best_iteration")
    if best is not None and int(best) + 1 < booster.num_boosted_rounds():  # the rounds past the best go
        booster = booster[: int(best) + 1]
    params["n_estimators"] = int(booster.num_boosted_rounds())
    threshold, threshold_record = model.threshold, None
    rule = (outcome.card.get("threshold") or {}).get("rule")
    if task == "binary" and model.threshold is not None and rule and not str(rule).startswith("fixed"):
        threshold, threshold_record = _validation_threshold(rows, pre, booster, features, target, classes, str(rule))
        threshold_record["sample_fit_threshold"] = model.threshold
    learner = _learner(booster, task, len(classes), params, tuple(pre.categorical_indices_), random_state)
    name = cand.name if cand is not None else "xgboost"
    full = TabularEnsemble(task=task, members=[(pre, learner)], weights=[1.0], names=[f"{name}_spark"],
                           classes=classes or None, feature_names=features, n_jobs=model.n_jobs,
                           threshold=threshold).fit()
    record = {"learner": "xgboost.spark " + cls.__name__, "from_candidate": cand.name if cand is not None else None,
              "family": cand.family if cand is not None else None,
              "params_from": ("the search's best boosted candidate" if cand is not None else
                              "FALLBACK: no boosted candidate finished inside the search's budget"),
              "params": params, "num_workers": max(1, n_workers), "rounds": learner.n_iterations_,
              "early_stopping": {"validation_fraction": VALIDATION_FRACTION, "patience": EARLY_STOPPING_ROUNDS,
                                 "rounds_cap": rounds_cap, "search_rounds": searched_rounds,
                                 "search_cut_by_deadline": bool(getattr(cand, "cut_by_deadline", False))}}
    if threshold_record is not None:
        record["threshold"] = threshold_record
    return full, record


def _validation_threshold(rows: DataFrame, pre: Any, booster: Any, features: list[str], target: str,
                          classes: list[Any], rule: str) -> tuple[float, dict[str, Any]]:
    """The threshold ``rule`` picks on the fit's early-stopping rows, from per-class counts of binned probabilities."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from mlpilot.tasks import ThresholdRule, choose_threshold

    def scores(batches: Any) -> Any:
        for batch in batches:
            p = booster.inplace_predict(np.asarray(pre.transform(batch[features]), dtype=float))
            yield pd.DataFrame({"y": class_codes(batch[target], classes),
                                "bin": np.floor(np.asarray(p, dtype=float) / THRESHOLD_BIN)})

    schema = T.StructType([T.StructField("y", T.DoubleType()), T.StructField("bin", T.DoubleType())])
    with spark_job("chose the cluster fit's decision threshold on its early-stopping rows"), quiet():
        counts = (rows.where(F.col(_VALIDATION)).select(*[F.col(f"`{c}`") for c in [*features, target]])
                  .mapInPandas(scores, schema).groupBy("y", "bin").count().toPandas())
    counts = counts.sort_values(["y", "bin"], kind="stable")  # the same rows give the same choice
    p = np.minimum((counts["bin"].to_numpy() + 0.5) * THRESHOLD_BIN, 1.0)
    choice = choose_threshold(counts["y"].to_numpy(dtype=np.int64), p, ThresholdRule.parse(rule),
                              sample_weight=counts["count"].to_numpy(dtype=float))
    n_rows = int(counts["count"].sum())
    return choice.threshold, {"value": choice.threshold, "rule": rule, "measure": choice.measure, "n_rows": n_rows,
                              "chosen_on": f"the cluster fit's {n_rows:,} early-stopping rows (probabilities in "
                                           f"bins of {THRESHOLD_BIN:g})", "at_threshold": choice.at_threshold,
                              "at_0.5": choice.at_half}


def _learner(booster: Any, task: str, n_classes: int, params: dict[str, Any], categorical: tuple[int, ...],
             random_state: int) -> Any:
    """An mlpilot XGBoost `Learner` around ``booster`` (its scikit-learn wrapper, as a local fit leaves it)."""
    import xgboost

    from mlpilot.search import Learner

    booster.set_attr(scikit_learn=None)  # xgboost.spark's own metadata; the plain wrapper reads the booster
    booster.feature_names, booster.feature_types = None, None  # it predicts the preprocessor's matrix, as a local fit
    estimator = xgboost.XGBRegressor() if task == "regression" else xgboost.XGBClassifier()
    estimator.load_model(bytearray(booster.save_raw("json")))
    learner = Learner(family="xgboost", task=task, params=params, categorical_indices=categorical,
                      n_classes=max(n_classes, 2), random_state=random_state, n_jobs=1, deterministic=True)
    learner.estimator_ = estimator
    if task != "regression":
        learner.xgb_classes_ = np.arange(n_classes)
    learner.n_iterations_ = int(booster.num_boosted_rounds())
    return learner


__all__ = ["BOOSTED", "FALLBACK", "THRESHOLD_BIN", "best_boosted", "fit_on_cluster", "xgboost_params"]
