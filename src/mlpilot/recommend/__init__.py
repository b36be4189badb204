"""Recommendation: interactions in, ranked items out, with an honest ranking evaluation.

>>> import mlpilot
>>> callable(mlpilot.recommend.train)
True
"""

from mlpilot.recommend._data import Interactions, prepare_interactions
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
from mlpilot.recommend._train import train
from mlpilot.recommend._tuning import FAMILY_NAMES

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
    "RecommenderModel",
    "SearchResult",
    "bootstrap_ci",
    "coverage",
    "evaluate_scores",
    "paired_test",
    "per_user_metrics",
    "popularity_bias",
    "prepare_interactions",
    "search",
    "split_interactions",
    "top_k",
    "train",
]
