"""Stacking: a level-2 model over the candidates' out-of-fold predictions (and the original features).

The greedy ensemble (`mlpilot.search._ensemble.caruana_weights`) averages its
members with weights that add up to one. A stacker learns a linear layer over
the members' outputs instead: non-negative least squares with an intercept
for regression (Breiman's *stacked regressions*), an L2-regularised logistic
regression over the members' log-odds for classifiers. The level-1 features
are the out-of-fold predictions the search already has for every candidate;
the stacker's own score is out of fold too (nested: fitted on k-1 folds of
that matrix, scored on the k-th), so it is compared fairly with the greedy
ensemble's, fold by fold. The registered model keeps the members refit on all
rows (as the greedy ensemble does) and the stacker fitted on the whole
out-of-fold matrix, as scikit-learn's ``StackingClassifier`` does: predicting
costs the members once, not once per fold.

Beside the linear layer the search tries a *feature stack* (`FeatureStacker`):
a small, strongly regularised LightGBM over the members' level-1 features and
the original (encoded) features, boosting from the linear layer's score, so
it learns where, in feature space, the members are to be trusted more or
less. Its score is nested out of fold the same way; it is chosen only where
it beats both the greedy ensemble and the linear layer. See docs/stacking.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlpilot.search._candidates import CandidateResult, refit_seconds
from mlpilot.tasks import Metric
from mlpilot.tune import Budget
from mlpilot.tune._budget import STACK_SHARE
from mlpilot.tune._executor import quiet

if TYPE_CHECKING:
    from mlpilot.search._selection import EnsembleChoice

#: What `TrainConfig.stacking` accepts: ``auto`` tries a stack in timed runs when the budget
#: allows it; ``on`` in every run (deterministic ones too); ``force`` registers it even where it
#: loses to the greedy ensemble (for experiments and tests; the decision says so); ``off`` never.
StackMode = Literal["auto", "on", "force", "off"]
STACK_MODES: tuple[str, ...] = ("auto", "on", "force", "off")
#: Most members a stack has: every member is refit on all rows and run at predict time.
STACK_MAX_MEMBERS = 4
#: Share of the greedy ensemble's out-of-fold gain over the dummy baseline that the stack's
#: nested out-of-fold score must add to it to be chosen: it costs more members at predict time.
STACK_MARGIN = 1e-3
#: L2 strength of the logistic stacker (scikit-learn's ``C``): log-odds inputs are on one scale.
STACK_C = 1.0
#: Probabilities are clipped to [STACK_CLIP, 1 - STACK_CLIP] before their logarithm.
STACK_CLIP = 1e-6
#: Which level-2 layers the search tries (`TrainConfig.stack_layer`): ``auto`` both (the feature
#: stack when a member's encoded features are at hand), chosen by their nested out-of-fold scores;
#: ``linear`` the linear layer only; ``features`` the feature stack only.
StackLayer = Literal["auto", "linear", "features"]
STACK_LAYERS: tuple[str, ...] = ("auto", "linear", "features")
#: The feature stack's LightGBM: few leaves, a slow rate, a strong L2 penalty and coarse bins, on one
#: thread (deterministic). It boosts from the linear layer's score, so zero rounds is the linear stack.
FEATURE_PARAMS: dict[str, Any] = {"num_leaves": 8, "learning_rate": 0.05, "min_data_in_leaf": 20, "lambda_l2": 10.0,
                                  "max_bin": 63, "verbosity": -1, "num_threads": 1, "deterministic": True,
                                  "force_row_wise": True}
#: Most boosting rounds; each fit stops early on `FEATURE_VALID_SHARE` of its own rows.
FEATURE_ROUNDS = 300
FEATURE_EARLY_STOP = 20
FEATURE_VALID_SHARE = 0.2
#: The feature stack reads at most this many encoded columns (wider encodings are not used).
FEATURE_MAX_COLUMNS = 500


class LinearStacker:
    """A fitted level-2 linear layer over the members' outputs, in the order of ``names``.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    names : list of str
        The members whose outputs it reads, in the order `combine` takes them.
    coef : ndarray
        Regression: ``(n_members,)``. Classifiers: ``(n_outputs, n_inputs)`` over `features`.
    intercept : ndarray
    n_classes : int
        Classifiers: the class codes' count; probabilities have that many columns.
    classes : ndarray, optional
        Classifiers: the class codes the layer's outputs stand for (all of them, usually).
    """

    def __init__(self, task: str, names: list[str], coef: np.ndarray, intercept: np.ndarray, *,
                 n_classes: int = 1, classes: np.ndarray | None = None) -> None:
        self.task = task
        self.names = list(names)
        self.coef = np.asarray(coef, dtype=float)
        self.intercept = np.asarray(intercept, dtype=float)
        self.n_classes = n_classes
        self.classes = None if classes is None else np.asarray(classes, dtype=np.int64)

    def __repr__(self) -> str:
        return f"LinearStacker({self.task!r}, {self.names!r})"

    @staticmethod
    def features(task: str, values: list[np.ndarray]) -> np.ndarray:
        """The level-1 matrix: member values (regression), log-odds of the second class (binary), log-probabilities."""
        if task == "regression":
            return np.column_stack([np.asarray(v, dtype=float) for v in values])
        clipped = [np.clip(np.asarray(v, dtype=float), STACK_CLIP, 1.0 - STACK_CLIP) for v in values]
        if task == "binary":
            return np.column_stack([np.log(p[:, 1]) - np.log(p[:, 0]) for p in clipped])
        return np.hstack([np.log(p) for p in clipped])

    #: Compiled to numpy operations: the fast path may score it on the event loop.
    inline = True
    #: The member whose encoded features the layer reads (None: it reads none).
    feature_member: str | None = None

    def combine(self, values: list[np.ndarray], features: Any = None) -> np.ndarray:
        """The stack's output from its members' values (in `names` order): values, or probabilities.

        Both prediction paths (the estimator's and the runtime's compiled one)
        call this, so they agree exactly. ``features`` is not read (see `FeatureStacker`).
        """
        Z = self.features(self.task, values)
        if self.task == "regression":
            return np.asarray(Z @ self.coef + float(self.intercept), dtype=float)
        scores = Z @ self.coef.T + self.intercept
        out = np.zeros((Z.shape[0], self.n_classes))
        classes = self.classes if self.classes is not None else np.arange(self.n_classes)
        if scores.shape[1] == 1:  # two classes: the logistic of one score
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            out[:, classes[0]], out[:, classes[1]] = 1.0 - positive, positive
            return out
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        out[:, classes] = exp / exp.sum(axis=1, keepdims=True)
        return out

    def raw(self, values: list[np.ndarray]) -> np.ndarray:
        """The layer's score before its link: values (regression), the second class's log-odds (binary),
        or ``(n, n_classes)`` logits (multiclass; a class the layer never saw scores 30 below the lowest).

        What the feature stack boosts from (LightGBM's ``init_score``).
        """
        Z = self.features(self.task, values)
        if self.task == "regression":
            return np.asarray(Z @ self.coef + float(self.intercept), dtype=float)
        scores = Z @ self.coef.T + self.intercept
        classes = self.classes if self.classes is not None else np.arange(self.n_classes)
        if self.task == "binary":
            return np.asarray(scores[:, 0], dtype=float)
        if scores.shape[1] == 1:  # two classes seen: the second's log-odds against the first
            scores = np.column_stack([np.zeros(len(scores)), scores[:, 0]])
        out = np.repeat(scores.min(axis=1, keepdims=True) - 30.0, self.n_classes, axis=1)
        out[:, classes] = scores
        return out

    def importance(self) -> dict[str, float]:
        """Each member's share of the layer's absolute coefficients (what the leaderboard shows as its weight)."""
        n = len(self.names)
        magnitude = np.abs(self.coef)
        per_member = magnitude if self.task == "regression" else magnitude.reshape(magnitude.shape[0], n, -1).sum(axis=(0, 2))
        total = float(per_member.sum())
        if total <= 0:
            return {n: 1.0 / len(self.names) for n in self.names}
        return {n: float(v / total) for n, v in zip(self.names, per_member, strict=True)}

    def describe(self) -> str:
        """One line: the layer's kind and its members."""
        kind = "non-negative least squares" if self.task == "regression" else "L2 logistic regression on log-odds"
        return f"{kind} over {', '.join(self.names)}"


def fit_stacker(task: str, names: list[str], values: list[np.ndarray], y: np.ndarray, *, n_classes: int,
                random_state: int, sample_weight: np.ndarray | None = None) -> LinearStacker:
    """Fit the level-2 layer on the members' ``values`` (their out-of-fold predictions) and ``y``.

    Rows count by ``sample_weight`` when given (a weighted run), as in the members' fits.
    Deterministic: the same inputs give the same coefficients (lbfgs, NNLS).
    One BLAS thread: the problem is small, and a pool of threads on a busy
    machine made each lbfgs step cost 14 ms instead of microseconds.
    """
    Z = LinearStacker.features(task, values)
    if task == "regression":
        from sklearn.linear_model import LinearRegression

        with quiet(1):
            reg = LinearRegression(positive=True).fit(Z, y.astype(float), sample_weight=sample_weight)
        return LinearStacker(task, names, reg.coef_, np.asarray(reg.intercept_))
    from sklearn.linear_model import LogisticRegression

    with quiet(1):
        clf = LogisticRegression(C=STACK_C, max_iter=1000, random_state=random_state).fit(
            Z, y, sample_weight=sample_weight)
    return LinearStacker(task, names, clf.coef_, clf.intercept_, n_classes=n_classes,
                         classes=np.asarray(clf.classes_, dtype=np.int64))


def link(task: str, score: np.ndarray, n_classes: int) -> np.ndarray:
    """Values (regression) or probabilities from raw scores (binary: the second class's log-odds)."""
    if task == "regression":
        return np.asarray(score, dtype=float)
    if task == "binary":
        positive = 1.0 / (1.0 + np.exp(-score))
        return np.column_stack([1.0 - positive, positive])
    shifted = score - score.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


class FeatureStacker:
    """A fitted feature stack: the linear layer's score plus a small LightGBM's over [level-1, features].

    The trees read the members' level-1 features (`LinearStacker.features`)
    and ``feature_member``'s encoded input matrix (the one its preprocessor
    gives; the ensemble passes it), and add a correction to the linear
    layer's raw score (`LinearStacker.raw`), through the same link.

    Parameters
    ----------
    linear : LinearStacker
        The layer the trees boost from (fitted on the same rows).
    booster : lightgbm.Booster
    feature_member : str
        The member (one of ``linear.names``) whose encoded features the trees read.
    n_features : int
        Width of that member's encoded matrix.
    rounds : int
        Boosting rounds of ``booster``.
    """

    #: LightGBM's own predict evaluates the trees: a library call, not numpy operations.
    inline = False

    def __init__(self, linear: LinearStacker, booster: Any, *, feature_member: str, n_features: int, rounds: int) -> None:
        self.linear = linear
        self.booster = booster
        self.feature_member = feature_member
        self.n_features = n_features
        self.rounds = rounds

    @property
    def task(self) -> str:
        return self.linear.task

    @property
    def names(self) -> list[str]:
        return self.linear.names

    @property
    def n_classes(self) -> int:
        return self.linear.n_classes

    def __repr__(self) -> str:
        return f"FeatureStacker({self.task!r}, {self.names!r}, features of {self.feature_member!r})"

    def trees(self, values: list[np.ndarray], features: Any) -> np.ndarray:
        """The trees' correction to the linear layer's raw score."""
        if features is None:
            raise ValueError(f"the feature stack reads the encoded features of member {self.feature_member}: none given")
        F = np.asarray(features.toarray() if hasattr(features, "toarray") else features, dtype=float)
        if F.ndim != 2 or F.shape[1] != self.n_features:
            raise ValueError(f"the feature stack reads {self.n_features} encoded features of {self.feature_member}, "
                             f"got an array of shape {F.shape}")
        M = np.hstack([LinearStacker.features(self.task, values), F])
        return np.asarray(self.booster.predict(M, raw_score=True, num_threads=1), dtype=float)

    def combine(self, values: list[np.ndarray], features: Any = None) -> np.ndarray:
        """The stack's output (values, or probabilities over all classes) from the members' values and the features."""
        return link(self.task, self.linear.raw(values) + self.trees(values, features), self.linear.n_classes)

    def importance(self) -> dict[str, float]:
        """The linear layer's shares (shown as the members' weights; the trees are not split by member)."""
        return self.linear.importance()

    def describe(self) -> str:
        """One line: the layer's kind, its members and the features it reads."""
        return (f"LightGBM ({self.rounds} rounds, {FEATURE_PARAMS['num_leaves']} leaves) over {self.linear.describe()} "
                f"and the {self.n_features} encoded features of {self.feature_member}")


def _feature_params(task: str, n_classes: int, random_state: int) -> dict[str, Any]:
    objective = {"regression": {"objective": "regression"}, "binary": {"objective": "binary"}}.get(
        task, {"objective": "multiclass", "num_class": n_classes})
    return {**FEATURE_PARAMS, **objective, "seed": random_state}


def fit_feature_stacker(task: str, names: list[str], values: list[np.ndarray], features: np.ndarray, y: np.ndarray, *,
                        n_classes: int, random_state: int, feature_member: str, sample_weight: np.ndarray | None = None,
                        rounds: int | None = None) -> FeatureStacker:
    """Fit a feature stack on the members' ``values`` and ``features`` (``feature_member``'s encoded rows).

    The linear layer is fitted first (`fit_stacker`); the trees boost from its
    score on [level-1 features, features]. Without ``rounds``, their number is
    found by early stopping on a seeded `FEATURE_VALID_SHARE` of these rows
    (never on rows outside them), and the trees are then refit on all of them.
    Deterministic: one thread, LightGBM's deterministic mode, a fixed seed.
    """
    import lightgbm

    linear = fit_stacker(task, names, values, y, n_classes=n_classes, random_state=random_state,
                         sample_weight=sample_weight)
    base = linear.raw(values)
    F = np.asarray(features, dtype=float)
    M = np.hstack([LinearStacker.features(task, values), F])
    params = _feature_params(task, n_classes, random_state)
    label = y.astype(float)

    def data(rows: np.ndarray | slice) -> Any:
        return lightgbm.Dataset(M[rows], label[rows], weight=None if sample_weight is None else sample_weight[rows],
                                init_score=base[rows], params={"max_bin": FEATURE_PARAMS["max_bin"], "verbosity": -1},
                                free_raw_data=True)

    with quiet(1):
        if rounds is None:
            order = np.random.default_rng(random_state).permutation(len(y))
            n_valid = max(1, int(FEATURE_VALID_SHARE * len(y)))
            fit_rows, valid_rows = np.sort(order[n_valid:]), np.sort(order[:n_valid])
            train_set = data(fit_rows)
            valid_set = lightgbm.Dataset(M[valid_rows], label[valid_rows], reference=train_set, init_score=base[valid_rows],
                                         weight=None if sample_weight is None else sample_weight[valid_rows])
            probe = lightgbm.train(params, train_set, FEATURE_ROUNDS, valid_sets=[valid_set],
                                   callbacks=[lightgbm.early_stopping(FEATURE_EARLY_STOP, verbose=False)])
            rounds = max(1, int(probe.best_iteration or FEATURE_ROUNDS))
        booster = lightgbm.train(params, data(slice(None)), rounds)
    return FeatureStacker(linear, booster, feature_member=feature_member, n_features=F.shape[1], rounds=rounds)


def nested_feature_oof(task: str, names: list[str], values: list[np.ndarray], features: np.ndarray, y: np.ndarray,
                       folds: list[tuple[np.ndarray, np.ndarray]], *, n_classes: int, random_state: int, feature_member: str,
                       on_fold: Callable[[int], bool] | None = None, sample_weight: np.ndarray | None = None,
                       ) -> tuple[np.ndarray, list[int]] | None:
    """The feature stack's out-of-fold predictions and each fold's rounds (as `nested_oof`, early stopping inside the fold)."""
    out: np.ndarray | None = None
    rounds: list[int] = []
    for i, (tr, va) in enumerate(folds):
        stacker = fit_feature_stacker(task, names, [v[tr] for v in values], features[tr], y[tr], n_classes=n_classes,
                                      random_state=random_state, feature_member=feature_member,
                                      sample_weight=None if sample_weight is None else sample_weight[tr])
        rounds.append(stacker.rounds)
        pred = stacker.combine([v[va] for v in values], features[va])
        if out is None:
            out = np.zeros((len(y), *pred.shape[1:]))
        out[va] = pred
        if on_fold is not None and not on_fold(i):
            return None
    assert out is not None
    return out, rounds


@dataclass(frozen=True)
class StackFeatures:
    """A member's encoded features for the feature stack, out of fold.

    ``oof`` holds each development row as the preprocessor of the fold that
    validated it encoded it (fitted without that row, like the member's
    out-of-fold predictions); ``holdout`` each fold's encoding of the holdout rows.
    """

    member: str
    oof: np.ndarray
    holdout: list[np.ndarray] | None


def nested_oof(task: str, names: list[str], values: list[np.ndarray], y: np.ndarray,
               folds: list[tuple[np.ndarray, np.ndarray]], *, n_classes: int, random_state: int,
               on_fold: Callable[[int], bool] | None = None,
               sample_weight: np.ndarray | None = None) -> np.ndarray | None:
    """The stack's out-of-fold predictions: for each fold, a stacker fitted on the other folds' rows.

    ``on_fold(i)`` is asked after fold ``i``; when it returns False the work
    stops and None is returned (the budget ran out). ``sample_weight``: each
    row's weight in the stackers' fits.
    """
    out: np.ndarray | None = None
    for i, (tr, va) in enumerate(folds):
        stacker = fit_stacker(task, names, [v[tr] for v in values], y[tr], n_classes=n_classes, random_state=random_state,
                              sample_weight=None if sample_weight is None else sample_weight[tr])
        pred = stacker.combine([v[va] for v in values])
        if out is None:
            out = np.zeros((len(y), *pred.shape[1:]))
        out[va] = pred
        if on_fold is not None and not on_fold(i):
            return None
    return out


@dataclass(frozen=True)
class StackChoice:
    """A stack the search tried: its members, layer, nested out-of-fold scores and the decision.

    ``chosen`` says whether it is the model to register; ``decision`` is the
    recorded sentence with every score. ``layer`` is the level-2 kind it is
    (``linear`` or ``features``, the better of those tried); ``layers`` each
    tried layer's description, nested out-of-fold mean and fold scores.
    """

    names: list[str]
    stacker: LinearStacker | FeatureStacker
    oof: np.ndarray
    holdout: np.ndarray | None
    fold_scores: list[float]
    greedy_cv: float
    stack_cv: float
    margin: float
    chosen: bool
    forced: bool
    seconds: float
    decision: str
    greedy_fold_scores: list[float]
    greedy_holdout: np.ndarray | None
    random_state: int = 0
    layer: str = "linear"
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    features: StackFeatures | None = field(default=None, repr=False)

    def to_dict(self, metric: Metric) -> dict[str, Any]:
        """The decision's evidence, in the metric's own sign (the registry event, the model card)."""
        def shown(v: float) -> float:
            return v if metric.greater_is_better else -v

        layers = {name: {"stacker": info["stacker"], "cv": shown(info["cv"]),
                         "fold_scores": [shown(s) for s in info["fold_scores"]]} for name, info in self.layers.items()}
        return {"metric": metric.name, "greedy_cv": shown(self.greedy_cv), "stack_cv": shown(self.stack_cv),
                "margin": self.margin, "winner": "stack" if self.chosen else "greedy", "forced": self.forced,
                "layer": self.layer, "layers": layers,
                "members": list(self.names), "stacker": self.stacker.describe(),
                "stack_fold_scores": [shown(s) for s in self.fold_scores], "seconds": round(self.seconds, 3),
                "decision": self.decision}

    def restricted(self, names: list[str], candidates: dict[str, CandidateResult], y: np.ndarray,
                   folds: list[tuple[np.ndarray, np.ndarray]], metric: Metric) -> StackChoice:
        """This stack over ``names`` only (the refit dropped a member): the layer refit, rescored out of fold.

        A feature stack whose feature member was dropped becomes the linear layer over the members left.
        """
        kept = [n for n in self.names if n in names]
        features = self.features if self.features is not None and self.features.member in kept else None
        stacker: LinearStacker | FeatureStacker | None
        if self.layer == "features" and features is not None:
            oof, hold, stacker, scores = _feature_stack_over(
                kept, candidates, y, folds, metric, features, task=self.stacker.task, n_classes=self.stacker.n_classes,
                random_state=self.random_state)
            layer = "features"
        else:
            oof, hold, stacker, scores = _stack_over(kept, candidates, y, folds, metric, task=self.stacker.task,
                                                     n_classes=self.stacker.n_classes, random_state=self.random_state)
            layer = "linear"
        assert oof is not None and stacker is not None
        return replace(self, names=kept, stacker=stacker, oof=oof, holdout=hold, fold_scores=scores,
                       stack_cv=float(np.mean(scores)), layer=layer)


def stack_members(usable: list[CandidateResult], greedy: dict[str, float], *,
                  predict_limit: float | None = None) -> list[CandidateResult]:
    """The stack's members: the greedy ensemble's, then the best candidate of each other family, by score.

    At most `STACK_MAX_MEMBERS`; with a ``predict_limit`` (seconds per row) a
    candidate joins only while the members' summed predict cost stays within it.
    """
    ranked = sorted(usable, key=lambda c: (c.name not in greedy, -c.cv_mean))
    chosen: list[CandidateResult] = []
    families: set[str] = set()
    for c in ranked:
        if len(chosen) >= STACK_MAX_MEMBERS:
            break
        if c.name not in greedy and c.family in families:
            continue
        if predict_limit is not None and sum(m.predict_cost for m in chosen) + c.predict_cost > predict_limit:
            continue
        chosen.append(c)
        families.add(c.family)
    return chosen


def _stack_over(names: list[str], candidates: dict[str, CandidateResult], y: np.ndarray,
                folds: list[tuple[np.ndarray, np.ndarray]], metric: Metric, *, task: str, n_classes: int, random_state: int,
                on_fold: Callable[[int], bool] | None = None,
                ) -> tuple[np.ndarray | None, np.ndarray | None, LinearStacker, list[float]]:
    oofs = [np.asarray(candidates[n].oof) for n in names]
    weights = metric.sample_weight  # a weighted run's metric carries the rows' weights: the stacker fits with them
    oof = nested_oof(task, names, oofs, y, folds, n_classes=n_classes, random_state=random_state, on_fold=on_fold,
                     sample_weight=weights)
    stacker = fit_stacker(task, names, oofs, y, n_classes=n_classes, random_state=random_state, sample_weight=weights)
    holds = [candidates[n].holdout for n in names]
    hold = None if any(h is None for h in holds) else stacker.combine([np.asarray(h) for h in holds])
    scores = [] if oof is None else [metric.on(va).score(y[va], oof[va]) for _tr, va in folds]
    return oof, hold, stacker, scores


def _feature_stack_over(names: list[str], candidates: dict[str, CandidateResult], y: np.ndarray,
                        folds: list[tuple[np.ndarray, np.ndarray]], metric: Metric, features: StackFeatures, *, task: str,
                        n_classes: int, random_state: int, on_fold: Callable[[int], bool] | None = None,
                        ) -> tuple[np.ndarray | None, np.ndarray | None, FeatureStacker | None, list[float]]:
    """`_stack_over` for the feature stack; the registered one's rounds are the folds' mean (None: stopped)."""
    oofs = [np.asarray(candidates[n].oof) for n in names]
    weights = metric.sample_weight
    nested = nested_feature_oof(task, names, oofs, features.oof, y, folds, n_classes=n_classes, random_state=random_state,
                                feature_member=features.member, on_fold=on_fold, sample_weight=weights)
    if nested is None:
        return None, None, None, []
    oof, rounds = nested
    stacker = fit_feature_stacker(task, names, oofs, features.oof, y, n_classes=n_classes, random_state=random_state,
                                  feature_member=features.member, sample_weight=weights,
                                  rounds=max(1, round(float(np.mean(rounds)))))
    holds = [candidates[n].holdout for n in names]
    hold = None
    if features.holdout and not any(h is None for h in holds):  # each fold's encoding of the holdout rows, averaged
        values = [np.asarray(h) for h in holds]
        hold = np.mean([stacker.combine(values, F) for F in features.holdout], axis=0)
    scores = [metric.on(va).score(y[va], oof[va]) for _tr, va in folds]
    return oof, hold, stacker, scores


def consider_stack(usable: list[CandidateResult], candidates: list[CandidateResult], choice: EnsembleChoice,
                   y: np.ndarray, metric: Metric, folds: list[tuple[np.ndarray, np.ndarray]], *, task: str,
                   n_classes: int, mode: str, budget: Budget, keep: Callable[[], float], refit_share: float,
                   predict_limit: float | None, random_state: int, notes: list[str], layer: str = "auto",
                   features: Callable[[list[CandidateResult]], StackFeatures | str] | None = None,
                   ) -> StackChoice | None:
    """Try stacks over the best candidates; one is chosen only where it beats the greedy ensemble out of fold.

    ``choice`` is the greedy ensemble (`select_ensemble`). The stack is tried
    when ``mode`` asks for it (``auto``: timed runs only) and, with a clock,
    when its expected cost (the nested stacker fits, projected from the first,
    and the refit of members the greedy ensemble does not have) fits
    `STACK_SHARE` of what is left after ``keep()``. ``layer`` says which
    level-2 layers are tried (`STACK_LAYERS`); the feature stack needs
    ``features(members)``: a member's out-of-fold encoded features, or a
    sentence saying why there are none. Where both are tried, the feature
    stack is the stack only if it beats the linear one by the margin too (it
    costs a LightGBM at predict time). Every outcome (skipped, lost, won,
    forced) is a note with its numbers. Returns None when nothing was tried.
    """
    if layer not in STACK_LAYERS:
        raise ValueError(f"stack layer must be one of {', '.join(STACK_LAYERS)}, got {layer!r}")
    if mode == "off" or (mode == "auto" and not budget.timed):
        return None
    members = stack_members(usable, choice.weights, predict_limit=predict_limit)
    clock = budget.clock if budget.timed else time.perf_counter
    extra_refit, left_out = 0.0, []
    for c in list(members):  # members the greedy ensemble lacks join while their refit fits
        if c.name in choice.weights:
            continue
        cost = refit_seconds(c, len(folds), refit_share)
        if budget.timed and not budget.fits(extra_refit + cost, share=STACK_SHARE, keep=keep()):
            members.remove(c)
            left_out.append(f"{c.name} ({cost:.2f}s)")
        else:
            extra_refit += cost
    if left_out:
        notes.append(
            f"stacking without {', '.join(left_out)}: refitting them is expected to take more than "
            f"{STACK_SHARE:.0%} of the {max(budget.left() - keep(), 0.0):.2f}s left after {keep():.2f}s kept for the refit"
        )
    if len(members) < 2:
        notes.append(f"stacking not tried: {len(members)} candidate(s) to stack within the budget (it needs two)")
        return None
    names = [c.name for c in members]
    by_name = {c.name: c for c in candidates}
    t0 = clock()
    skipped: list[str] = []

    def on_fold_for(kind: str, started: float) -> Callable[[int], bool]:
        def on_fold(i: int) -> bool:
            if not budget.timed:
                return True
            per_fold = (clock() - started) / (i + 1)
            rest = per_fold * (len(folds) - i)  # the other folds and the full fit
            if budget.fits(rest + extra_refit, share=STACK_SHARE, keep=keep()):
                return True
            skipped.append(
                f"{kind} stopped after {i + 1} of {len(folds)} nested folds to keep the time budget: the rest is "
                f"expected to take {rest:.2f}s ({per_fold:.3f}s a fold) and the extra refits {extra_refit:.2f}s, more "
                f"than {STACK_SHARE:.0%} of the {max(budget.left() - keep(), 0.0):.2f}s left after {keep():.2f}s kept"
            )
            return False
        return on_fold

    tried: dict[str, tuple[np.ndarray, np.ndarray | None, LinearStacker | FeatureStacker, list[float]]] = {}
    if layer in ("auto", "linear"):
        oof, hold, linear, scores = _stack_over(names, by_name, y, folds, metric, task=task, n_classes=n_classes,
                                                 random_state=random_state, on_fold=on_fold_for("stacking", t0))
        if oof is not None:
            tried["linear"] = (oof, hold, linear, scores)
    stack_features: StackFeatures | None = None
    # the feature stack's first fold costs at least a linear one (measured): it starts only while that fits
    floor = (clock() - t0) / (len(folds) + 1) if "linear" in tried else 0.0
    if layer in ("auto", "features") and not skipped and budget.timed and not budget.fits(
            floor + extra_refit, share=STACK_SHARE, keep=keep()):
        notes.append(
            f"feature stack not tried to keep the time budget: {max(budget.left() - keep(), 0.0):.2f}s left after "
            f"{keep():.2f}s kept, {STACK_SHARE:.0%} of it less than a linear fold ({floor:.3f}s) and the extra "
            f"refits ({extra_refit:.2f}s)"
        )
    elif layer in ("auto", "features") and not skipped:
        found = features(members) if features is not None else "no member's encoded features were given"
        if isinstance(found, str):
            notes.append(f"feature stack not tried: {found}")
        else:
            stack_features = found
            f_oof, f_hold, f_stacker, f_scores = _feature_stack_over(
                names, by_name, y, folds, metric, found, task=task, n_classes=n_classes, random_state=random_state,
                on_fold=on_fold_for("the feature stack", clock()))
            if f_oof is not None and f_stacker is not None:
                tried["features"] = (f_oof, f_hold, f_stacker, f_scores)
    notes.extend(skipped)
    if not tried:
        return None
    seconds = clock() - t0
    greedy_cv = float(np.mean(choice.fold_scores))
    dummy = next((c for c in candidates if c.family == "dummy" and c.usable), None)
    gain = abs(greedy_cv - dummy.cv_mean) if dummy is not None else 0.0
    margin = STACK_MARGIN * gain
    cv = {kind: float(np.mean(scores)) for kind, (_o, _h, _s, scores) in tried.items()}
    best = "features" if "features" in cv and ("linear" not in cv or cv["features"] > cv["linear"] + margin) else "linear"
    oof, hold, stacker, scores = tried[best]
    stack_cv = cv[best]
    won = stack_cv > greedy_cv + margin
    chosen = won or mode == "force"
    sign = 1.0 if metric.greater_is_better else -1.0
    kind = "feature stack" if best == "features" else "stack"
    verdict = (f"the {kind} is registered" if won else
               f"the {kind} is registered anyway (stacking='force')" if chosen else "the greedy ensemble is kept")
    layers = {k: {"stacker": t[2].describe(), "cv": cv[k], "fold_scores": list(t[3])} for k, t in tried.items()}
    others = "".join(
        f"; the {'feature stack' if k == 'features' else 'linear stack'} ({layers[k]['stacker']}) {sign * cv[k]:.5g}"
        for k in tried if k != best)
    rule = "the stack must beat it by" if len(tried) == 1 else "a stack must beat it, and the feature stack the linear one, by"
    decision = (
        f"stacking ({stacker.describe()}): nested out-of-fold {metric.name} {sign * stack_cv:.5g} against the greedy "
        f"ensemble's {sign * greedy_cv:.5g}{others} (mean over {len(folds)} folds; {rule} {margin:.2g}): {verdict}"
    )
    notes.append(decision)
    return StackChoice(names=names, stacker=stacker, oof=oof, holdout=hold, fold_scores=scores, greedy_cv=greedy_cv,
                       stack_cv=stack_cv, margin=margin, chosen=chosen, forced=chosen and not won, seconds=seconds,
                       decision=decision, greedy_fold_scores=list(choice.fold_scores), greedy_holdout=choice.holdout,
                       random_state=random_state, layer=best, layers=layers, features=stack_features)
