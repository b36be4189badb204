"""The HTML profile report: a table of findings and a chart per column."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import pandas as pd

from mlpilot.data._profile import Profile
from mlpilot.data._times import parse_times

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2933;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #e4e7eb;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{padding:.35rem .6rem;border-bottom:1px solid #e4e7eb;text-align:left}
th{background:#f5f7fa}.warn{background:#fff8e1;border-left:4px solid #f0b429;padding:.5rem 1rem;margin:.3rem 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:1rem}
.card{border:1px solid #e4e7eb;border-radius:8px;padding:.6rem}.card h3{font-size:1rem;margin:.2rem 0}
.muted{color:#7b8794;font-size:.85rem}img{max-width:100%}
"""


# A chart takes tens of milliseconds: a 50,000-column table would take most of an hour.
MAX_CHARTS = 200


def _chart(series: pd.Series, role: str, dtype: str) -> str | None:
    """A base64 PNG histogram (numeric) or bar chart (top categories)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    values = series.dropna()
    if values.empty:
        return None
    fig, ax = plt.subplots(figsize=(4.2, 2.4), dpi=80)
    try:
        if dtype in ("integer", "float") and role == "numeric":
            ax.hist(values.astype(float), bins=30, color="#3e7cb1")
        elif role == "datetime":
            parsed = parse_times(values).dropna()
            if parsed.empty:
                return None
            ax.hist(parsed, bins=30, color="#3e7cb1")
            fig.autofmt_xdate()
        else:
            counts = values.astype(str).value_counts().head(15)[::-1]
            labels = [label if len(label) <= 24 else label[:21] + "..." for label in counts.index]
            ax.barh(labels, counts.to_numpy(), color="#3e7cb1")
            ax.tick_params(axis="y", labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return base64.b64encode(buffer.getvalue()).decode("ascii")
    finally:
        plt.close(fig)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}"
    return html.escape(str(value))


def render_profile_html(frame: pd.DataFrame, report: Profile, *, title: str) -> str:
    """Render ``report`` (computed on ``frame``) as a self-contained HTML page."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Profile: {esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Data profile: {esc(title)}</h1>",
        f"<p>{report.n_rows:,} rows, {report.n_columns} columns, {report.missing_pct:.2f}% missing cells, "
        f"{report.n_duplicate_rows:,} duplicate rows"
        + (f"; target <b>{esc(report.target)}</b>" if report.target else "")
        + ".</p>",
    ]
    if report.warnings:
        parts.append("<h2>Findings</h2>")
        parts += [f"<div class='warn'>{esc(w)}</div>" for w in report.warnings]
    if report.class_balance:
        parts.append("<h2>Class balance</h2><table><tr><th>class</th><th>share</th></tr>")
        parts += [f"<tr><td>{esc(k)}</td><td>{v:.1%}</td></tr>" for k, v in report.class_balance.items()]
        parts.append("</table>")
    parts.append(
        "<h2>Columns</h2><table><tr><th>column</th><th>type</th><th>role</th><th>missing</th>"
        "<th>distinct</th><th>mean</th><th>min</th><th>max</th><th>alone predicts target</th></tr>"
    )
    for col in report.columns:
        leak = report.leakage_scores.get(col.name)
        parts.append(
            f"<tr><td>{esc(col.name)}</td><td>{col.dtype}</td><td>{col.role}</td>"
            f"<td>{col.missing_pct:.1f}%</td><td>{col.n_unique:,}</td><td>{_fmt(col.mean)}</td>"
            f"<td>{_fmt(col.minimum)}</td><td>{_fmt(col.maximum)}</td><td>{_fmt(leak)}</td></tr>"
        )
    charted = [c for c in report.columns if c.role != "id"]
    if len(charted) > MAX_CHARTS:
        keep = {report.target, *report.leakage_suspects}
        first = {c.name for c in charted[:MAX_CHARTS]}
        charted = [c for c in charted if c.name in first or c.name in keep]
        parts.append(
            f"</table><h2>Distributions</h2><p class='muted'>Charts for the target, the leak suspects and the "
            f"first {MAX_CHARTS} columns; the table above lists all {len(report.columns):,}.</p><div class='grid'>"
        )
    else:
        parts.append("</table><h2>Distributions</h2><div class='grid'>")
    for col in charted:
        image = _chart(frame[col.name], col.role, col.dtype)
        chart = f"<img alt='distribution of {esc(col.name)}' src='data:image/png;base64,{image}'>" if image else "<p class='muted'>no values</p>"
        parts.append(
            f"<div class='card'><h3>{esc(col.name)}</h3><div class='muted'>{col.role}, {col.dtype}, "
            f"{col.n_unique:,} distinct</div>{chart}</div>"
        )
    parts.append("</div><p class='muted'>Generated by mlpilot.</p></body></html>")
    return "".join(parts)
