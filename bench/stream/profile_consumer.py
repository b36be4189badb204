"""Where the stream consumer's CPU goes: cProfile of the consumer loop, in-process, on a pre-filled input.

    python bench/stream/profile_consumer.py                    # Redis, batch 1,000, 20,000 messages
    python bench/stream/profile_consumer.py --transport kafka --top 30

The input is filled first (the benchmark's model and payloads, `run.py`); then
a `StreamConsumer` runs in this process's main thread under cProfile until
every message has its output (a watcher thread counts them and stops it). Printed:
the consumer thread's CPU (``time.thread_time``) per 1,000 rows, the whole
process's (the prediction log's writer and the Kafka client's threads too),
and the functions with the most own time. cProfile adds its own cost per call,
so read the shares rather than the milliseconds; `prefilled.py` measures
without it.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import signal
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (the benchmark's brokers, model and payloads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("kafka", "redis"), default="redis")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    from mlpilot.monitor import PredictionLog
    from mlpilot.registry import Registry, Workspace
    from mlpilot.stream._config import stream_config
    from mlpilot.stream._consumer import StreamConsumer, make_transport

    workspace, _rows, values = bench.prefill_model_and_values(args.n)
    proc, address = bench.start_tansu() if args.transport == "kafka" else bench.start_redis()
    tag = f"profile-{args.transport}-{int(time.time())}"
    side = bench.KafkaPrefill(address, tag) if args.transport == "kafka" else bench.RedisPrefill(address, tag)
    try:
        side.fill(values)
        config = stream_config(name="churn", brokers=address, input=side.input, output=side.output,
                               transport=args.transport, batch=args.batch, max_wait_ms=20,
                               options=bench.KAFKA_OPTIONS if args.transport == "kafka" else {})
        registry = Registry(Workspace.open(workspace))
        consumer = StreamConsumer(config, make_transport(config), registry, log=PredictionLog(registry.workspace))

        def watch() -> None:
            while side.outputs() < args.n:
                time.sleep(0.05)
            consumer.stop()

        profile = cProfile.Profile()
        clocks: dict[str, float] = {}
        loop = consumer._loop

        def profiled_loop() -> None:  # the loop alone: not the model's load, gc.freeze nor the log's compaction
            clocks.update(wall=time.perf_counter(), process=time.process_time(), thread=time.thread_time())
            profile.enable()
            try:
                loop()
            finally:
                profile.disable()
                clocks.update(wall=time.perf_counter() - clocks["wall"],
                              process=time.process_time() - clocks["process"],
                              thread=time.thread_time() - clocks["thread"])

        consumer._loop = profiled_loop  # type: ignore[method-assign]
        threading.Thread(target=watch, daemon=True).start()
        stats = consumer.run(freeze_gc=True)
        wall, process, thread = clocks["wall"], clocks["process"], clocks["thread"]
        per = 1000 / max(1, stats.consumed)
        print(f"{args.transport}: {stats.consumed:,} messages in {stats.batches} batches, {wall:.1f} s "
              f"({stats.consumed / wall:,.0f} rows/s under cProfile); CPU per 1,000 rows: consumer thread "
              f"{thread * 1000 * per:.1f} ms, whole process {process * 1000 * per:.1f} ms")
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    finally:
        side.close()
        proc.send_signal(signal.SIGINT if args.transport == "kafka" else signal.SIGTERM)
        proc.wait(10)


if __name__ == "__main__":
    main()
