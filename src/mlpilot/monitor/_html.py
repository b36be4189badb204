"""The monitor report as plots and a self-contained HTML page.

Per feature, the reference's and the window's shares on the same bins (bars);
the metric over time with its bands, beside the holdout's score. Drawn from
the report's binned counts, so no row is read again.
"""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np

from mlpilot.evaluate._plots import _figure, _png
from mlpilot.monitor._drift import ColumnCounts, ColumnProfile, Profile, Summary
from mlpilot.monitor._report import MonitorReport

# Features drawn at most (drifted ones first, then by importance).
MAX_FEATURE_PLOTS = 8
# Bin labels on a bar plot's axis at most (every n-th bin is named).
MAX_TICK_LABELS = 15


def _labels(column: ColumnProfile, aspect: str, n: int) -> list[str]:
    if aspect == "distribution" and column.role in ("categorical", "boolean"):
        return [*column.levels, "(other)"][:n]
    if aspect == "vocabulary":
        return [*column.vocabulary, "(other)"][:n]
    if aspect == "weekday":
        return ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    if aspect == "hour":
        return [str(h) for h in range(24)]
    edges = [f"{e:.3g}" for e in column.edges]
    return [f"≤{edges[0]}" if edges else "all", *[f"≤{e}" for e in edges[1:]], f">{edges[-1]}" if edges else ""][:n]


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def _bars(column: ColumnProfile, aspect: str, ref: ColumnCounts, live: ColumnCounts, title: str) -> bytes:
    ref_counts, live_counts = ref.aspects[aspect], live.aspects[aspect]
    keep = np.flatnonzero((ref_counts + live_counts) > 0)
    if aspect == "vocabulary" and keep.size > 30:  # the tokens that moved most
        moved = np.abs(_shares(ref_counts) - _shares(live_counts))
        keep = np.sort(keep[np.argsort(moved[keep])[::-1][:30]])
    labels = _labels(column, aspect, len(ref_counts))
    fig, ax = _figure()
    x = np.arange(keep.size)
    ax.bar(x - 0.2, _shares(ref_counts)[keep], width=0.4, label="reference", color="#8aa")
    ax.bar(x + 0.2, _shares(live_counts)[keep], width=0.4, label="window", color="#d62")
    names = [labels[i] if i < len(labels) else str(i) for i in keep]
    every = max(1, -(-len(names) // MAX_TICK_LABELS))  # a readable axis (and far less text to lay out)
    ax.set_xticks(x[::every], names[::every], rotation=60, fontsize=6)
    ax.set(ylabel="share of values", title=title)
    ax.legend(fontsize=7, loc="upper right")
    return _png(fig)


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def feature_plots(profile: Profile, live: Summary, report: MonitorReport, *,
                  max_features: int = MAX_FEATURE_PLOTS) -> list[tuple[str, bytes]]:
    """(title, PNG) per plotted aspect: drifted ones first, then by importance."""
    order = sorted(report.features, key=lambda f: (not f.drift, -f.importance, f.name))
    plots: list[tuple[str, bytes]] = []
    for entry in order:
        if entry.aspect == "missing" or len(plots) >= max_features:
            continue
        column = profile[entry.name]
        effect = f"{entry.statistic} {entry.effect:.3g}" if entry.effect is not None else "not tested"
        title = f"{entry.name} ({entry.aspect}): {effect}{' DRIFT' if entry.drift else ''}"
        plots.append((title, _bars(column, entry.aspect, profile.reference.columns[entry.name],
                                   live.columns[entry.name], title)))
    return plots


def timeline_plot(report: MonitorReport) -> bytes | None:
    """The metric per period (estimated and measured, with their bands) beside the holdout's score."""
    points = [p for p in report.timeline if p.get("estimated") or p.get("actual")]
    if not points or report.metric is None:
        return None
    fig, ax = _figure()
    x = np.arange(len(points))
    for kind, color in (("estimated", "#d62"), ("actual", "#268")):
        values = [p.get(kind) or {} for p in points]
        y = np.array([v.get("value") if v.get("value") is not None else np.nan for v in values], dtype=float)
        if np.isnan(y).all():
            continue
        low = np.array([(v.get("interval") or [np.nan])[0] for v in values], dtype=float)
        high = np.array([(v.get("interval") or [np.nan, np.nan])[1] for v in values], dtype=float)
        ax.plot(x, y, "o-", color=color, label=kind)
        ax.fill_between(x, low, high, color=color, alpha=0.2)
    holdout = report.performance.get("holdout")
    if holdout is not None and holdout.value is not None:
        ax.axhline(holdout.value, color="grey", linestyle="--", label="holdout")
        if holdout.interval is not None:
            ax.axhspan(*holdout.interval, color="grey", alpha=0.1)
    ax.set_xticks(x, [str(p["start"])[:16] for p in points], rotation=45, fontsize=6)
    ax.set(ylabel=report.metric, title=f"{report.metric} over time (95% bands)")
    ax.legend(fontsize=7, loc="upper right")
    return _png(fig)


def report_images(report: MonitorReport, *, max_features: int = MAX_FEATURE_PLOTS) -> list[dict[str, str]]:
    """The report's plots as ``{"title", "src"}`` with data URIs, for the HTML page and the web UI."""
    images = []
    timeline = timeline_plot(report)
    if timeline is not None:
        images.append({"title": f"{report.metric} over time", "src": _png_uri(timeline)})
    if report.prediction_profile is not None and report.prediction_live is not None and report.prediction_drift:
        entry = report.prediction_drift
        title = f"predictions: {entry.statistic} {entry.effect:.3g}" if entry.effect is not None else "predictions"
        images.append({"title": title, "src": _png_uri(_bars(
            report.prediction_profile.columns[0], entry.aspect, report.prediction_profile.reference.columns["prediction"],
            report.prediction_live.columns["prediction"], title))})
    if report.profile is not None and report.live is not None:
        images += [{"title": t, "src": _png_uri(p)} for t, p in feature_plots(report.profile, report.live, report,
                                                                               max_features=max_features)]
    return images


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return html.escape(str(value))


def render_html(report: MonitorReport, *, max_features: int = MAX_FEATURE_PLOTS) -> str:
    """A self-contained HTML page of ``report``: summary, performance, the features' table and the plots."""
    data = report.to_dict()
    perf = data["performance"]
    rows = "".join(
        f"<tr class='{'drift' if f['drift'] else ''}'><td>{_cell(f['name'])}</td><td>{_cell(f['role'])}</td>"
        f"<td>{_cell(f['aspect'])}</td><td>{'yes' if f['drift'] else 'no'}</td><td>{_cell(f['effect'])}</td>"
        f"<td>{_cell(f['interval'])}</td><td>{_cell(f['threshold'])}</td><td>{_cell(f['p_value'])}</td>"
        f"<td>{_cell(f['p_adjusted'])}</td><td>{_cell(f['importance'])}</td><td>{_cell(f['note'])}</td></tr>"
        for f in data["features"]
    )
    metrics = "".join(
        f"<tr><td>{kind}</td><td>{_cell(v['value'])}</td><td>{_cell(v['interval'])}</td><td>{_cell(v['method'])}</td></tr>"
        for kind in ("estimated", "actual", "holdout") if (v := perf.get(kind))
    )
    quality = "".join(f"<tr><td>{_cell(k)}</td><td>{_cell(', '.join(f'{a}: {n}' for a, n in v.items()))}</td></tr>"
                      for k, v in data["quality"]["by_feature"].items())
    images = "".join(f"<figure><img src='{i['src']}' alt='{html.escape(i['title'])}'>"
                     f"<figcaption>{html.escape(i['title'])}</figcaption></figure>" for i in report_images(report, max_features=max_features))
    verdict = ("<p class='risk'>Model at risk: " + "; ".join(map(html.escape, report.risk_reasons)) + "</p>"
               if report.model_at_risk else "<p class='ok'>Model not at risk.</p>")
    window = data["window"]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>mlpilot monitor: {html.escape(report.name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px}}tr.drift td{{background:#fde2d8}}.risk{{color:#b00;font-weight:bold}}
.ok{{color:#070}}figure{{display:inline-block;margin:4px}}img{{width:420px}}</style></head><body>
<h1>{html.escape(report.name)} version {report.version}: monitoring</h1>
<p>Window {html.escape(window['start'])} to {html.escape(window['end'])}: {window['rows']} rows, against the training
snapshot {html.escape(str(report.dataset_id))} ({report.reference_rows} rows).</p>{verdict}
<p>Drifted features carry {report.drifted_importance:.0%} of the model's importance.</p><ul>{notes}</ul>
<h2>Performance ({html.escape(str(report.metric))})</h2><table><tr><th>kind</th><th>value</th><th>95% interval</th>
<th>how</th></tr>{metrics}</table>
<h2>Features</h2><p>Effect first (wasserstein: reference standard deviations; tvd: share of values that moved;
missing_rate: live minus reference), flagged when above its threshold (calibrated by resampling the reference into
windows of this size) and significant after Benjamini–Hochberg.</p>
<table><tr><th>feature</th><th>role</th><th>aspect</th><th>drift</th><th>effect</th><th>interval</th><th>threshold</th>
<th>p</th><th>p (BH)</th><th>importance</th><th>note</th></tr>{rows}</table>
<h2>Data-quality flags</h2><p>{data['quality']['rows_flagged']} row(s) flagged.</p><table>{quality}</table>
<h2>Plots</h2>{images}</body></html>
"""
