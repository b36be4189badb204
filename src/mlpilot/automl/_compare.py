"""Compare two registered versions: their metrics side by side and a paired test on rows neither saw.

The rows come from the versions' own datasets (their snapshots), or from a
frame the caller passes. Only rows that neither version was trained on are
scored (each version records hashes of its training rows, `_promote`), so the
comparison is out of sample for both; the paired bootstrap is the one the
promotion policy uses. Without enough such rows there is no paired test, and
the reason says why: the recorded metrics are then the only evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot.automl._promote import (
    Challenger,
    Champion,
    PromotionPolicy,
    _champion_prediction,
    hash_prefixes,
    row_hashes,
)
from mlpilot.evaluate import paired_bootstrap
from mlpilot.exceptions import InvalidParameterError
from mlpilot.tasks import get_metric

if TYPE_CHECKING:
    from mlpilot.registry import ModelVersion, Registry


@dataclass(frozen=True)
class Comparison:
    """Two versions side by side.

    ``metrics`` maps each metric both versions recorded (and those only one did)
    to ``(value of a, value of b)``. ``test`` holds the paired test on unseen rows
    (``difference`` is b minus a, signed so that positive means b is better), or is
    None with ``reason`` saying why.
    """

    a: str
    b: str
    metric: str | None
    metrics: dict[str, tuple[Any, Any]]
    test: dict[str, Any] | None
    reason: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "metric": self.metric,
                "metrics": {k: {"a": va, "b": vb} for k, (va, vb) in self.metrics.items()},
                "test": self.test, "reason": self.reason, "notes": self.notes}


def compare_versions(
    registry: Registry, a: str, b: str, *, frame: pd.DataFrame | None = None,
    policy: PromotionPolicy | None = None,
) -> Comparison:
    """Compare versions ``a`` and ``b`` of a tabular model (see the module docstring).

    Parameters
    ----------
    registry : Registry
    a, b : str
        ``NAME:VERSION`` (or ``NAME@ALIAS``) references.
    frame : DataFrame, optional
        Rows to compare on, with the target column; default: the rows of both
        versions' datasets.
    policy : PromotionPolicy, optional
        Its ``min_unseen_rows``, ``alpha``, ``n_boot`` and ``random_state`` set the test.

    Returns
    -------
    Comparison
    """
    policy = policy or PromotionPolicy()
    mva, mvb = registry.get_version(a), registry.get_version(b)
    metrics = _side_by_side(mva.metrics, mvb.metrics)
    metric_name = mva.info.get("metric")
    task, target = mva.info.get("task"), mva.info.get("target")
    compared = Comparison(mva.ref, mvb.ref, metric_name, metrics, None, "")
    if mva.kind != "tabular" or mvb.kind != "tabular" or not metric_name:
        return _no_test(compared, "a paired test needs two tabular versions trained by mlpilot train")
    if (task, target) != (mvb.info.get("task"), mvb.info.get("target")):
        return _no_test(compared, f"{mva.ref} predicts {target!r} ({task}) and {mvb.ref} predicts "
                        f"{mvb.info.get('target')!r} ({mvb.info.get('task')}): not the same question")
    rows, notes = (frame, []) if frame is not None else _dataset_rows(registry, mva, mvb)
    compared = Comparison(mva.ref, mvb.ref, metric_name, metrics, None, "", notes)
    if target not in rows.columns:
        raise InvalidParameterError(
            f"The rows to compare on have no target column {target!r} (columns: "
            f"{', '.join(map(str, list(rows.columns)[:10]))}). Pass rows that include it."
        )
    rows = rows[rows[target].notna()].reset_index(drop=True)
    champ_a, champ_b = Champion.from_version(mva, registry), Champion.from_version(mvb, registry)
    unseen = np.ones(len(rows), dtype=bool)
    for mv, champ in ((mva, champ_a), (mvb, champ_b)):
        if champ.seen is None or champ.seen_columns is None:
            return _no_test(compared, f"{mv.ref}: {champ.no_record}")
        missing = [c for c in champ.seen_columns if c not in rows.columns]
        if missing:
            return _no_test(compared, f"the rows lack column(s) {', '.join(map(repr, missing[:5]))} of {mv.ref}")
        unseen &= ~np.isin(hash_prefixes(row_hashes(rows, champ.seen_columns)), champ.seen)
    model_a, model_b = champ_a.load_model(), champ_b.load_model()
    classes: list[Any] = [] if task == "regression" else [_plain(c) for c in model_a.classes_]
    if classes:
        unseen &= rows[target].map(_plain).isin(classes).to_numpy()
    positions = np.flatnonzero(unseen)
    if len(positions) < policy.min_unseen_rows:
        return _no_test(compared, (
            f"only {len(positions)} of the {len(rows)} rows are unseen by both versions (at least "
            f"{policy.min_unseen_rows} are needed); pass fresh labelled rows with --data"
        ))
    metric = get_metric(str(metric_name))
    view = Challenger(task=str(task), target=str(target), metric=metric.name, classes=classes, scores={},
                      holdout_rows=rows)
    truth = rows[target].iloc[positions]
    y = (truth.to_numpy(dtype=float) if not classes
         else truth.map(_plain).map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=int))
    # label metrics score each version's labels at its own decision threshold (0.5 for models without one)
    pred_a = metric.decided(_champion_prediction(model_a, view, positions), getattr(model_a, "threshold_", None))
    pred_b = metric.decided(_champion_prediction(model_b, view, positions), getattr(model_b, "threshold_", None))
    score_a, score_b = metric(y, pred_a), metric(y, pred_b)
    n_boot = policy.n_boot if len(y) <= 5000 else max(100, policy.n_boot // 5)
    test = paired_bootstrap(y, pred_b, pred_a, metric, n_boot=n_boot, random_state=policy.random_state, alpha=policy.alpha)
    evidence = {
        "metric": metric.name, "a": score_a, "b": score_b, "n_rows": len(positions), "n_candidates": len(rows),
        "method": test.method, "difference": test.difference, "p_value": test.p_value,
        "significant": bool(test.significant), "alpha": policy.alpha, "n_boot": n_boot,
        "greater_is_better": metric.greater_is_better,
    }
    better = "better" if test.difference > 0 else "worse" if test.difference < 0 else "as good"
    word = "significantly" if test.significant else "not significantly"
    reason = (f"on {len(positions)} rows neither version was trained on, {mvb.ref} is {word} {better} than "
              f"{mva.ref}: {metric.name} {score_b:.4g} vs {score_a:.4g} ({test.method}, p={test.p_value:.3g})")
    return Comparison(mva.ref, mvb.ref, metric.name, metrics, evidence, reason, notes)


def _dataset_rows(registry: Registry, *versions: ModelVersion) -> tuple[pd.DataFrame, list[str]]:
    from mlpilot.data import read_snapshot

    frames, notes = [], []
    for dataset_id in dict.fromkeys(mv.dataset_id for mv in versions if mv.dataset_id):
        try:
            frames.append(read_snapshot(registry.workspace, dataset_id))
        except Exception as exc:  # a removed snapshot: compare on what is left, and say so
            notes.append(f"dataset {dataset_id} could not be read ({type(exc).__name__}); its rows are left out")
    if not frames:
        raise InvalidParameterError(
            f"Neither {versions[0].ref} nor {versions[1].ref} has a readable dataset to compare on; "
            "pass labelled rows with --data SOURCE."
        )
    return pd.concat(frames, ignore_index=True, join="inner").drop_duplicates(ignore_index=True), notes


def _side_by_side(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    keys = [k for k in dict.fromkeys([*a, *b]) if _scalar(a.get(k)) or _scalar(b.get(k)) or k.endswith("_ci")]
    return {k: (a.get(k), b.get(k)) for k in keys}


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _no_test(comparison: Comparison, reason: str) -> Comparison:
    return Comparison(comparison.a, comparison.b, comparison.metric, comparison.metrics, None,
                      f"no paired test: {reason}", comparison.notes)
