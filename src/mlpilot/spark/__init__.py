"""The Spark engine: the same flow (sources, profile, train, batch scoring) on Apache Spark.

Only this package imports pyspark, and only once a function here is called:
``import mlpilot.spark`` works without it, and every entry point raises
`MissingDependencyError` ("pip install 'mlpilot[spark]'") when it is missing.

- `get_session`: the active SparkSession or one on ``--spark-master`` (``local[*]`` by default).
- `read_spark`: Parquet/CSV/JSON files and folders, JDBC, catalog tables, a Spark DataFrame.
- `predict_spark`: batch scoring with the runtime's `score_frame` in ``mapInPandas``;
  bad rows go to a rejects output.
"""

from mlpilot.spark._score import BatchScoring, predict_spark, scored_frame
from mlpilot.spark._session import (
    DEFAULT_MASTER,
    SparkJobError,
    get_session,
    is_spark_frame,
    require_pyspark,
)
from mlpilot.spark._sources import describe, read_spark

__all__ = [
    "DEFAULT_MASTER",
    "BatchScoring",
    "SparkJobError",
    "describe",
    "get_session",
    "is_spark_frame",
    "predict_spark",
    "read_spark",
    "require_pyspark",
    "scored_frame",
]
