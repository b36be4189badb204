"""Diagnostic plots rendered to PNG bytes with matplotlib's Agg backend."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4), dpi=90)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _stopped(stop: Callable[[], bool] | None) -> bool:
    return stop is not None and stop()


def classification_plots(y: np.ndarray, proba: np.ndarray, classes: list[str], *,
                         stop: Callable[[], bool] | None = None) -> dict[str, bytes]:
    """ROC and precision-recall curves, confusion matrix and calibration curve.

    ``stop`` (the time budget) is asked before each plot after the first: True
    returns the plots drawn so far.
    """
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import auc, confusion_matrix, precision_recall_curve, roc_curve

    plots: dict[str, bytes] = {}
    k = proba.shape[1]
    positives = [1] if k == 2 else list(range(k))[:8]
    fig, ax = _figure()
    for c in positives:
        if (y == c).any() and (y != c).any():
            fpr, tpr, _ = roc_curve(y == c, proba[:, c])
            ax.plot(fpr, tpr, label=f"{classes[c]} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve (holdout)")
    ax.legend(loc="lower right", fontsize=7)
    plots["roc.png"] = _png(fig)
    if _stopped(stop):
        return plots
    fig, ax = _figure()
    for c in positives:
        if (y == c).any():
            precision, recall, _ = precision_recall_curve(y == c, proba[:, c])
            ax.plot(recall, precision, label=str(classes[c]))
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve (holdout)")
    ax.legend(loc="lower left", fontsize=7)
    plots["pr.png"] = _png(fig)
    if _stopped(stop):
        return plots
    fig, ax = _figure()
    matrix = confusion_matrix(y, proba.argmax(axis=1), labels=list(range(k)))
    ax.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8)
    labels = [str(c)[:12] for c in classes]
    ax.set_xticks(range(k), labels, rotation=45, fontsize=7)
    ax.set_yticks(range(k), labels, fontsize=7)
    ax.set(xlabel="Predicted", ylabel="Actual", title="Confusion matrix (holdout)")
    plots["confusion.png"] = _png(fig)
    if _stopped(stop):
        return plots
    fig, ax = _figure()
    for c in positives[:4]:
        if (y == c).any() and (y != c).any():
            frac, mean_pred = calibration_curve(y == c, proba[:, c], n_bins=10, strategy="quantile")
            ax.plot(mean_pred, frac, "o-", label=str(classes[c]))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="Mean predicted probability", ylabel="Observed frequency", title="Calibration (holdout)")
    ax.legend(fontsize=7)
    plots["calibration.png"] = _png(fig)
    return plots


def regression_plots(y: np.ndarray, pred: np.ndarray, *, stop: Callable[[], bool] | None = None) -> dict[str, bytes]:
    """Residuals against predictions, and predicted against actual (``stop``: as in `classification_plots`)."""
    fig, ax = _figure()
    ax.scatter(pred, y - pred, s=6, alpha=0.5)
    ax.axhline(0, color="grey", linestyle="--")
    ax.set(xlabel="Predicted", ylabel="Residual (actual − predicted)", title="Residuals (holdout)")
    plots = {"residuals.png": _png(fig)}
    if _stopped(stop):
        return plots
    fig, ax = _figure()
    ax.scatter(y, pred, s=6, alpha=0.5)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "--", color="grey")
    ax.set(xlabel="Actual", ylabel="Predicted", title="Predicted vs actual (holdout)")
    plots["predicted_vs_actual.png"] = _png(fig)
    return plots


def importance_plot(importance: list[tuple[str, float, float]]) -> bytes:
    """Horizontal bars of permutation importance with their standard deviation."""
    top = importance[:15][::-1]
    fig, ax = _figure()
    ax.barh([name[:25] for name, _, _ in top], [m for _, m, _ in top], xerr=[s for _, _, s in top], color="#4878a8")
    ax.set(xlabel="Drop in score when shuffled", title="Permutation importance")
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)
