"""Full-ranking evaluation on the executors: each held-out user's top-k over the whole catalogue.

What costs in a full-ranking evaluation is the ranking: every evaluated user
against every item (a users x items block of scores), then the ``k`` best with
the user's training items excluded. `evaluate_on_cluster` runs that on Spark:

- the item side of each model is broadcast once (a copy of the model without
  its user factors and training matrix: the item factors of a factor model, the
  popularity vector of most popular);
- the users' side is a DataFrame of one row per evaluated user (its batch, its
  position, its training items, its factors), grouped by batch on the
  executors; each batch is ranked by the local code (the model's own ``score``
  and `mlpilot.recommend._metrics.top_k`) in ``applyInPandas``;
- only the top-k item indices come back (users x k integers); the driver
  computes the metrics from them with the local code (``per_user_metrics``,
  ``coverage``, ``popularity_bias``).

The batches are `evaluate_scores`'s (2,048 users in order), so each user's
scores are computed from the same arrays as on the driver and the evaluation,
its intervals and the paired tests equal `evaluate_models`'s on the same
factors (tested). `evaluate_ranking` keeps the driver for small problems
(evaluated users x catalogue items up to `CLUSTER_CELLS`), where a Spark job
costs more than it saves, and says which ran and why.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mlpilot.recommend._data import Interactions
from mlpilot.recommend._fit import evaluate_models
from mlpilot.recommend._inputs import seen_matrix
from mlpilot.recommend._metrics import (
    Evaluation,
    coverage,
    per_user_metrics,
    popularity_bias,
    top_k,
)
from mlpilot.recommend._models import ALS, BaseRecommender, MostPopular
from mlpilot.spark._session import SparkJobError, quiet, require_pyspark, spark_job

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Above this many scores (evaluated users x catalogue items) the ranking runs on the cluster; at or below it,
#: on the driver (MovieLens 100k's 671 x 9,066 = 6.1e6 cells rank in well under a second there).
CLUSTER_CELLS = 50_000_000
#: `evaluate_scores`'s batch: the same users scored together, so the same arrays reach the same BLAS call.
BATCH_USERS = 2048
#: A batch's score block stays under this many cells (a catalogue past ~120,000 items gets smaller batches).
_MAX_BATCH_CELLS = 2048 * 120_000


def ranking_place(n_users: int, n_items: int, models: dict[str, BaseRecommender]) -> tuple[str, str]:
    """Where the evaluation's ranking runs (``"cluster"`` or ``"driver"``) and why, in words."""
    cells = n_users * n_items
    unsupported = sorted(name for name, model in models.items() if type(model) not in (ALS, MostPopular))
    if unsupported:
        return "driver", f"the cluster ranks only ALS factors and most popular, not {', '.join(unsupported)}"
    if cells <= CLUSTER_CELLS:
        return "driver", (f"{n_users:,} users x {n_items:,} items = {cells:,} scores, at most {CLUSTER_CELLS:,}: "
                          "a Spark job would cost more than the ranking")
    return "cluster", (f"{n_users:,} users x {n_items:,} items = {cells:,} scores, over {CLUSTER_CELLS:,}: "
                       "item side broadcast, users' batches ranked on the executors")


def evaluate_ranking(spark: SparkSession, models: dict[str, BaseRecommender], train: Interactions,
                     test: Interactions, *, k: int) -> tuple[dict[str, Evaluation], dict[str, Any]]:
    """`evaluate_models`'s evaluations (binary weighting), ranked on the cluster or the driver (`ranking_place`).

    Returns the evaluations and the record of where the ranking ran: ``{"where", "why", "users", "items"}``.
    """
    relevant = test.matrix(positives_only=True)
    n_users = int((np.diff(relevant.indptr) > 0).sum())
    where, why = ranking_place(n_users, relevant.shape[1], models)
    record = {"where": where, "why": why, "users": n_users, "items": int(relevant.shape[1])}
    if where == "driver":
        return evaluate_models(models, train, test, weighting="binary", k=k), record
    return evaluate_on_cluster(spark, models, train, test, k=k), record


def _light(model: BaseRecommender) -> BaseRecommender:
    """``model`` without what the ranking of given users does not read: the training matrix, the user factors."""
    light = copy.copy(model)
    light.X_ = None
    if isinstance(model, ALS):
        light.user_factors_ = np.zeros((0, model.item_factors_.shape[1]), dtype=np.float32)
    return light


