"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from mlpilot.exceptions import InvalidParameterError
from mlpilot.registry import Registry, Workspace


class _CliConsole(Console):
    """Stdout's console; piped (no terminal, no $COLUMNS) it is 160 columns wide, not rich's 80,
    so tables keep their names whole (name columns also fold rather than truncate).

    Decided each time it prints, on the stdout and environment of that moment.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # rich reads $COLUMNS/$LINES once, here, and pins them for good: a module-level console would
        # keep the width of import time, whatever the environment says when it prints (a test worker
        # inherits COLUMNS=80 from a parent that imported readline; a CliRunner's env came later)
        if kwargs.get("width") is None:
            self._width = None
        if kwargs.get("height") is None:
            self._height = None

    def _stdout_is_a_tty(self) -> bool:
        # the stream itself, not rich's is_terminal (FORCE_COLOR and TTY_COMPATIBLE make that one True)
        try:
            return bool(self.file.isatty())
        except (AttributeError, ValueError):
            return False

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self._stdout_is_a_tty() and not os.environ.get("COLUMNS"):
            return ConsoleDimensions(160, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = _CliConsole()

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace directory (default: $MLPILOT_HOME or ./mlpilot-workspace).",
        show_default=False,
    ),
]
TableOption = Annotated[str | None, typer.Option("--table", help="Table to read, for a SQL URL source.")]
QueryOption = Annotated[str | None, typer.Option("--query", help="SELECT statement, for a SQL URL source.")]
TimeBudgetOption = Annotated[
    str,
    typer.Option(
        "--time-budget",
        "-b",
        envvar="MLPILOT_TIME_BUDGET",
        metavar="DURATION",
        help="Seconds (90) or a duration (90s, 2m, 1h); default from $MLPILOT_TIME_BUDGET.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


RandomStateOption = Annotated[int | None, typer.Option(
    "--random-state", help="Seed of every random choice: splits, tuner, learners (default 0).")]
SeedOption = Annotated[int | None, typer.Option("--seed", hidden=True, help="Deprecated: use --random-state.")]


def random_state_of(random_state: int | None, seed: int | None) -> int:
    """``--random-state``, or the deprecated ``--seed`` (with a FutureWarning line); both is an error."""
    if seed is None:
        return random_state if random_state is not None else 0
    if random_state is not None:
        raise InvalidParameterError(
            f"Got both --seed {seed} and --random-state {random_state}; --seed is the former name "
            "of --random-state: pass only --random-state."
        )
    console.print("[yellow]! FutureWarning:[/] --seed is deprecated (removed in 0.4); use --random-state.",
                  highlight=False)
    return seed


NTrialsOption = Annotated[int | None, typer.Option(
    "--n-trials", min=0,
    help="Tuner trials after the portfolio (default 10); only with --deterministic, which bounds the run by work. "
         "A timed run tunes until --time-budget ends, so --n-trials without --deterministic is refused.")]


def trials_of(n_trials: int | None, deterministic: bool) -> int:
    """The tuner trials of ``--n-trials``: refused without ``--deterministic``, whose work it bounds."""
    if n_trials is not None and not deterministic:
        raise InvalidParameterError(
            f"--n-trials {n_trials} bounds only a --deterministic run; a timed run tunes until --time-budget ends. "
            "Add --deterministic to run exactly that many trials, or drop --n-trials."
        )
    return 10 if n_trials is None else n_trials


def budget_seconds(value: str) -> float:
    """Seconds of a ``--time-budget`` value (``90``, ``90s``, ``2m``, ``1h``)."""
    from mlpilot.automl import parse_duration

    return parse_duration(value)


_group_workspace: ContextVar[Path | None] = ContextVar("mlpilot_group_workspace", default=None)


def set_group_workspace(path: Path | None) -> None:
    """Remember a command group's ``--workspace`` (``mlpilot -w DIR models list``) for this invocation."""
    _group_workspace.set(path)
EngineOption = Annotated[str, typer.Option(
    "--engine", help="Where the work runs: 'local' (this machine) or 'spark' (Apache Spark: pip install 'mlpilot\\[spark]').")]
