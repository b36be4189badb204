"""A rich progress bar for the search, shown only when ``show_progress`` is on (the CLI)."""

from __future__ import annotations

from typing import Any


class SearchProgress:
    """Context manager yielding a callback that updates a rich progress bar on stderr."""

    def __init__(self, budget: float, *, deterministic: bool = False, n_trials: int = 0) -> None:
        self.budget = budget
        self.deterministic = deterministic
        self.n_trials = n_trials

    def __enter__(self) -> Any:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]search[/]"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("/ {task.fields[budget]}"),
            TextColumn("trials {task.fields[trials]}"),
            TextColumn("best {task.fields[best]}"),
            TextColumn("[dim]{task.fields[current]}"),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        # a deterministic search is bounded by its trials, not by the clock
        budget = f"no time limit, {self.n_trials} tuner trials" if self.deterministic else f"{self.budget:.0f}s"
        self._task = self._progress.add_task(
            "search", total=None if self.deterministic else self.budget,
            budget=budget, trials=0, best="—", current="",
        )
        return self.update

    def update(self, event: dict[str, Any]) -> None:
        best = event.get("best_score")
        self._progress.update(
            self._task,
            completed=None if self.deterministic else min(event["elapsed"], self.budget),
            trials=event["n_trials"],
            best="—" if best is None else f"{best:.4f} ({event.get('best_name')})",
            current=event.get("current", ""),
        )

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()
