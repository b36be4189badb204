"""The model card and the self-contained HTML report."""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np

from mlpilot.evaluate._evaluation import Evaluation


def model_card(
    evaluation: Evaluation,
    *,
    task: str,
    target: str,
    n_rows: int,
    n_holdout: int,
    n_folds: int,
    features: list[str],
    class_counts: dict[str, int] | None,
    time_budget: float | None,
    random_state: int,
    notes: list[str],
    dataset_id: str | None = None,
    refit_full: bool = True,
    budget: str,
) -> dict[str, Any]:
    """A JSON-ready model card: data, task, protocol, scores with intervals, limitations.

    ``budget`` says what bounded the run (``TrainConfig.budget_description``);
    ``time_budget`` is its seconds, None when no clock bounded it.
    """
    limitations: list[str] = []
    if class_counts:
        counts = np.array(list(class_counts.values()), dtype=float)
        share = counts.min() / counts.sum()
        if share < 0.1:
            rare = min(class_counts, key=lambda k: class_counts[k])
            limitations.append(
                f"Class imbalance: the rarest class {rare!r} is {share:.1%} of rows; "
                "accuracy is a poor guide, prefer ROC AUC, PR curves or balanced accuracy."
            )
    if n_holdout < 200:
        limitations.append(f"Small holdout ({n_holdout} rows): the confidence intervals are wide.")
    if n_rows < 1000:
        limitations.append(f"Small training set ({n_rows} rows).")
    test = evaluation.tests.get("dummy")
    if test is not None and not test["significant"]:
        limitations.append("The model is not significantly better than the dummy baseline.")
    limitations.extend(notes)
    return {
        "data": {
            "target": target,
            "n_rows": n_rows,
            "n_holdout": n_holdout,
            "n_features": len(features),
            "features": features,
            "class_counts": class_counts,
            "dataset_id": dataset_id,
        },
        "task": task,
        "metric": evaluation.metric,
        "protocol": {
            "holdout": f"{n_holdout} rows held out before the search, never used to choose",
            "cross_validation": f"{n_folds}-fold{' stratified' if task != 'regression' else ''}",
            "ensemble": "greedy ensemble selection (Caruana) on out-of-fold predictions",
            "refit": (
                "members refit on all rows; scores are the cross-validation fold models' of the same members"
                if refit_full else "members fit on the development rows"
            ),
            "budget": budget,
            "time_budget_seconds": time_budget,
            "random_state": random_state,
        },
        "champion": evaluation.champion,
        "scores": evaluation.metrics,
        "tests": evaluation.tests,
        "limitations": limitations,
    }


def read_card(card: Any) -> dict[str, Any] | None:
    """A stored model card in the current layout, or None when ``card`` is not one.

    Cards stored before the rename name the protocol's seed ``seed``; it is read as
    ``random_state`` (the stored card is left as it is).

    Examples
    --------
    >>> read_card({"protocol": {"seed": 3, "budget": "60s"}})["protocol"]
    {'budget': '60s', 'random_state': 3}
    """
    if not isinstance(card, dict):
        return None
    protocol = card.get("protocol")
    if not isinstance(protocol, dict) or "seed" not in protocol:
        return card
    renamed = {k: v for k, v in protocol.items() if k != "seed"}
    renamed.setdefault("random_state", protocol["seed"])
    return {**card, "protocol": renamed}


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if not np.isfinite(value) else f"{value:.4f}"
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"[{value[0]:.4f}, {value[1]:.4f}]"
    return html.escape(str(value))


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:.85rem;margin:1rem 0}
td,th{border:1px solid #ddd;padding:.3rem .5rem;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
tr.champion{background:#eef7ee;font-weight:600}
.plots img{max-width:48%;margin:.5%} .note{color:#666}
"""


def _threshold_html(section: dict[str, Any] | None) -> str:
    """A binary model's decision threshold and the holdout's confusion matrix at it."""
    if not section:
        return ""
    measure, oof = section["measure"], section["oof"]
    neg, pos = html.escape(str(section["negative_class"])), html.escape(str(section["positive_class"]))
    text = (f"<p>Labels are <b>{pos}</b> where its probability is at least <b>{_fmt(section['value'])}</b> "
            f"({html.escape(section['rule'])}; {html.escape(str(section.get('measure_label', measure)))} "
            f"{_fmt(oof['at_threshold'][measure])} on "
            f"{oof['n_rows']} out-of-fold rows, {_fmt(oof['at_0.5'][measure])} at 0.5).</p>")
    if section.get("note"):
        text += f"<p class='note'>{html.escape(section['note'])}</p>"
    hold = section.get("holdout")
    if hold:
        c = hold["confusion"]
        text += (f"<table><tr><th>holdout, {hold['n_rows']} rows</th><th>predicted {neg}</th><th>predicted {pos}</th></tr>"
                 f"<tr><td>actual {neg}</td><td>{c['tn']}</td><td>{c['fp']}</td></tr>"
                 f"<tr><td>actual {pos}</td><td>{c['fn']}</td><td>{c['tp']}</td></tr></table>"
                 f"<p>F1 {_fmt(hold['f1'])}, precision {_fmt(hold['precision'])}, recall {_fmt(hold['recall'])} "
                 "on the holdout at this threshold.</p>")
    return f"<h2>Decision threshold</h2>{text}"


def render_report(
    title: str, evaluation: Evaluation, card: dict[str, Any], plots: dict[str, bytes]
) -> str:
    """Render a self-contained HTML report (plots embedded as base64 PNG)."""
    metric = evaluation.metric
    columns = ["rank", "name", "family", "status", f"cv_{metric}", "cv_std",
               f"holdout_{metric}", "holdout_ci", "weight", "fit_seconds", "note"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f"<tr class='{'champion' if r.get('champion') else ''}'>"
        + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns)
        + "</tr>"
        for r in evaluation.leaderboard
    )
    tests = []
    for label, t in evaluation.tests.items():
        parts = [f"<b>{html.escape(label.replace('_', ' '))}</b> ({html.escape(t['against'])}):"]
        for kind in ("cv", "holdout"):
            if kind in t:
                r = t[kind]
                parts.append(
                    f"{html.escape(r['method'])}: difference {_fmt(r['difference'])}, "
                    f"p = {_fmt(r['p_value'])} ({'significant' if r['significant'] else 'not significant'} at 5%)"
                )
        tests.append("<li>" + "<br>".join(parts) + "</li>")
    scores = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in card["scores"].items())
    limits = "".join(f"<li>{html.escape(x)}</li>" for x in card["limitations"]) or "<li>None noted.</li>"
    protocol = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in card["protocol"].items())
    images = "".join(
        f"<img alt='{html.escape(name)}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"
        for name, data in plots.items()
    )
    data = card["data"]
    threshold = _threshold_html(card.get("threshold"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Task: <b>{html.escape(card['task'])}</b> · target <b>{html.escape(str(data['target']))}</b> ·
metric <b>{html.escape(metric)}</b> · {data['n_rows']} rows, {data['n_features']} features ·
champion <b>{html.escape(evaluation.champion)}</b></p>
<h2>Scores</h2><table>{scores}</table>
{threshold}
<h2>Leaderboard</h2><table><tr>{head}</tr>{body}</table>
<h2>Paired tests</h2><ul>{''.join(tests) or '<li>No comparison available.</li>'}</ul>
<h2>Plots</h2><div class="plots">{images}</div>
<h2>Model card</h2><h3>Protocol</h3><ul>{protocol}</ul><h3>Limitations</h3><ul>{limits}</ul>
</body></html>
"""