def _batch_size(n_items: int) -> int:
    return max(1, min(BATCH_USERS, _MAX_BATCH_CELLS // max(n_items, 1)))


def evaluate_on_cluster(spark: SparkSession, models: dict[str, BaseRecommender], train: Interactions,
                        test: Interactions, *, k: int, batch_size: int | None = None) -> dict[str, Evaluation]:
    """Full-catalogue ranking of ``test``'s users (``train``'s items excluded) on the executors; the metrics here.

    Every model must be an `ALS` (a factor model scored from its user factors) or
    `MostPopular`. ``batch_size`` (default `evaluate_scores`'s 2,048, fewer for a
    catalogue past 120,000 items) is how many users one task scores at once.
    """
    require_pyspark()
    from pyspark.sql import types as T

    seen = sp.csr_matrix(seen_matrix(train))
    relevant = sp.csr_matrix(test.matrix(positives_only=True))
    n_items = seen.shape[1]
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    top_width = min(k, n_items)
    size = int(batch_size or _batch_size(n_items))
    names = list(models)
    tops: dict[str, np.ndarray] = {name: np.zeros((0, k), dtype=np.int64) for name in names}
    if len(users):
        lights = spark.sparkContext.broadcast({str(j): _light(models[name]) for j, name in enumerate(names)})
        factor_cols = [j for j, name in enumerate(names) if isinstance(models[name], ALS)]
        rows = pd.DataFrame({
            "batch": np.arange(len(users), dtype=np.int64) // size,
            "pos": np.arange(len(users), dtype=np.int64),
            "seen": [seen.indices[seen.indptr[u]:seen.indptr[u + 1]].astype(np.int32) for u in users],
        })
        fields = [T.StructField("batch", T.LongType(), False), T.StructField("pos", T.LongType(), False),
                  T.StructField("seen", T.ArrayType(T.IntegerType(), False), False)]
        for j in factor_cols:
            factors = np.asarray(models[names[j]].user_factors_, dtype=np.float32)[users]
            rows[f"f{j}"] = list(factors)
            fields.append(T.StructField(f"f{j}", T.ArrayType(T.FloatType(), False), False))
        out_schema = T.StructType([T.StructField("pos", T.LongType(), False)] + [
            T.StructField(f"t{j}", T.ArrayType(T.LongType(), False), False) for j in range(len(names))])

        def rank_batch(group: pd.DataFrame) -> pd.DataFrame:
            group = group.sort_values("pos")
            n = len(group)
            lengths = group["seen"].map(len).to_numpy()
            indices = np.concatenate([np.asarray(s, dtype=np.int32) for s in group["seen"]]) if lengths.sum() else (
                np.zeros(0, dtype=np.int32))
            indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            exclude = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(n, n_items))
            out: dict[str, Any] = {"pos": group["pos"].to_numpy(dtype=np.int64)}
            for key, model in lights.value.items():
                if f"f{key}" in group.columns:  # this batch's user factors, as the driver's ``user_factors_[batch]``
                    model = copy.copy(model)
                    model.user_factors_ = np.stack([np.asarray(f, dtype=np.float32) for f in group[f"f{key}"]])
                scores = model.score(exclude, np.arange(n))
                out[f"t{key}"] = list(top_k(scores, k, exclude=exclude))
            return pd.DataFrame(out)

        with quiet():
            frame = spark.createDataFrame(rows, T.StructType(fields))
            ranked = frame.groupBy("batch").applyInPandas(rank_batch, out_schema)
        with spark_job("ranked the evaluated users' full catalogue"), quiet():
            got = ranked.toPandas().sort_values("pos", kind="stable").reset_index(drop=True)
        lights.destroy()
        if not np.array_equal(got["pos"].to_numpy(), np.arange(len(users))):
            raise SparkJobError(f"The Spark job that ranked the evaluated users returned {len(got):,} rankings for "
                                f"{len(users):,} users; nothing was registered. Run it again.")
        for j, name in enumerate(names):
            tops[name] = np.stack([np.asarray(t, dtype=np.int64) for t in got[f"t{j}"]]).reshape(len(users), top_width)
    popularity = np.asarray((seen > 0).sum(axis=0)).ravel().astype(np.float64)
    return {
        name: Evaluation(
            k=k, users=users, per_user=per_user_metrics(top, relevant[users], k),
            coverage=coverage(top, n_items),
            popularity_bias=popularity_bias(top, popularity, seen.shape[0]) if len(top) else 0.0,
        )
        for name, top in tops.items()
    }


__all__ = ["BATCH_USERS", "CLUSTER_CELLS", "evaluate_on_cluster", "evaluate_ranking", "ranking_place"]
