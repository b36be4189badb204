"""Stacking A/B without the clock: the same deterministic search, with the greedy ensemble and with each stack.

In deterministic mode the candidates are identical in every run, so the only difference is the final
model: ``stacking="off"`` registers the greedy ensemble, ``stacking="force"`` with ``--layers linear``
the linear stack, with ``features`` the feature stack (a small LightGBM over the members' outputs and
the encoded features). What ``stacking="on"`` (and a timed run's ``auto``) would register is the one
with the better nested out-of-fold score (``chosen`` in the table: the rule of `consider_stack`).
Scores are on the benchmark's 25% test split (`datasets.load`).

    python bench/tabular/stacking.py --datasets mlc_churn,Chile,concrete --layers linear,features \
        --output bench/results/tabular-stacking-deterministic.json --table bench/results/tabular-stacking-features.md
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


def run(key: str, stacking: str, n_trials: int, layer: str = "auto", families: tuple[str, ...] = FAMILIES) -> dict:
    import mlpilot

    spec = BY_KEY[key]
    train, test = load(spec)
    t0 = time.perf_counter()
    out = mlpilot.train(train, spec.target, task=spec.task, metric=spec.metric, register=False, report=False,
                        deterministic=True, n_trials=n_trials, families=families, stacking=stacking,
                        stack_layer=layer)
    fit = time.perf_counter() - t0
    X = test.drop(columns=[spec.target])
    if spec.task == "regression":
        pred, seconds = timed(lambda: out.model.predict(X))
        classes: list[str] = []
    else:
        pred, seconds = timed(lambda: out.model.predict_proba(X))
        classes = [str(c) for c in out.model.classes_]
    return {"dataset": key, "metric": spec.metric, "stacking": stacking, "layer": layer, "fit_seconds": fit,
            "test": score(spec, test[spec.target], np.asarray(pred), classes),
            "predict_ms_per_1000": seconds / len(test) * 1e6, "members": list(out.model.names_),
            "decision": out.outcome.card.get("stacking")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="mlc_churn,Chile,concrete")
    parser.add_argument("--n-trials", type=int, default=0)
    parser.add_argument("--layers", default="linear,features",
                        help="stack layers forced, one run each, beside the greedy ensemble (stacking off)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="the search's families (the stack's members)")
    parser.add_argument("--output", type=Path, default=Path("bench/results/tabular-stacking-deterministic.json"))
    parser.add_argument("--table", type=Path, default=None, help="also write a markdown table here")
    args = parser.parse_args(argv)
    layers = [x for x in args.layers.split(",") if x]
    results = []
    for key in [d for d in args.datasets.split(",") if d]:
        for stacking, layer in [("off", "auto"), *(("force", x) for x in layers)]:
            result = run(key, stacking, args.n_trials, layer, tuple(f for f in args.families.split(",") if f))
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "decision"}), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"wrote {args.output}")
    if args.table is not None:
        args.table.write_text(table(results), encoding="utf-8")
        print(f"wrote {args.table}")
    return 0


def table(results: list[dict]) -> str:
    """One row per table: test and nested out-of-fold scores of greedy / linear stack / feature stack, and the choice."""
    lines = ["| table | metric | greedy test | linear test | feature test | greedy OOF | linear OOF | feature OOF | "
             "chosen (on/auto) | feature stack | predict ms/1k greedy / linear / feature | fit s greedy / linear / feature |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"]
    for key in dict.fromkeys(r["dataset"] for r in results):
        rows = {("greedy" if r["stacking"] == "off" else r["layer"]): r for r in results if r["dataset"] == key}
        lines.append(_row(key, rows))
    return "\n".join(lines) + "\n"


def _row(key: str, rows: dict[str, dict]) -> str:
    decisions = [r["decision"] for r in rows.values() if r.get("decision")]
    oof: dict[str, float] = {}
    for d in decisions:  # every forced run has the greedy ensemble's and its own layer's nested OOF score
        oof["greedy"] = d["greedy_cv"]
        for layer, info in d.get("layers", {}).items():
            oof[layer] = info["cv"]
    metric = next(iter(rows.values()))["metric"]
    greater = metric in ("roc_auc", "accuracy", "r2")
    margin = decisions[0]["margin"] if decisions else 0.0

    def better(a: str, b: str) -> bool:  # consider_stack's rule
        if a not in oof:
            return False
        return b not in oof or (oof[a] > oof[b] + margin if greater else oof[a] < oof[b] - margin)

    best_stack = "features" if better("features", "linear") else "linear"
    chosen = best_stack if better(best_stack, "greedy") else "greedy"
    feature = rows.get("features", {}).get("decision") or {}
    described = feature.get("stacker", "") if feature.get("layer") == "features" else "not tried"

    def cell(name: str, field: str, fmt: str = "{:.4f}") -> str:
        return fmt.format(rows[name][field]) if name in rows else "–"

    names = ("greedy", "linear", "features")
    tests = " | ".join(cell(n, "test") for n in names)
    oofs = " | ".join(f"{oof[n]:.4f}" if n in oof else "–" for n in names)
    ms = " / ".join(cell(n, "predict_ms_per_1000", "{:.0f}") for n in names)
    fit = " / ".join(cell(n, "fit_seconds", "{:.1f}") for n in names)
    return f"| {key} | {metric} | {tests} | {oofs} | {chosen} | {described} | {ms} | {fit} |"


if __name__ == "__main__":
    raise SystemExit(main())
