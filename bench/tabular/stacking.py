"""Stacking A/B without the clock: the same deterministic search, with the greedy ensemble and with the stack.

In deterministic mode the candidates are identical in both runs, so the only difference is the final
model: ``stacking="off"`` registers the greedy ensemble, ``stacking="force"`` the stack. What
``stacking="on"`` (and a timed run's ``auto``) would register is the one with the better nested
out-of-fold score, shown as "chosen". Scores are on the benchmark's 25% test split (`datasets.load`).

    python bench/tabular/stacking.py --datasets mlc_churn,Chile,concrete --output bench/results/tabular-stacking.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import BY_KEY, load, score
from worker import timed

FAMILIES = ("lightgbm", "linear", "knn", "extra_trees")


def run(key: str, stacking: str, n_trials: int) -> dict:
    import mlpilot

    spec = BY_KEY[key]
    train, test = load(spec)
    t0 = time.perf_counter()
    out = mlpilot.train(train, spec.target, task=spec.task, metric=spec.metric, register=False, report=False,
                        deterministic=True, n_trials=n_trials, families=FAMILIES, stacking=stacking)
    fit = time.perf_counter() - t0
    X = test.drop(columns=[spec.target])
    if spec.task == "regression":
        pred, seconds = timed(lambda: out.model.predict(X))
        classes: list[str] = []
    else:
        pred, seconds = timed(lambda: out.model.predict_proba(X))
        classes = [str(c) for c in out.model.classes_]
    return {"dataset": key, "metric": spec.metric, "stacking": stacking, "fit_seconds": fit,
            "test": score(spec, test[spec.target], np.asarray(pred), classes),
            "predict_ms_per_1000": seconds / len(test) * 1e6, "members": list(out.model.names_),
            "decision": out.outcome.card.get("stacking")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="mlc_churn,Chile,concrete")
    parser.add_argument("--n-trials", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("bench/results/tabular-stacking-deterministic.json"))
    args = parser.parse_args(argv)
    results = []
    for key in [d for d in args.datasets.split(",") if d]:
        for stacking in ("off", "force"):
            result = run(key, stacking, args.n_trials)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "decision"}), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
