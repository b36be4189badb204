"""Prometheus text exposition format 0.0.4, without a client library.

The pieces both `/metrics` endpoints share (the server's and the stream
consumer's): latency buckets, label formatting, counter/gauge families and
histograms of bucket counts.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

# Latency buckets in seconds, from sub-millisecond to slow batch requests.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def new_histogram() -> list[float]:
    """Bucket counts (one per bound in `BUCKETS`), then the sum and the count."""
    return [0.0] * (len(BUCKETS) + 2)


def observe(hist: list[float], seconds: float) -> None:
    """Add one observation to a histogram made by `new_histogram` (hold the caller's lock)."""
    index = bisect.bisect_left(BUCKETS, seconds)
    if index < len(BUCKETS):
        hist[index] += 1
    hist[-2] += seconds
    hist[-1] += 1


def histogram(name: str, help_text: str, series: Iterable[tuple[Labels, list[float]]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for key, hist in series:
        cumulative = 0.0
        for bound, count in zip(BUCKETS, hist, strict=False):
            cumulative += count
            le = format_labels(key, 'le="%s"' % bound)  # noqa: UP031 - no nested quotes in 3.11 f-strings
            lines.append(f"{name}_bucket{le} {cumulative:g}")
        le = format_labels(key, 'le="+Inf"')
        lines.append(f"{name}_bucket{le} {hist[-1]:g}")
        lines.append(f"{name}_sum{format_labels(key)} {hist[-2]:.6f}")
        lines.append(f"{name}_count{format_labels(key)} {hist[-1]:g}")
    return lines


def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    out.extend(f"{name}{labels} {value:g}" if isinstance(value, int) else f"{name}{labels} {value:.6g}"
               for labels, value in samples)
    return out
