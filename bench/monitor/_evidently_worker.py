"""Runs Evidently's default DataDriftPreset on windows from Parquet files (in bench/.venv-monitor).

Usage: ``python _evidently_worker.py REFERENCE.parquet < jobs.json``; prints one JSON line per job
with the columns Evidently flags, the seconds of the check and (for jobs with ``"memory": true``,
in a second run under tracemalloc) its peak traced MiB.
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
import warnings

import pandas as pd

warnings.filterwarnings("ignore")


def check(reference: pd.DataFrame, window: pd.DataFrame) -> list[str]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    result = Report([DataDriftPreset()], include_tests=True).run(window, reference).dict()
    prefix = "Value Drift for column "
    return sorted(t["name"][len(prefix):] for t in result["tests"]
                  if t["name"].startswith(prefix) and t["status"] == "FAIL")


def main() -> None:
    reference = pd.read_parquet(sys.argv[1])
    for job in json.load(sys.stdin):
        window = pd.read_parquet(job["path"])
        start = time.perf_counter()
        flagged = check(reference, window)
        seconds = time.perf_counter() - start
        peak = None
        if job.get("memory"):
            tracemalloc.start()
            check(reference, window)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        print(json.dumps({"size": job["size"], "scenario": job["scenario"], "flagged": flagged,
                          "seconds": seconds, "peak_mb": peak}), flush=True)


if __name__ == "__main__":
    main()
