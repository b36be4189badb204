"""Neural-family benchmark: what the MLP adds to the model `mlpilot.train` registers.

On the seeded 75/25 splits of `bench/tabular` (`datasets.load`), each table is
trained twice in deterministic mode (the portfolio's fixed work, so the MLP
always runs whatever the machine's load), with the families
``lightgbm, catboost, linear`` and with ``mlp`` added. It reports the test
score, the fit time, the ensemble's members and their weights, the MLP's own
cross-validation score and predict time per 1,000 rows, and writes
``bench/results/tabular-neural.md``.

Usage: ``python bench/tabular/neural.py [--datasets concrete,Chile] [--output PATH]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from datasets import BY_KEY, Spec, load, score  # noqa: E402
from worker import timed  # noqa: E402

BASE = ("lightgbm", "catboost", "linear")


def run(spec: Spec, families: tuple[str, ...]) -> dict:
    import mlpilot

    train, test = load(spec)
    start = time.perf_counter()
    fitted = mlpilot.train(train, spec.target, task=spec.task, metric=spec.metric, register=False, report=False,
                           deterministic=True, n_trials=0, families=families)
    fit = time.perf_counter() - start
    model = fitted.model
    X = test.drop(columns=[spec.target])
    values, seconds = timed(lambda: model.predict(X) if spec.task == "regression" else model.predict_proba(X))
    classes = [] if spec.task == "regression" else [str(c) for c in model.classes_]
    board = fitted.leaderboard().set_index("name")
    mlp = board.loc["mlp"] if "mlp" in board.index else None
    return {
        "score": score(spec, test[spec.target], values, classes),
        "fit": fit,
        "predict_ms": seconds / len(X) * 1e6,
        "members": " + ".join(f"{w:.2f}×{n}" for n, w in zip(model.names_, model.weights_, strict=True)),
        "mlp_cv": None if mlp is None else float(mlp[f"cv_{spec.metric}"]),
        "best_cv": float(board.drop(index=[i for i in board.index if i in ("ensemble", "dummy")])[f"cv_{spec.metric}"]
                         .agg("max" if spec.metric == "roc_auc" else "min")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="concrete,Chile")
    parser.add_argument("--output", type=Path, default=HERE.parent / "results" / "tabular-neural.md")
    args = parser.parse_args()
    rows = []
    for key in args.datasets.split(","):
        spec = BY_KEY[key]
        for families in (BASE, (*BASE, "mlp")):
            result = run(spec, families)
            print(key, families, result, flush=True)
            rows.append((spec, families, result))
    lines = [
        "# The neural family (MLP) in the registered model",
        "",
        f"Command: `python bench/tabular/neural.py --datasets {args.datasets}`; deterministic mode (the portfolio "
        "entries of the families, no tuner trials), seeded 75/25 split of `bench/tabular`, scored on the 25% test rows.",
        "",
        "| dataset | metric | families | test score | fit s | predict ms / 1k rows | members | MLP CV | best single CV |",
        "|---|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for spec, families, r in rows:
        mlp_cv = "" if r["mlp_cv"] is None else f"{r['mlp_cv']:.4f}"
        lines.append(f"| {spec.key} | {spec.metric} | {', '.join(families)} | {r['score']:.4f} | {r['fit']:.1f} | "
                     f"{r['predict_ms']:.1f} | {r['members']} | {mlp_cv} | {r['best_cv']:.4f} |")
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
