"""Evaluation: holdout scores with intervals, paired tests, plots and the model card."""

from mlpilot.evaluate._evaluation import (
    ENSEMBLE,
    Evaluation,
    evaluate_search,
    permutation_importance,
)
from mlpilot.evaluate._plots import classification_plots, importance_plot, regression_plots
from mlpilot.evaluate._report import model_card, read_card, render_report
from mlpilot.evaluate._stats import (
    PairedTest,
    bootstrap_ci,
    corrected_ttest,
    describe_difference,
    one_sided_bootstrap,
    paired_bootstrap,
    paired_test,
    paired_verdict,
)

__all__ = [
    "ENSEMBLE",
    "Evaluation",
    "PairedTest",
    "bootstrap_ci",
    "classification_plots",
    "corrected_ttest",
    "describe_difference",
    "evaluate_search",
    "importance_plot",
    "model_card",
    "one_sided_bootstrap",
    "paired_bootstrap",
    "paired_test",
    "paired_verdict",
    "permutation_importance",
    "read_card",
    "regression_plots",
    "render_report",
]
