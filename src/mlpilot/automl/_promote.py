"""The one champion/challenger policy: whether a new version replaces the champion, and why.

A model can only be judged on rows it was not trained on. The champion was
refit on all of its training rows, so each version records which rows those
were (the first 32 bits of a hash per row, `row_hashes`). A challenger is compared with the
champion on the challenger's holdout rows that the champion never saw either,
with a paired bootstrap of the score difference on those same rows
(`mlpilot.evaluate.paired_bootstrap`). The challenger's side of that
comparison is its holdout prediction, made by models fitted without the
holdout.

When too few such rows remain (retraining on the same data, or a champion
registered before versions recorded their rows), the rows cannot be shared:
each model is judged by its own out-of-sample score (holdout, else
cross-validation) on its own rows, and the reason says that the rows differ.
An in-sample score is never used.

An autopilot asks more of a challenger (``mode``): a one-sided paired
bootstrap, either of superiority (a routine retrain must be significantly
better) or of non-inferiority within ``margin`` (when the champion is
decaying, a fresh model as good within the margin is enough). Guardrails then
apply to a challenger that would win: its calibration (Brier score on the same
rows) no worse than the champion's beyond ``calibration_tolerance``, its
predict time and artifact size within the stated limits.

`PromotionPolicy.decide` is pure; `challenge` gathers its inputs from a
registry. Every decision carries its evidence (metric, both scores, number of
rows, test, p-value), recorded with the version and shown to the user.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlpilot.evaluate import bootstrap_ci, one_sided_bootstrap, paired_bootstrap
from mlpilot.exceptions import ArtifactIntegrityError, ModelNotFoundError
from mlpilot.tasks import Metric, get_metric
from mlpilot.tune._stats import _resolve_seed

if TYPE_CHECKING:
    from mlpilot.automl._engine import FitOutcome
    from mlpilot.registry import ModelVersion, Registry

logger = logging.getLogger(__name__)

#: The file, beside a version's artifact, holding the sorted hashes of its training rows.
ROWS_FILE = "training_rows.u32"
#: ``info["training_rows"]["hash"]`` of records `row_hashes` can match.
ROWS_HASH = "mlpilot-row-hash-1/prefix-32"


def row_hashes(frame: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
    """A 64-bit hash of each row of ``frame[columns]`` (all columns by default).

    The hash does not depend on the column order, nor on whether a number is
    stored as an integer or a float (a column gains floats when it gains a
    missing value); other values are hashed as their text.

    Examples
    --------
    >>> a = pd.DataFrame({"x": [1, 2], "s": ["u", "v"]})
    >>> b = pd.DataFrame({"s": ["u", "w"], "x": [1.0, 2.0]})
    >>> (row_hashes(a) == row_hashes(b)).tolist()
    [True, False]
    """
    names = sorted(map(str, frame.columns if columns is None else columns))
    lookup = {str(c): c for c in frame.columns}
    parts: dict[str, Any] = {}
    for name in names:
        series = frame[lookup[name]]
        if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            # one bit pattern for zero and one for missing, whatever the source wrote
            parts[name] = np.where(np.isnan(values), np.nan, values + 0.0)
        elif series.dtype == object and pd.api.types.infer_dtype(series, skipna=False) == "string":
            parts[name] = series.to_numpy()
        else:
            parts[name] = series.astype(str).to_numpy(dtype=object)
    normal = pd.DataFrame(parts, index=pd.RangeIndex(len(frame)))
    return pd.util.hash_pandas_object(normal, index=False).to_numpy(dtype=np.uint64)


def hash_prefixes(hashes: np.ndarray) -> np.ndarray:
    """The upper 32 bits of each hash: what a version records of its rows.

    A shared prefix can only make an unseen row look seen (about n / 2**32 of
    them, left out of the comparison), never a seen row look unseen.
    """
    return (np.asarray(hashes, dtype=np.uint64) >> np.uint64(32)).astype(np.uint32)


def pack_hashes(hashes: np.ndarray) -> bytes:
    """Sorted, unique 32-bit prefixes, little-endian: 4 bytes per distinct row."""
    return np.unique(hash_prefixes(hashes)).astype("<u4").tobytes()


def unpack_hashes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


@dataclass(frozen=True)
class Challenger:
    """The new model's side: its holdout rows, its out-of-sample predictions and scores.

    ``holdout_rows`` are the raw rows (every column, target included) the
    holdout was made of; ``holdout_y`` their encoded target and
    ``holdout_prediction`` the prediction of models fitted without them;
    ``holdout_weight`` their row weights when the run was weighted (the
    paired test then counts each row by its weight, as the holdout score does).
    """

    task: str
    target: str
    metric: str
    classes: list[Any]
    scores: Mapping[str, Any]
    holdout_rows: pd.DataFrame | None = None
    holdout_y: np.ndarray | None = field(default=None, repr=False)
    holdout_prediction: np.ndarray | None = field(default=None, repr=False)
    model: Any = field(default=None, repr=False)
    holdout_weight: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_outcome(cls, outcome: FitOutcome, holdout_rows: pd.DataFrame | None) -> Challenger:
        evaluation = outcome.evaluation
        return cls(
            task=outcome.task, target=outcome.target, metric=outcome.metric,
            classes=list(outcome.encoding.classes), scores=dict(evaluation.metrics),
            holdout_rows=holdout_rows, holdout_y=outcome.holdout_y,
            holdout_prediction=evaluation.holdout_prediction, model=outcome.model,
            holdout_weight=outcome.holdout_weight,
        )


@dataclass(frozen=True)
class Champion:
    """The current champion: its record, a way to load its model and the rows it was trained on.

    ``seen`` holds the hash prefixes of its training rows over ``seen_columns``; both
    are None for versions registered before mlpilot recorded them.
    """

    version: int
    task: str | None
    target: str | None
    scores: Mapping[str, Any]
    load_model: Callable[[], Any]
    seen: np.ndarray | None = field(default=None, repr=False)
    seen_columns: list[str] | None = None
    no_record: str = "it has no record of its training rows (registered before mlpilot kept one)"

    @classmethod
    def from_version(cls, mv: ModelVersion, registry: Registry) -> Champion:
        record = mv.info.get("training_rows")
        seen = columns = None
        no_record = cls.no_record
        if isinstance(record, dict) and record.get("hash") == ROWS_HASH and record.get("file") in mv.files:
            try:
                seen = unpack_hashes(registry.read_file(mv, str(record["file"])))
                columns = [str(c) for c in record.get("columns", [])]
            except ArtifactIntegrityError as exc:
                no_record = f"its record of training rows cannot be used ({exc})"
        return cls(
            version=mv.version, task=mv.info.get("task"), target=mv.info.get("target"),
            scores=dict(mv.metrics), load_model=lambda: registry.load_model(mv), seen=seen,
            seen_columns=columns, no_record=no_record,
        )


@dataclass(frozen=True)
class Decision:
    """Whether the challenger becomes champion, the reason shown to the user and its evidence."""

    promote: bool
    reason: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class PromotionPolicy:
    """The rule that decides between a challenger and the champion.

    Parameters
    ----------
    min_unseen_rows : int
        Fewest holdout rows unseen by both models for a comparison on shared rows.
    alpha : float
        Level of the paired bootstrap test.
    require_significant : bool
        Promote on shared rows only when the challenger is significantly better
        (an autopilot's rule); by default a challenger at least as good on the
        point estimate wins, and the test says how sure that is.
    n_boot : int
        Bootstrap resamples of the paired test (a fifth of them beyond 5,000 rows).
    random_state : int
        Seed of the bootstrap resamples.
    mode : {"best", "superiority", "non_inferiority"}
        ``"best"``: the point estimate decides (``train``, ``recommend``).
        ``"superiority"``: a one-sided paired bootstrap must find the challenger
        better (a routine retrain). ``"non_inferiority"``: it must find the
        challenger no worse than the champion by more than ``margin`` (a
        decaying champion).
    margin : float
        Non-inferiority margin, in the metric's units.
    calibration_tolerance : float, optional
        Guardrail for classifiers: the challenger's Brier score on the shared
        rows may exceed the champion's by at most this much.
    max_predict_ms : float, optional
        Guardrail: most milliseconds the challenger may take per 1,000 rows
        (measured on the shared rows, preprocessing included).
    max_artifact_mb : float, optional
        Guardrail: largest serialised model, in MiB.
    seed : int, optional
        Deprecated former name of ``random_state`` (warns with a `FutureWarning`).
    """

    min_unseen_rows: int = 30
    alpha: float = 0.05
    require_significant: bool = False
    n_boot: int = 1000
    random_state: int = 0
    mode: Literal["best", "superiority", "non_inferiority"] = "best"
    margin: float = 0.0
    calibration_tolerance: float | None = None
    max_predict_ms: float | None = None
    max_artifact_mb: float | None = None
    seed: InitVar[int | None] = None

    def __post_init__(self, seed: int | None) -> None:
        object.__setattr__(self, "random_state", _resolve_seed(self.random_state, seed, "PromotionPolicy"))

    def decide(self, challenger: Challenger, champion: Champion | None) -> Decision:
        """Apply the policy (see the module docstring)."""
        if champion is None:
            return Decision(True, "first model under this name", {"rule": "first"})
        v = f"v{champion.version}"
        if champion.task != challenger.task or champion.target != challenger.target:
            return Decision(True, f"the current champion ({v}) solves a different task or target",
                            {"rule": "different_task", "champion_version": champion.version})
        metric = get_metric(challenger.metric)
        unseen, why_not = self._unseen_rows(challenger, champion)
        if unseen is not None:
            try:
                old_model = champion.load_model()
                old_pred = _champion_prediction(old_model, challenger, unseen)
            except Exception as exc:  # an old artifact that cannot score the new holdout loses
                return Decision(
                    True,
                    f"the current champion ({v}) could not score the new holdout ({type(exc).__name__})",
                    {"rule": "champion_failed", "champion_version": champion.version,
                     "error": type(exc).__name__},
                )
            thresholds = (getattr(challenger.model, "threshold_", None), getattr(old_model, "threshold_", None))
            shared = metric if challenger.holdout_weight is None else metric.weighted(
                np.asarray(challenger.holdout_weight)[unseen])  # the rows count as in the holdout score
            decision = self._on_shared_rows(challenger, champion, shared, unseen, old_pred, thresholds=thresholds)
            if decision is not None:
                return decision
            why_not = "the metric is undefined on the holdout rows unseen by both (a single class?)"
        return self._on_own_rows(challenger, champion, metric, why_not)

    def _unseen_rows(self, challenger: Challenger, champion: Champion) -> tuple[np.ndarray | None, str]:
        """Positions of the challenger's holdout rows the champion was not trained on, or why there are none."""
        v = f"v{champion.version}"
        rows = challenger.holdout_rows
        if rows is None or challenger.holdout_prediction is None or challenger.holdout_y is None:
            return None, "the new model has no holdout"
        if champion.seen is None or champion.seen_columns is None:
            return None, f"champion {v}: {champion.no_record}"
        missing = [c for c in champion.seen_columns if c not in {str(k) for k in rows.columns}]
        if missing:
            return None, f"the new data lacks column(s) {', '.join(map(repr, missing[:5]))} of champion {v}'s rows"
        prefixes = hash_prefixes(row_hashes(rows, champion.seen_columns))
        positions = np.flatnonzero(~np.isin(prefixes, champion.seen))
        if len(positions) < self.min_unseen_rows:
            return None, (
                f"only {len(positions)} of the {len(rows)} holdout rows are unseen by champion {v} "
                f"(at least {self.min_unseen_rows} are needed to compare on shared rows)"
            )
        return positions, ""

    def _on_shared_rows(self, challenger: Challenger, champion: Champion, metric: Metric,
                        unseen: np.ndarray, old_pred: np.ndarray, *, unit: str = "holdout rows",
                        measure: str = "holdout", thresholds: tuple[float | None, float | None] = (None, None),
                        ) -> Decision | None:
        assert challenger.holdout_y is not None and challenger.holdout_prediction is not None
        y = np.asarray(challenger.holdout_y)[unseen]
        new_pred = np.asarray(challenger.holdout_prediction)[unseen]
        new_scored, old_scored = _scored(metric, new_pred, old_pred, thresholds)
        new, old = metric(y, new_scored), metric(y, old_scored)
        if not (math.isfinite(new) and math.isfinite(old)):
            return None
        # as in the evaluation: fewer resamples on large holdouts, where each metric call costs more
        n_boot = self.n_boot if len(y) <= 5000 else max(100, self.n_boot // 5)
        if self.mode != "best":
            return self._one_sided(challenger, champion, metric, unseen, old_pred, n_boot, unit, measure, thresholds)
        test = paired_bootstrap(y, new_scored, old_scored, metric, n_boot=n_boot, random_state=self.random_state,
                                alpha=self.alpha)
        n, n_hold = len(unseen), len(np.asarray(challenger.holdout_y))
        significance = "significant" if test.significant else "not significant"
        stats = (f"on {n} of the {n_hold} {unit}, unseen by both; {test.method} of the difference "
                 f"{test.difference:+.4f}: p={test.p_value:.3g}, {significance} at {self.alpha:g}")
        evidence = {
            "rule": "shared_rows", "metric": metric.name, "challenger": new, "champion": old,
            "champion_version": champion.version, "n_rows": n, "n_holdout": n_hold, "test": test.method,
            "difference": test.difference, "p_value": test.p_value, "significant": test.significant,
            "alpha": self.alpha, "n_boot": n_boot, "require_significant": self.require_significant,
            "unit": unit, "weighted": metric.sample_weight is not None,
        }
        v = f"v{champion.version}"
        if self.require_significant:
            promote = test.significant and test.difference > 0
            verdict = "significantly better than" if promote else "not significantly better than"
        else:
            promote = metric.better(new, old) or new == old
            verdict = _verdict(metric, new, old)
        head = "" if promote else "kept as a candidate: "
        reason = f"{head}{measure} {metric.name} {new:.4f} is {verdict} champion {v}'s {old:.4f} {stats}"
        return Decision(promote, reason, evidence)

    def decide_live(self, task: str, metric_name: str, y: np.ndarray, new_pred: np.ndarray, old_pred: np.ndarray,
                    champion_version: int, *, model: Any = None, rows: pd.DataFrame | None = None,
                    unit: str = "labelled live rows", measure: str = "live",
                    thresholds: tuple[float | None, float | None] = (None, None)) -> Decision:
        """The autopilot's rule on rows both models scored that neither was trained on.

        ``y`` is the encoded label, ``new_pred``/``old_pred`` each model's
        prediction (probabilities for classifiers) on the same rows: labelled
        live rows (shadow mode), or the rows after the challenger's training
        cut. With the challenger's ``model`` and the ``rows``' features, the
        predict-time and size guardrails apply too. ``thresholds`` are the new and the
        old model's decision thresholds: label metrics score each one's labels at its own.
        """
        metric = get_metric(metric_name)
        n = len(y)
        if n < self.min_unseen_rows:
            return Decision(False, f"kept as a candidate: only {n} labelled live rows were scored by both "
                                   f"(at least {self.min_unseen_rows} are needed)",
                            {"rule": "live", "n_rows": n, "champion_version": champion_version})
        paired = Challenger(task=task, target="", metric=metric.name, classes=[], scores={}, holdout_rows=rows,
                            holdout_y=np.asarray(y), holdout_prediction=np.asarray(new_pred), model=model)
        champion = Champion(version=champion_version, task=task, target="", scores={}, load_model=lambda: None)
        n_boot = self.n_boot if n <= 5000 else max(100, self.n_boot // 5)
        policy = self if self.mode != "best" else replace(self, mode="superiority")
        return policy._one_sided(paired, champion, metric, np.arange(n), np.asarray(old_pred), n_boot, unit, measure,
                                 thresholds)

    def _one_sided(self, challenger: Challenger, champion: Champion, metric: Metric, unseen: np.ndarray,
                   old_pred: np.ndarray, n_boot: int, unit: str, measure: str,
                   thresholds: tuple[float | None, float | None] = (None, None)) -> Decision:
        """The autopilot's rule: a one-sided paired test with a margin, then the guardrails."""
        assert challenger.holdout_y is not None and challenger.holdout_prediction is not None
        y = np.asarray(challenger.holdout_y)[unseen]
        new_pred = np.asarray(challenger.holdout_prediction)[unseen]
        new_scored, old_scored = _scored(metric, new_pred, old_pred, thresholds)
        new, old = metric(y, new_scored), metric(y, old_scored)
        bound = 0.0 if self.mode == "superiority" else -abs(self.margin)
        test, lower = one_sided_bootstrap(y, new_scored, old_scored, metric, bound=bound, n_boot=n_boot,
                                          random_state=self.random_state, alpha=self.alpha)
        ci_new = bootstrap_ci(y, new_scored, metric, n_boot=n_boot, random_state=self.random_state)
        ci_old = bootstrap_ci(y, old_scored, metric, n_boot=n_boot, random_state=self.random_state)
        v = f"v{champion.version}"
        evidence: dict[str, Any] = {
            "rule": self.mode, "metric": metric.name, "challenger": new, "champion": old,
            "challenger_interval": list(ci_new), "champion_interval": list(ci_old),
            "champion_version": champion.version, "n_rows": len(unseen),
            "n_holdout": len(np.asarray(challenger.holdout_y)), "test": test.method,
            "difference": test.difference, "lower_bound": lower, "p_value": test.p_value,
            "significant": test.significant, "alpha": self.alpha, "margin": abs(self.margin),
            "n_boot": n_boot, "unit": unit, "weighted": metric.sample_weight is not None,
        }
        claim = "better than" if self.mode == "superiority" else f"no worse (within {abs(self.margin):g}) than"
        stats = (f"{test.method} on {len(unseen)} {unit} unseen by both: difference {test.difference:+.4f}, "
                 f"one-sided lower bound {lower:+.4f}, p={test.p_value:.3g} at {self.alpha:g}")
        scores = f"{measure} {metric.name} {new:.4f} vs champion {v}'s {old:.4f}"
        if not test.significant:
            return Decision(False, f"kept as a candidate: {scores} is not significantly {claim} it ({stats})",
                            evidence)
        failed = self._guardrails(challenger, champion, y, new_pred, old_pred, unseen, evidence)
        if failed:
            return Decision(False, f"kept as a candidate: {scores} is significantly {claim} it ({stats}), "
                                   f"but guardrail(s) failed: {'; '.join(failed)}", evidence)
        return Decision(True, f"{scores} is significantly {claim} it ({stats}); guardrails passed", evidence)

    def _guardrails(self, challenger: Challenger, champion: Champion, y: np.ndarray, new_pred: np.ndarray,
                    old_pred: np.ndarray, unseen: np.ndarray, evidence: dict[str, Any]) -> list[str]:
        """Check calibration, predict time and artifact size; record each in ``evidence``; return the failures."""
        failed: list[str] = []
        checks: dict[str, Any] = {}
        if self.calibration_tolerance is not None and challenger.task != "regression":
            new_b, old_b = _brier(y, new_pred), _brier(y, old_pred)
            ok = new_b <= old_b + self.calibration_tolerance
            checks["calibration"] = {"challenger_brier": new_b, "champion_brier": old_b,
                                     "tolerance": self.calibration_tolerance, "passed": ok}
            if not ok:
                failed.append(f"Brier score {new_b:.4f} is worse than the champion's {old_b:.4f} "
                              f"by more than {self.calibration_tolerance:g}")
        model = challenger.model
        if self.max_predict_ms is not None and model is not None and challenger.holdout_rows is not None:
            rows = challenger.holdout_rows.iloc[unseen].drop(columns=[challenger.target], errors="ignore")
            t0 = time.perf_counter()
            (model.predict_proba if challenger.task != "regression" else model.predict)(rows)
            per_1k = (time.perf_counter() - t0) * 1000.0 * 1000.0 / max(len(rows), 1)
            ok = per_1k <= self.max_predict_ms
            checks["predict_ms_per_1k_rows"] = {"value": per_1k, "limit": self.max_predict_ms, "passed": ok}
            if not ok:
                failed.append(f"predict time {per_1k:.1f} ms per 1,000 rows is over the limit {self.max_predict_ms:g}")
        if self.max_artifact_mb is not None and model is not None:
            from mlpilot.registry._artifacts import dumps

            size_mb = len(dumps(model)[0]) / float(1 << 20)
            ok = size_mb <= self.max_artifact_mb
            checks["artifact_mb"] = {"value": size_mb, "limit": self.max_artifact_mb, "passed": ok}
            if not ok:
                failed.append(f"artifact size {size_mb:.2f} MiB is over the limit {self.max_artifact_mb:g} MiB")
        evidence["guardrails"] = checks
        return failed

    def _on_own_rows(self, challenger: Challenger, champion: Champion, metric: Metric, why: str) -> Decision:
        v = f"v{champion.version}"
        kind = new = old = None
        for candidate in ("holdout", "cv"):
            a = _number(challenger.scores.get(f"{candidate}_{metric.name}"))
            b = _number(champion.scores.get(f"{candidate}_{metric.name}"))
            if a is not None and b is not None:
                kind, new, old = candidate, a, b
                break
        evidence: dict[str, Any] = {"rule": "own_rows", "metric": metric.name, "champion_version": champion.version,
                                    "why_not_shared": why, "test": None, "p_value": None}
        if self.mode != "best":
            evidence["rule"] = "no_shared_rows"
            return Decision(False, (
                f"kept as a candidate: no paired test against champion {v} is possible ({why}); "
                f"the {self.mode.replace('_', '-')} rule needs rows unseen by both"
            ), evidence)
        if kind is None or new is None or old is None:
            evidence["rule"] = "no_scores"
            return Decision(True, (
                f"{why}, and champion {v} has no out-of-sample {metric.name} to compare with; "
                "the newest model becomes champion"
            ), evidence)
        label = "holdout" if kind == "holdout" else "cross-validated"
        evidence.update({"score": kind, "challenger": new, "champion": old})
        promote = metric.better(new, old) or new == old
        verdict = _verdict(metric, new, old)
        head = "" if promote else "kept as a candidate: "
        return Decision(promote, (
            f"{head}{label} {metric.name} {new:.4f} is {verdict} champion {v}'s own {label} {old:.4f}; "
            f"each scored on rows it was not trained on, but not the same rows, so no paired test: {why}"
        ), evidence)


    def decide_ranking(self, challenger: RankingChallenger, champion: Champion | None) -> Decision:
        """The same policy for recommenders, paired over users.

        The users compared are the challenger's test users with at least one
        held-out positive interaction the champion was not trained on either;
        each model ranks the whole catalogue for them (leaving out what each
        was trained on) and both are scored by per-user NDCG@k on those unseen
        interactions only. Too few such users: each is judged by its own test
        NDCG@k, as for tabular models.
        """
        if champion is None:
            return Decision(True, "first model under this name", {"rule": "first"})
        v = f"v{champion.version}"
        if champion.task != challenger.task:
            return Decision(True, f"the current champion ({v}) is not a recommender",
                            {"rule": "different_task", "champion_version": champion.version})
        metric = ranking_metric(challenger.k)
        why = "the new model has no held-out interactions"
        if champion.seen is None or champion.seen_columns is None:
            why = f"champion {v}: {champion.no_record}"
        elif challenger.test is not None and challenger.ranker is not None:
            test = challenger.test
            unseen = test[~np.isin(hash_prefixes(row_hashes(test, champion.seen_columns)), champion.seen)]
            relevant = unseen.groupby("user", sort=True)["item"].agg(set)
            if len(relevant) < self.min_unseen_rows:
                why = (f"only {len(relevant)} test users have interactions unseen by champion {v} "
                       f"(at least {self.min_unseen_rows} are needed to compare on shared users)")
            else:
                users = list(relevant.index)
                try:
                    old = per_user_ndcg(champion.load_model().recommend(users, k=challenger.k), relevant, challenger.k)
                except Exception as exc:  # an old artifact that cannot rank the new users loses
                    return Decision(
                        True, f"the current champion ({v}) could not rank the new test users ({type(exc).__name__})",
                        {"rule": "champion_failed", "champion_version": champion.version, "error": type(exc).__name__},
                    )
                new = per_user_ndcg(challenger.ranker(users, challenger.k), relevant, challenger.k)
                paired = Challenger(task=challenger.task, target="", metric=metric.name, classes=[],
                                    scores=challenger.scores, holdout_y=np.zeros(len(users)), holdout_prediction=new)
                decision = self._on_shared_rows(paired, champion, metric, np.arange(len(users)), old,
                                                unit="test users", measure="test")
                if decision is not None:
                    return decision
        return self._on_own_rows(
            Challenger(task=challenger.task, target="", metric=metric.name, classes=[], scores=challenger.scores),
            champion, metric, why,
        )


@dataclass(frozen=True)
class RankingChallenger:
    """A new recommender's side: its test scores, held-out interactions and a ranker without them.

    ``scores`` holds ``holdout_ndcg@k`` (its score on the test split); ``test``
    the held-out positive interactions (columns ``user`` and ``item``);
    ``ranker(users, k)`` the top-``k`` frame (``user, item, rank``) of the
    model fitted without ``test``.
    """

    k: int
    scores: Mapping[str, Any]
    test: pd.DataFrame | None = field(default=None, repr=False)
    ranker: Callable[[list[Any], int], pd.DataFrame] | None = field(default=None, repr=False)
    task: str = "recommendation"


def ranking_metric(k: int) -> Metric:
    """NDCG@k as a mean over users: ``metric(unused, per_user_ndcg)`` (what the paired bootstrap resamples)."""
    return Metric(f"ndcg@{k}", ("recommendation",), True, lambda _y, per_user: float(np.mean(per_user)))


def per_user_ndcg(ranked: pd.DataFrame, relevant: pd.Series, k: int) -> np.ndarray:
    """Binary-relevance NDCG@k of each user of ``relevant`` (sets of items) from a top-k frame.

    Examples
    --------
    >>> ranked = pd.DataFrame({"user": [1, 1, 2, 2], "item": ["a", "b", "c", "d"], "rank": [1, 2, 1, 2]})
    >>> per_user_ndcg(ranked, pd.Series({1: {"a"}, 2: {"d"}}), k=2).round(4).tolist()
    [1.0, 0.6309]
    """
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    hits = {(u, i): r for u, i, r in zip(ranked["user"], ranked["item"], ranked["rank"], strict=True) if r <= k}
    out = np.zeros(len(relevant))
    for j, (user, items) in enumerate(relevant.items()):
        dcg = sum(discount[hits[(user, i)] - 1] for i in items if (user, i) in hits)
        out[j] = dcg / discount[: min(len(items), k)].sum()
    return out


def challenge_ranking(registry: Registry, name: str, challenger: RankingChallenger,
                      policy: PromotionPolicy | None = None) -> Decision:
    """Decide whether the recommender ``challenger`` replaces ``name``'s champion in ``registry``."""
    try:
        current = registry.get_version(f"{name}@champion")
    except ModelNotFoundError:
        current = None
    champion = None
    if current is not None:
        champion = Champion.from_version(current, registry)
        key = f"ndcg@{challenger.k}"
        task = current.info.get("task") or ("recommendation" if current.kind == "recommender" else current.kind)
        champion = replace(champion, task=task, scores={f"holdout_{key}": current.metrics.get(key)})
    decision = (policy or PromotionPolicy()).decide_ranking(challenger, champion)
    logger.info("%s: %s", name, decision.reason)
    return decision


def _verdict(metric: Metric, new: float, old: float) -> str:
    return "better than" if metric.better(new, old) else "as good as" if new == old else "not better than"


def _brier(y: np.ndarray, proba: np.ndarray) -> float:
    """Multiclass Brier score: mean squared distance between the probabilities and the one-hot labels."""
    proba = np.asarray(proba, dtype=float)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(y)), np.asarray(y, dtype=int)] = 1.0
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _scored(metric: Metric, new_pred: np.ndarray, old_pred: np.ndarray,
            thresholds: tuple[float | None, float | None]) -> tuple[np.ndarray, np.ndarray]:
    """What ``metric`` scores of each model: label metrics its labels at its own threshold (`Metric.decided`).

    The guardrails keep the probabilities themselves.
    """
    return metric.decided(new_pred, thresholds[0]), metric.decided(old_pred, thresholds[1])


def _champion_prediction(model: Any, challenger: Challenger, positions: np.ndarray) -> np.ndarray:
    """The champion's prediction on the chosen holdout rows, in the challenger's class order."""
    assert challenger.holdout_rows is not None
    rows = challenger.holdout_rows.iloc[positions]
    features = rows.drop(columns=[challenger.target], errors="ignore")
    return predict_in_order(model, features, challenger.task, challenger.classes)


def predict_in_order(model: Any, features: pd.DataFrame, task: str, classes: list[Any]) -> np.ndarray:
    """A model's predictions: values for a regression, else probabilities in the order of ``classes``.

    Classes match by value (a model's 0.0 is the class 0), and a class recorded as text (an older
    registry record) matches the model's class of the same text.
    """
    from mlpilot.registry._labels import class_positions

    if task == "regression":
        return np.asarray(model.predict(features), dtype=float)
    proba = np.asarray(model.predict_proba(features), dtype=float)
    pred = np.zeros((len(proba), len(classes)))
    for j, k in enumerate(class_positions(model.classes_, classes)):
        if k >= 0:
            pred[:, k] = proba[:, j]
    return pred


def training_record(rows: pd.DataFrame, columns: list[str]) -> tuple[bytes, dict[str, Any]]:
    """The file and the ``info["training_rows"]`` entry recording the rows a model was trained on."""
    hashes = row_hashes(rows, columns)
    return pack_hashes(hashes), {"file": ROWS_FILE, "hash": ROWS_HASH, "columns": sorted(map(str, columns)),
                                 "n_rows": len(rows)}


def challenge(registry: Registry, name: str, challenger: Challenger,
              policy: PromotionPolicy | None = None) -> Decision:
    """Decide whether ``challenger`` replaces ``name``'s champion in ``registry``."""
    try:
        current = registry.get_version(f"{name}@champion")
    except ModelNotFoundError:
        current = None
    champion = Champion.from_version(current, registry) if current is not None else None
    decision = (policy or PromotionPolicy()).decide(challenger, champion)
    logger.info("%s: %s", name, decision.reason)
    return decision
