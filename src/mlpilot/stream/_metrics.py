"""The stream consumer's Prometheus metrics, and a small HTTP server for ``/metrics``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlpilot._prometheus import Labels, family, format_labels, histogram, new_histogram, observe
from mlpilot.exceptions import InvalidParameterError


class StreamMetrics:
    """Counters (consumed, produced, dead-lettered, batches, swaps), lag, batch latency and size."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.consumed = 0
        self.batches = 0
        self.swaps = 0
        self.lag: int | None = None
        self._produced: dict[Labels, int] = {}
        self._dead: dict[Labels, int] = {}
        self._flags: dict[Labels, int] = {}
        self._latency = new_histogram()

    def count_batch(self, messages: int, seconds: float, model: str, version: int, produced: int,
                    dead: dict[str, int], flags: dict[str, int]) -> None:
        with self._lock:
            self.consumed += messages
            self.batches += 1
            observe(self._latency, seconds)
            key: Labels = (("model", model), ("version", str(version)))
            self._produced[key] = self._produced.get(key, 0) + produced
            for reason, n in dead.items():
                dkey: Labels = (("reason", reason),)
                self._dead[dkey] = self._dead.get(dkey, 0) + n
            for kind, n in flags.items():
                fkey: Labels = (("model", model), ("kind", kind))
                self._flags[fkey] = self._flags.get(fkey, 0) + n

    @property
    def produced(self) -> int:
        return sum(self._produced.values())

    @property
    def dead_lettered(self) -> int:
        return sum(self._dead.values())

    def render(self) -> str:
        """The metrics in Prometheus text format 0.0.4."""
        with self._lock:
            produced, dead, flags = dict(self._produced), dict(self._dead), dict(self._flags)
            latency = list(self._latency)
            consumed, batches, swaps, lag = self.consumed, self.batches, self.swaps, self.lag
        lines = family("mlpilot_stream_consumed_total", "counter", "Input messages consumed.", [("", consumed)])
        lines += family("mlpilot_stream_produced_total", "counter", "Output records produced, by model and version.",
                        ((format_labels(k), v) for k, v in sorted(produced.items())))
        lines += family("mlpilot_stream_dead_letters_total", "counter",
                        "Messages or rows sent to the dead-letter topic, by reason.",
                        ((format_labels(k), v) for k, v in sorted(dead.items())))
        lines += family("mlpilot_stream_input_flags_total", "counter",
                        "Input values unlike the training data, by model and kind (one per field and row).",
                        ((format_labels(k), v) for k, v in sorted(flags.items())))
        lines += family("mlpilot_stream_batches_total", "counter", "Micro-batches scored and acknowledged.",
                        [("", batches)])
        lines += family("mlpilot_stream_model_swaps_total", "counter", "Hot swaps to a new champion version.",
                        [("", swaps)])
        if lag is not None:
            lines += family("mlpilot_stream_lag", "gauge", "Messages waiting for this consumer.", [("", lag)])
        lines += histogram("mlpilot_stream_batch_duration_seconds",
                           "Seconds from a batch's first message to its acknowledgement.", [((), latency)])
        return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` on ``host:port`` in a daemon thread (port 0: any free port, see ``port``)."""

    def __init__(self, metrics: StreamMetrics, port: int, host: str = "127.0.0.1") -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "Only /metrics is served here.")
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: scrapes are frequent
                return

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise InvalidParameterError(
                f"Cannot serve metrics on {host}:{port} ({exc.strerror}); choose another --metrics-port."
            ) from None
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="mlpilot-stream-metrics",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


__all__ = ["MetricsServer", "StreamMetrics"]
