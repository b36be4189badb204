"""The consumer alone: `mlpilot stream` on a pre-filled input, its CPU per 1,000 rows and its rows/s.

    python bench/stream/prefilled.py                       # both brokers, batch 1,000, 20,000 messages
    python bench/stream/prefilled.py --src /tmp/old/src    # also time another source tree, back to back
    python bench/stream/prefilled.py --pipeline 1 --pipeline 2   # each `--pipeline`, alternating
    python bench/stream/prefilled.py --args "" --args "--option linger.ms=2"   # other consumer arguments

`run.py` times the consumer while the benchmark's own producer and reader run
beside it on the same cores. Here nothing else runs while the consumer works:

1. start a real `mlpilot stream` process; one warm-up message and its output
   (the model is loaded, the group joined);
2. stop the process (``SIGSTOP``) and fill its input with ``--n`` messages
   (timed apart: that is the producer's rate, not the consumer's);
3. note the CPU time of the consumer process (every thread: the prediction
   log's writer, the Kafka client's threads), of the broker and of this
   process, then resume the consumer (``SIGCONT``);
4. wait (checking the output's length every 20 ms) until every message has
   its output; the consumer's time is from ``SIGCONT`` to the broker's time
   stamp of the last output (a Redis entry id, a Kafka record's CreateTime,
   both in ms on this machine's clock).

Reported per broker and source tree: consumer rows/s, the consumer process's
CPU ms per 1,000 rows, the broker's and this process's CPU ms over the same
interval, and the producer's rows/s. Each Kafka run gets a fresh Tansu broker
(its memory storage slows down as it fills); the Redis runs share one server.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (the benchmark's brokers, model and payloads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="messages in the pre-filled input")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="times each (source, broker) runs, interleaved")
    parser.add_argument("--src", type=Path, action="append", default=[],
                        help="another source tree to time beside this one's (repeatable)")
    parser.add_argument("--transport", choices=("kafka", "redis"), action="append", default=[])
    parser.add_argument("--pipeline", type=int, choices=(1, 2), action="append", default=[],
                        help="the consumer's --pipeline (repeatable: each runs in turn; default: not passed)")
    parser.add_argument("--args", action="append", default=[],
                        help='more consumer arguments, such as "--option linger.ms=2" (repeatable: each in turn)')
    args = parser.parse_args()
    srcs = [*args.src, bench.ROOT / "src"]
    transports = args.transport or ["redis", "kafka"]
    workspace, data, values = bench.prefill_model_and_values(args.n)
    floor, fast_path = bench.in_process(workspace, data, 3.0)
    print(f"in-process floor: {floor:,.0f} rows/s ({1e6 / floor:.1f} ms per 1,000 rows, {fast_path}); "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    redis = bench.start_redis()
    try:
        for r in range(args.rounds):
            for transport in transports:
                runs = [(s, p, a) for s in srcs for p in (args.pipeline or [None]) for a in (args.args or [""])]
                for k, (src, pipeline, extra) in enumerate(runs):
                    bench.CONSUMER_ARGS[:] = [*([] if pipeline is None else ["--pipeline", str(pipeline)]),
                                              *shlex.split(extra)]
                    # a fresh Tansu each time: its memory storage gets slower (and busier) as it fills
                    proc, address = bench.start_tansu() if transport == "kafka" else redis
                    try:
                        row = bench.prefilled(workspace, transport, address, proc.pid, values, args.batch,
                                              f"pre-{transport}-{r}-{k}-{int(time.time())}", src)
                    finally:
                        if transport == "kafka":
                            proc.send_signal(signal.SIGINT)
                            proc.wait(10)
                    print(f"{transport:5} src={src} pipeline={pipeline or '-'} {extra!r}  {row['rows_per_s']:8,.0f} rows/s  consumer "
                          f"{row['consumer_cpu_ms_per_1000']:5.1f} ms CPU/1,000 rows  broker "
                          f"{row['broker_cpu_ms_per_1000']:5.1f}  watcher {row['watcher_cpu_ms']:.0f} ms  "
                          f"producer {row['producer_rows_per_s']:,.0f} rows/s  load {os.getloadavg()[0]:.2f}  "
                          f"exit {row['exit']}", flush=True)
    finally:
        redis[0].send_signal(signal.SIGTERM)
        redis[0].wait(10)


if __name__ == "__main__":
    main()
