"""Model-agnostic tuning pieces: the time `Budget` every phase takes its deadline from."""

from mlpilot.tune._budget import Budget, Clock, bootstrap_rounds, register_seconds, slack

__all__ = ["Budget", "Clock", "bootstrap_rounds", "register_seconds", "slack"]