SparkMasterOption = Annotated[str | None, typer.Option(
    "--spark-master", envvar="MLPILOT_SPARK_MASTER", show_default=False,
    help="Spark master for --engine spark: local[*] (default), local[N], spark://HOST:PORT, yarn, k8s://URL.")]
DriverMemoryOption = Annotated[str | None, typer.Option(
    "--driver-memory", envvar="MLPILOT_SPARK_DRIVER_MEMORY", show_default=False,
    help="With --engine spark: the memory the driver may use for the search's sample, as Spark writes sizes "
         "(1500m, 4g); default the smaller of 2g and half the free memory. Past it, the sample shrinks and the "
         "final model is fitted on the cluster.")]


def use_spark(engine: str) -> bool:
    """Whether ``--engine`` asks for Spark; any other value than 'local' or 'spark' is refused."""
    if engine not in ("local", "spark"):
        raise InvalidParameterError(f"Unknown --engine {engine!r}. Accepted: local, spark.")
    return engine == "spark"


def open_workspace(path: Path | None) -> Workspace:
    """The workspace of the command's ``--workspace``, else its group's, else ``MLPILOT_HOME`` /
    ``MLPILOT_DB_URL`` (read here, at the edge)."""
    return Workspace.from_env(path if path is not None else _group_workspace.get())


def open_registry(path: Path | None) -> Registry:
    return Registry(open_workspace(path))


def check_output_path(path: Path | None, option: str) -> None:
    """Refuse, before any work, an output file that could not be written.

    The parent directory must exist and be writable, and ``path`` must not be a
    directory. Nothing is created: the file is written only when the work is done.
    """
    if path is None:
        return
    target = path.expanduser()
    parent = target.parent if str(target.parent) else Path(".")
    problem = (
        f"{target} is a directory" if target.is_dir()
        else f"its directory {parent} does not exist" if not parent.exists()
        else f"{parent} is not a directory" if not parent.is_dir()
        else f"{target} exists and is not writable" if target.exists() and not os.access(target, os.W_OK)
        else f"the directory {parent} is not writable" if not os.access(parent, os.W_OK | os.X_OK)
        else None
    )
    if problem is not None:
        raise InvalidParameterError(
            f"Cannot write {option} {path}: {problem}. Pass a file path in an existing, "
            "writable directory (create the directory first); nothing was done."
        )


@contextmanager
def _progress(description: str, counter: ProgressColumn, *, show_from: int) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr fed with (done, total); shown only once ``total`` reaches ``show_from``."""
    progress = Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        counter,
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task(description, total=None, visible=False)
    started = False

    def update(done: int, total: int) -> None:
        nonlocal started
        if not started and total >= show_from:
            progress.start()
            progress.update(task, visible=True)
            started = True
        progress.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if started:
            progress.stop()


def file_progress(description: str) -> AbstractContextManager[Callable[[int, int], None]]:
    """A progress bar fed with (bytes read, total bytes); hidden for files under 8 MiB."""
    return _progress(description, DownloadColumn(), show_from=(8 << 20) + 1)


def step_progress(description: str) -> AbstractContextManager[Callable[[int, int], None]]:
    """A progress bar fed with (steps done, steps in all); shown only for long jobs (1,000+ steps)."""
    return _progress(description, MofNCompleteColumn(), show_from=1_000)


def fmt_score(value: Any) -> str:
    """A score at 4 significant digits (``0.9300``, ``12.35``, ``1,235``); ``—`` for none.

    Examples
    --------
    >>> fmt_score(0.93), fmt_score(12.3456), fmt_score(123456.7), fmt_score(None)
    ('0.9300', '12.35', '123,457', '—')
    """
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:#.4g}".rstrip(".")


def fmt_interval(interval: Any) -> str:
    """``[low, high]`` at 4 significant digits, or an empty string."""
    if not isinstance(interval, list | tuple) or len(interval) != 2 or None in interval:
        return ""
    return f"[{fmt_score(interval[0])}, {fmt_score(interval[1])}]"


def print_json(record: Any) -> None:
    """Print one JSON object on stdout (``--json``)."""
    typer.echo(json.dumps(record, indent=2, default=str))
