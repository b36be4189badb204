"""Batch-1 end-to-end latency of `mlpilot stream` for a few consumer settings, run in turn.

    python bench/stream/latency.py --args "" --args "--pipeline 2" --args "--pipeline 2 --option linger.ms=2"

For each ``--args`` (extra `mlpilot stream` arguments) and broker: a consumer at ``--batch 1``, one
warm-up message, then ``--rate`` messages/s for ``--seconds`` (`run.paced`, as run.py's latency runs);
printed: p50 and p99 from produce to the output read, one clock. Rounds are interleaved. Uses the
model run.py trained last (bench/.work/stream/ws); nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--args", action="append", default=[], help="extra consumer arguments (repeatable)")
    parser.add_argument("--transport", choices=("kafka", "redis"), action="append", default=[])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    workspace = bench.WORK / "ws"
    if not (workspace / "registry.db").exists():
        raise SystemExit("no model: run bench/stream/run.py (or prefilled.py) once first")
    data = bench.rows()
    brokers = {"kafka": bench.start_tansu(), "redis": bench.start_redis()}
    try:
        for r in range(args.rounds):
            for transport in args.transport or ["redis", "kafka"]:
                proc, address = brokers[transport]
                for k, extra in enumerate(args.args or [""]):
                    bench.CONSUMER_ARGS[:] = shlex.split(extra)
                    tag = f"lat-{transport}-{r}-{k}-{os.getpid()}"
                    side = bench.KafkaSide(address, tag) if transport == "kafka" else bench.RedisSide(address, tag)
                    consumer = bench.start_consumer(workspace, transport, address, side, 1)
                    try:
                        bench.warm_up(side, data, transport)
                        measure = bench.paced(side, data, transport, args.rate, args.seconds, tag)
                        p50, p99 = bench.latencies(measure)
                    finally:
                        code = bench.stop(consumer)
                        side.close()
                    print(f"{transport:5} args={extra!r:40} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                          f"({len(measure.got)}/{len(measure.sent)}, exit {code})  load {os.getloadavg()[0]:.2f}",
                          flush=True)
    finally:
        for name, (proc, _) in brokers.items():
            proc.terminate() if name == "redis" else proc.send_signal(2)
            proc.wait(10)


if __name__ == "__main__":
    main()
