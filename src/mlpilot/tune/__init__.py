"""Model-agnostic tuning pieces: the time `Budget` every phase takes its deadline from, the
`Tuner`, the `Executor` seam that runs independent fits (`LocalExecutor` threads by default), and
the per-row statistics (bootstrap intervals, paired tests) every comparison is made with."""

from mlpilot.tune._budget import Budget, Clock, bootstrap_rounds, register_seconds, slack
from mlpilot.tune._executor import Executor, LocalExecutor
from mlpilot.tune._stats import (
    PairedTest,
    bootstrap_ci,
    corrected_ttest,
    metric_value,
    one_sided_bootstrap,
    paired_bootstrap,
    paired_test,
)
from mlpilot.tune._tuner import Tuner

__all__ = [
    "Budget",
    "Clock",
    "Executor",
    "LocalExecutor",
    "PairedTest",
    "Tuner",
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
