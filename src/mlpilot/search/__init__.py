"""Search: cross-validated candidates within a time budget, tuning and ensembling."""

from mlpilot.search._ensemble import TabularEnsemble, caruana_weights
from mlpilot.search._explain import Explanation
from mlpilot.search._families import FAMILIES, Family, PredictionParts
from mlpilot.search._learners import Learner
from mlpilot.search._search import (
    CandidateResult,
    SearchConfig,
    SearchResult,
    fit_final,
    load_portfolio,
    make_folds,
    run_search,
)
from mlpilot.tune._tuner import Tuner

__all__ = [
    "FAMILIES",
    "CandidateResult",
    "Explanation",
    "Family",
    "Learner",
    "PredictionParts",
    "SearchConfig",
    "SearchResult",
    "TabularEnsemble",
    "Tuner",
    "caruana_weights",
    "fit_final",
    "load_portfolio",
    "make_folds",
    "run_search",
]
