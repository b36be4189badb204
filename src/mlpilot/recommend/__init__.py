"""Recommendation: interactions in, ranked items out, with an honest ranking evaluation.

This package is the ranking task (splits, models, metrics, tuning,
`fit_recommender`); none of its modules imports the orchestration layer.
`train`, the entry point that reads, registers and promotes, lives there
(`mlpilot.automl._recommend.train_recommender`) and is resolved on first use,
as ``mlpilot.train`` is.

>>> import mlpilot
>>> callable(mlpilot.recommend.train)
True
"""

import typing

from mlpilot.recommend._data import Interactions, prepare_interactions
from mlpilot.recommend._fit import RecommendConfig, fit_recommender
from mlpilot.recommend._metrics import (
    Evaluation,
    PairedTest,
    bootstrap_ci,
    coverage,
    evaluate_scores,
    paired_test,
    per_user_metrics,
    popularity_bias,
    top_k,
)
from mlpilot.recommend._models import (
    ALS,
    BPR,
    EASE,
    BaseRecommender,
    Blend,
    ItemKNN,
    MostPopular,
    RP3Beta,
)
from mlpilot.recommend._ratings import BiasBaseline
from mlpilot.recommend._recommender import RecommenderModel
from mlpilot.recommend._search import SearchResult, search
from mlpilot.recommend._split import split_interactions
from mlpilot.recommend._tuning import FAMILY_NAMES

if typing.TYPE_CHECKING:  # for type checkers only; at run time `__getattr__` resolves it
    from mlpilot.automl._recommend import train_recommender as train

__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "FAMILY_NAMES",
    "BaseRecommender",
    "BiasBaseline",
    "Blend",
    "Evaluation",
    "Interactions",
    "ItemKNN",
    "MostPopular",
    "PairedTest",
    "RP3Beta",
    "RecommendConfig",
    "RecommenderModel",
    "SearchResult",
    "bootstrap_ci",
    "coverage",
    "evaluate_scores",
    "fit_recommender",
    "paired_test",
    "per_user_metrics",
    "popularity_bias",
    "prepare_interactions",
    "search",
    "split_interactions",
    "top_k",
    "train",
]


def __getattr__(name: str) -> typing.Any:
    if name == "train":  # the orchestration layer's entry point (reads, registers, promotes)
        from mlpilot.automl._recommend import train_recommender

        return train_recommender
    raise AttributeError(f"module 'mlpilot.recommend' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
