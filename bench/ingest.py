"""Ingest benchmark: read and snapshot a generated 1M-row, 20-column CSV.

Compares, each in a fresh subprocess on the same file:
  - pandas.read_csv
  - pyarrow.csv.read_csv (an Arrow table, no pandas)
  - pyarrow.csv.read_csv + to_pandas
  - mlpilot.data.load_dataset (read, snapshot to Parquet, infer schema, record in the registry)
Reports wall time (best of N) and peak RSS above the interpreter's baseline, and
writes bench/results/ingest.md.

Run: make bench-ingest   (or: python bench/ingest.py --rows 1000000 --repeat 3)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ingest.md"

RUNNERS = {
    "pandas.read_csv": "import pandas as pd\ndef run(path, work):\n    return pd.read_csv(path)\n",
    "pyarrow.csv.read_csv": "import pyarrow.csv as c\ndef run(path, work):\n    return c.read_csv(path)\n",
    "pyarrow + to_pandas": "import pyarrow.csv as c\ndef run(path, work):\n    return c.read_csv(path).to_pandas()\n",
    "mlpilot snapshot_source (read + hash + Parquet snapshot)": (
        "from mlpilot.data import snapshot_source\n"
        "def run(path, work):\n    return snapshot_source(path, workspace=work)\n"
    ),
    "mlpilot load_dataset (read + snapshot + pandas + schema)": (
        "from mlpilot.data import load_dataset\n"
        "def run(path, work):\n    return load_dataset(path, workspace=work)\n"
    ),
}

_CHILD = """
import json, sys, threading, time, tempfile, shutil
import psutil
{code}
path = sys.argv[1]
proc = psutil.Process()
base = proc.memory_info().rss
peak = base
done = threading.Event()
def sample():
    global peak
    while not done.is_set():
        peak = max(peak, proc.memory_info().rss)
        time.sleep(0.005)
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
work = tempfile.mkdtemp(prefix="mlpilot-bench-")
t0 = time.perf_counter()
result = run(path, work)
elapsed = time.perf_counter() - t0
done.set(); sampler.join()
peak = max(peak, proc.memory_info().rss)
shutil.rmtree(work, ignore_errors=True)
print(json.dumps({{"seconds": elapsed, "peak_mb": (peak - base) / 1e6}}))
"""


def generate(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i in range(12):
        data[f"num_{i}"] = np.round(rng.normal(100, 30, rows), 4)
    for i in range(4):
        data[f"int_{i}"] = rng.integers(0, 10_000, rows)
    cities = np.array([f"city_{k}" for k in range(300)])
    for i in range(3):
        data[f"cat_{i}"] = cities[rng.integers(0, 300 if i else 12, rows)]
    data["label"] = np.where(rng.random(rows) < 0.2, "yes", "no")
    pd.DataFrame(data).to_csv(path, index=False)


def measure_once(name: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(code=RUNNERS[name]), str(path)],
        check=True, capture_output=True, text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        print(f"generating {args.rows:,} rows x 20 columns ...", flush=True)
        generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        # Rounds interleave the readers, so a busy spell on the machine hits all of them alike.
        results: dict[str, dict[str, float]] = {}
        for round_ in range(args.repeat):
            for name in RUNNERS:
                result = measure_once(name, path)
                best = results.get(name)
                if best is None or result["seconds"] < best["seconds"]:
                    results[name] = result
            print(f"round {round_ + 1}/{args.repeat} done", flush=True)
        for name, r in results.items():
            print(f"{name:50s} {r['seconds']:7.2f} s  peak +{r['peak_mb']:7.0f} MB", flush=True)
    arrow = results["pyarrow.csv.read_csv"]["seconds"]
    ours = results["mlpilot snapshot_source (read + hash + Parquet snapshot)"]
    lines = [
        "# Ingest benchmark",
        "",
        f"`python bench/ingest.py --rows {args.rows} --repeat {args.repeat}` (make bench-ingest), "
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        "",
        f"A generated CSV of {args.rows:,} rows and 20 columns (12 float, 4 int, 3 categorical, 1 label), "
        f"{size_mb:.0f} MB. Each reader runs in a fresh subprocess; {args.repeat} interleaved rounds (every reader once "
        "per round), best round shown. Peak memory is "
        "the growth of the process's maximum RSS during the read.",
        "",
        "| reader | time (s) | vs pyarrow | peak memory (MB) | peak / file size |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['seconds']:.2f} | {r['seconds'] / arrow:.2f}x | {r['peak_mb']:.0f} | {r['peak_mb'] / size_mb:.2f}x |"
        )
    ratio = ours["seconds"] / arrow
    lines += [
        "",
        f"Target: mlpilot within 1.5x of pyarrow's time: **{'met' if ratio <= 1.5 else 'not met'}** ({ratio:.2f}x); "
        f"memory about 3x the file size (the issue's ~3x): {ours['peak_mb'] / size_mb:.2f}x, against "
        f"{results['pyarrow.csv.read_csv']['peak_mb'] / size_mb:.2f}x for pyarrow's reader alone, whose peak "
        "it inherits (the snapshot adds "
        f"{ours['peak_mb'] - results['pyarrow.csv.read_csv']['peak_mb']:.0f} MB).",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
