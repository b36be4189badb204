"""Learning the portfolio zero-shot: greedy forward selection over a table × configuration error matrix.

The portfolio (``portfolio.json``, read by `mlpilot.search.load_portfolio`) is
the list of configurations the search tries, in order, before its tuner. It is
learned offline (``bench/tabular/portfolio.py``, see docs/portfolio.md) as
AutoGluon's and FLAML's zero-shot portfolios are: every candidate configuration
is cross-validated on many tables, each table's errors are rescaled between its
best configuration (0) and its dummy baseline (1), and configurations are
added one at a time, each the one that most lowers the mean over tables of the
best rescaled error in the portfolio so far. These functions are that
arithmetic; they read no files and train nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlpilot.exceptions import InvalidParameterError

__all__ = ["PortfolioChoice", "check_entry", "normalised_errors", "select_portfolio"]


def normalised_errors(errors: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Each table's errors rescaled: 0 for its best configuration, 1 for its baseline or worse.

    Parameters
    ----------
    errors : ndarray of shape (n_tables, n_configs)
        Lower is better (1 - AUC, log loss, RMSE); NaN where a configuration failed.
    baseline : ndarray of shape (n_tables,)
        The dummy model's error on each table.

    Returns
    -------
    ndarray of shape (n_tables, n_configs)
        In [0, 1]; a failed configuration counts as the baseline (1). A table
        where no configuration beats the baseline gives 0 to its best ones and 1 to the rest.

    Examples
    --------
    >>> normalised_errors(np.array([[0.25, 0.5, np.nan]]), np.array([0.75])).tolist()
    [[0.0, 0.5, 1.0]]
    """
    errors = np.asarray(errors, dtype=float)
    baseline = np.asarray(baseline, dtype=float)
    if errors.ndim != 2 or baseline.shape != (errors.shape[0],):
        raise InvalidParameterError(
            f"errors must be (tables, configurations) and baseline one value per table; got {errors.shape} "
            f"and {baseline.shape}."
        )
    filled = np.where(np.isfinite(errors), errors, np.inf)
    best = filled.min(axis=1, keepdims=True)
    span = baseline[:, None] - best
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(span > 0, (filled - best) / np.where(span > 0, span, 1.0), np.where(filled <= best, 0.0, 1.0))
    return np.clip(np.nan_to_num(scaled, nan=1.0, posinf=1.0), 0.0, 1.0)


@dataclass(frozen=True)
class PortfolioChoice:
    """The selected configurations, in the order the search should try them.

    ``order`` indexes the candidate columns; ``scores[i]`` is the mean over
    tables of the best normalised error among ``order[: i + 1]``; ``reasons[i]``
    says why ``order[i]`` was added (``"greedy"`` or ``"family"``: the best of
    a family the greedy steps left out, kept for the ensemble's diversity).
    """

    order: list[int]
    scores: list[float]
    reasons: list[str]


def select_portfolio(normalised: np.ndarray, *, families: Sequence[str], size: int, min_gain: float = 1e-4,
                     costs: Sequence[float] | None = None) -> PortfolioChoice:
    """Greedy forward selection of at most ``size`` configurations, then one of each family left out.

    Parameters
    ----------
    normalised : ndarray of shape (n_tables, n_configs)
        From `normalised_errors` (lower is better).
    families : sequence of str
        Each configuration's model family.
    size : int
        Most configurations the greedy steps add; they stop earlier once no
        configuration lowers the portfolio's mean error by ``min_gain``.
    min_gain : float
        Smallest fall of the mean normalised error that counts as a gain.
    costs : sequence of float, optional
        Each configuration's expected cost: among equal gains the cheaper one is
        taken (then the earlier column).

    Returns
    -------
    PortfolioChoice
        After the greedy steps, every family with no configuration in the
        portfolio adds its best one (lowest mean normalised error), best family first.

    Examples
    --------
    >>> errors = np.array([[0.0, 1.0, 0.2], [1.0, 0.0, 0.2]])  # c is good everywhere, a and b each on one table
    >>> select_portfolio(errors, families=["a", "b", "c"], size=2).order
    [2, 0, 1]
    """
    matrix = np.asarray(normalised, dtype=float)
    n_configs = matrix.shape[1]
    if len(families) != n_configs or (costs is not None and len(costs) != n_configs):
        raise InvalidParameterError(
            f"families and costs need one value per configuration ({n_configs}); got {len(families)} and "
            f"{'none' if costs is None else len(costs)}."
        )
    if size < 1:
        raise InvalidParameterError(f"size must be at least 1; got {size}.")
    cost = np.zeros(n_configs) if costs is None else np.asarray(costs, dtype=float)
    order: list[int] = []
    scores: list[float] = []
    reasons: list[str] = []
    current = np.full(matrix.shape[0], np.inf)
    score = np.inf
    while len(order) < min(size, n_configs):
        means = np.minimum(current[:, None], matrix).mean(axis=0)
        means[order] = np.inf
        best = float(means.min())
        if order and score - best < min_gain:
            break
        tied = [j for j in range(n_configs) if means[j] <= best + 1e-12]
        pick = min(tied, key=lambda j: (cost[j], j))
        order.append(pick)
        current = np.minimum(current, matrix[:, pick])
        score = float(current.mean())
        scores.append(score)
        reasons.append("greedy")
    own = matrix.mean(axis=0)
    chosen = {families[j] for j in order}
    missing = sorted((f for f in dict.fromkeys(families) if f not in chosen),
                     key=lambda f: min(own[j] for j in range(n_configs) if families[j] == f))
    for family in missing:
        pick = min((j for j in range(n_configs) if families[j] == family), key=lambda j: (own[j], cost[j], j))
        order.append(pick)
        current = np.minimum(current, matrix[:, pick])
        scores.append(float(current.mean()))
        reasons.append("family")
    return PortfolioChoice(order=order, scores=scores, reasons=reasons)


def check_entry(entry: dict[str, Any], space: dict[str, tuple[Any, ...]]) -> None:
    """Refuse a portfolio entry whose parameters lie outside its family's search ``space``.

    A family without a space (``{}``) takes the parameters its fit reads; they
    are not checked here. Raises `InvalidParameterError` naming the entry, the
    parameter and the range.
    """
    for key in ("name", "family", "params"):
        if key not in entry:
            raise InvalidParameterError(f"Portfolio entry {entry!r} has no {key!r}; each entry needs name, family, params.")
    if not space:
        return
    for param, value in entry["params"].items():
        spec = space.get(param)
        if spec is None:
            raise InvalidParameterError(
                f"Portfolio entry {entry['name']!r}: {param!r} is not in the {entry['family']} search space "
                f"({', '.join(space)})."
            )
        if spec[0] == "cat":
            ok = value in spec[1]
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and spec[1] <= value <= spec[2]
            ok = ok and (spec[0] != "int" or float(value).is_integer())
        if not ok:
            allowed = spec[1] if spec[0] == "cat" else f"{spec[0]} in [{spec[1]}, {spec[2]}]"
            raise InvalidParameterError(
                f"Portfolio entry {entry['name']!r}: {param}={value!r} is outside the {entry['family']} "
                f"search space ({allowed})."
            )
