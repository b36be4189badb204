"""Model-agnostic tuning pieces: the time `Budget` every phase takes its deadline from, and the
per-row statistics (bootstrap intervals, paired tests) every comparison is made with."""

from mlpilot.tune._budget import Budget, Clock, bootstrap_rounds, register_seconds, slack
from mlpilot.tune._stats import (
    PairedTest,
    bootstrap_ci,
    corrected_ttest,
    metric_value,
    one_sided_bootstrap,
    paired_bootstrap,
    paired_test,
)

__all__ = [
    "Budget",
    "Clock",
    "PairedTest",
    "bootstrap_ci",
    "bootstrap_rounds",
    "corrected_ttest",
    "metric_value",
    "one_sided_bootstrap",
    "paired_bootstrap",
    "paired_test",
    "register_seconds",
    "slack",
]
