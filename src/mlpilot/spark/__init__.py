"""The Spark engine: the same flow (sources, profile, train, batch scoring) on Apache Spark.

Only this package imports pyspark, and only once a function here is called:
``import mlpilot.spark`` works without it, and every entry point raises
`MissingDependencyError` ("pip install 'mlpilot[spark]'") when it is missing.

- `get_session`: the active SparkSession or one on ``--spark-master`` (``local[*]`` by default).
- `read_spark`: Parquet/CSV/JSON files and folders, JDBC, catalog tables, a Spark DataFrame.
- `predict_spark`: batch scoring with the runtime's `score_frame` in ``mapInPandas``;
  bad rows go to a rejects output.
- `recommend_spark`: a recommender's top-k for every user of a table (unknown users: most popular).
- `profile_spark`: the `mlpilot.data.Profile` of a table from Spark aggregates.
- `plan_training`: the driver sample (sized to its memory, `driver_budget_bytes`,
  ``MLPILOT_SPARK_DRIVER_MEMORY``, `driver_memory`) and the cluster holdout behind
  ``mlpilot.train(spark_df, target=...)``; the final fit with ``xgboost.spark`` when
  the training part does not fit the driver (`mlpilot.spark._fit`).
- `monitor_spark`: the local monitor's report on a live window read as a Spark table.
- `SparkExecutor`: the ``mlpilot.tune`` executor seam (``map``, ``n_workers``), one task per item.
- `fit_als`: Spark ALS as a recommender family (factors exported to a local `mlpilot.recommend.ALS`);
  its evaluation ranks the test users on the executors past a size (`mlpilot.spark._rank`).
- `snapshot_spark`: a content fingerprint and the Parquet dataset in the workspace.
"""

from mlpilot.spark._als import fit_als
from mlpilot.spark._executor import SparkExecutor, driver_only
from mlpilot.spark._monitor import monitor_spark
from mlpilot.spark._profile import SparkProfile, profile_spark
from mlpilot.spark._score import (
    BatchRecommendations,
    BatchScoring,
    predict_spark,
    recommend_spark,
    scored_frame,
)
from mlpilot.spark._session import (
    DEFAULT_MASTER,
    SparkJobError,
    get_session,
    is_spark_frame,
    require_pyspark,
)
from mlpilot.spark._snapshot import fingerprint, snapshot_spark
from mlpilot.spark._sources import describe, read_spark
from mlpilot.spark._train import (
    DRIVER_MEMORY_ENV,
    SparkTraining,
    driver_budget_bytes,
    driver_memory,
    parse_bytes,
    plan_training,
)

__all__ = [
    "DEFAULT_MASTER",
    "DRIVER_MEMORY_ENV",
    "BatchRecommendations",
    "BatchScoring",
    "SparkExecutor",
    "SparkJobError",
    "SparkProfile",
    "SparkTraining",
    "describe",
    "driver_budget_bytes",
    "driver_memory",
    "driver_only",
    "fingerprint",
    "fit_als",
    "get_session",
    "is_spark_frame",
    "monitor_spark",
    "parse_bytes",
    "plan_training",
    "predict_spark",
    "profile_spark",
    "read_spark",
    "recommend_spark",
    "require_pyspark",
    "scored_frame",
    "snapshot_spark",
]
