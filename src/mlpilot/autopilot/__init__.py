"""The autopilot: the watch loop that decides, retrains (automl), challenges (the one promotion policy) and rolls back."""

from mlpilot.autopilot._config import TRIGGERS, WatchConfig, make_watch_config
from mlpilot.autopilot._rollback import champion_timeline, previous_champion, rollback
from mlpilot.autopilot._signals import MonitorReportLike, Signal, decay_signal, drift_signal
from mlpilot.autopilot._step import DECISIONS, StepResult, run_step
from mlpilot.autopilot._watch import watch

__all__ = [
    "DECISIONS",
    "TRIGGERS",
    "MonitorReportLike",
    "Signal",
    "StepResult",
    "WatchConfig",
    "champion_timeline",
    "decay_signal",
    "drift_signal",
    "make_watch_config",
    "previous_champion",
    "rollback",
    "run_step",
    "watch",
]
