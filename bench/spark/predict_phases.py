"""Where ``predict --engine spark``'s time goes: each phase in one process, with the JVM's and Python workers' CPU.

    python bench/spark/predict_phases.py [ROWS] [noop_read,identity,score_noop,score_parquet,predict]

Reads the bench's table ``flights-ROWS`` and model workspace ``ws-model-60`` (made by
``bench/spark/run.py --steps predict``) from ``$MLPILOT_BENCH_DIR`` (``/tmp/mlpilot-bench-spark``).
``CONF="key=value;key=value"`` adds Spark settings to the new session. Prints wall time, CPU
seconds (driver, JVM, Spark's Python workers) and the load average of each phase, then the totals.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

WORK = Path(os.environ.get("MLPILOT_BENCH_DIR", "/tmp/mlpilot-bench-spark"))


def cpu_tree() -> dict[str, float]:
    """User + system CPU seconds of this process, its JVM children and the other (Python worker) children."""
    me = psutil.Process()
    own = me.cpu_times()
    out = {"driver": own.user + own.system, "jvm": 0.0, "pyworkers": 0.0}
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            out["jvm" if "java" in child.name() else "pyworkers"] += times.user + times.system
        except psutil.Error:
            pass
    return out


def step(name: str, fn: Callable[[], Any]) -> Any:
    before, start, load = cpu_tree(), time.perf_counter(), os.getloadavg()[0]
    result = fn()
    after = cpu_tree()
    d = {k: after[k] - before[k] for k in after}
    print(f"{name:28s} wall {time.perf_counter() - start:7.1f}s  cpu driver {d['driver']:6.1f} jvm {d['jvm']:6.1f} "
          f"py {d['pyworkers']:6.1f}  load {load:.1f}-{os.getloadavg()[0]:.1f}", flush=True)
    return result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    variants = sys.argv[2].split(",") if len(sys.argv) > 2 else ["noop_read", "identity", "score_noop", "predict"]
    started = time.perf_counter()
    from mlpilot.registry import Registry, Workspace
    from mlpilot.spark import get_session, predict_spark, read_spark
    from mlpilot.spark._score import scored_frame

    print(f"import {time.perf_counter() - started:.1f}s")
    conf = dict(kv.split("=", 1) for kv in os.environ.get("CONF", "").split(";") if kv)
    spark = step("session", lambda: get_session("local[2]", config=conf))
    frame = step("read_spark", lambda: read_spark(str(WORK / f"flights-{n}"), spark=spark))
    print("partitions", frame.rdd.getNumPartitions())
    registry = Registry(Workspace.open(WORK / "ws-model-60"))
    mv = registry.get_version("flights")

    def noop(df: Any) -> None:
        df.write.format("noop").mode("overwrite").save()

    if "noop_read" in variants:
        step("read -> noop", lambda: noop(frame))
        step("read -> noop again", lambda: noop(frame))
    if "identity" in variants:
        step("mapInPandas identity", lambda: noop(frame.mapInPandas(lambda it: (b for b in it), frame.schema)))
    if "score_noop" in variants:
        step("scored_frame -> noop", lambda: noop(scored_frame(registry, mv, frame)))
        step("scored_frame -> noop again", lambda: noop(scored_frame(registry, mv, frame)))
    if "score_parquet" in variants:
        out = WORK / "phases-out.parquet"
        shutil.rmtree(out, ignore_errors=True)
        step("scored_frame -> parquet", lambda: scored_frame(registry, mv, frame).write.parquet(str(out)))
    if "predict" in variants:
        out = WORK / "phases-pred.parquet"
        shutil.rmtree(out, ignore_errors=True)
        print(step("predict_spark", lambda: predict_spark(registry, mv, frame, str(out))))
    total = cpu_tree()
    print("TOTAL cpu", {k: round(v, 1) for k, v in total.items()}, "sum", round(sum(total.values()), 1),
          "wall", round(time.perf_counter() - started, 1))
    registry.close()
    spark.stop()


if __name__ == "__main__":
    main()
