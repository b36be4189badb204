"""``mlpilot train``, ``leaderboard`` and ``predict`` as a user runs them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

from mlpilot.cli import app
from tests._sharing import once_per_run

runner = CliRunner()
FAST = ["--deterministic", "--n-trials", "0", "--families", "lightgbm,linear"]


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def churn_csv(tmp_path_factory: pytest.TempPathFactory, churn: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("data") / "churn.csv"
    churn.sample(600, random_state=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
@once_per_run
def trained(churn_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """A workspace where ``mlpilot train`` registered churn:1, with the run's output (one training per module)."""
    root = tmp_path_factory.mktemp("trained")
    report = root / "report.html"
    with pytest.MonkeyPatch.context() as mp:  # what the per-test _isolated_env does, before it runs
        for key in ("MLPILOT_DB_URL", "MLPILOT_API_KEY"):
            mp.delenv(key, raising=False)
        mp.setenv("MLPILOT_HOME", str(root / "default-workspace"))
        result = runner.invoke(app, ["train", str(churn_csv), "--target", "churn", "-w", str(root / "ws"), *FAST,
                                     "--report", str(report)])
    assert result.exit_code == 0, result.output
    return root, result


def test_train_leaderboard_predict(churn_csv: Path, trained: tuple[Path, Result], tmp_path: Path) -> None:
    root, result = trained
    ws, report = str(root / "ws"), root / "report.html"
    out = flat(result.output)
    assert "Registered churn:1 as champion" in out and "vs dummy" in out and "Holdout roc_auc" in out
    # a deterministic run is bounded by its trials: no time budget is shown, in the CLI or the report
    assert "(0 tuner trials after the portfolio, no time limit)" in out and "budget 60s" not in out
    assert report.read_text().startswith("<!doctype html>")
    assert "<li>budget: 0 tuner trials after the portfolio, no time limit</li>" in report.read_text()

    board = runner.invoke(app, ["leaderboard", "churn", "-w", ws])
    assert board.exit_code == 0, board.output
    assert "churn:1 (champion)" in flat(board.output) and "dummy" in board.output
    assert runner.invoke(app, ["leaderboard", "-w", ws]).exit_code == 0

    scored = tmp_path / "scored.csv"
    predicted = runner.invoke(app, ["predict", "churn", str(churn_csv), "-o", str(scored), "-w", ws])
    assert predicted.exit_code == 0, predicted.output
    frame = pd.read_csv(scored)
    assert {"prediction", "probability_no", "probability_yes"} <= set(frame.columns) and len(frame) == 600


def test_second_worse_model_is_a_candidate_and_the_cli_says_why(
        churn_csv: Path, trained: tuple[Path, Result], tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(trained[0] / "ws", ws)  # churn:1, trained by the CLI (this test adds a version)
    # a weaker family on the same data and holdout
    from mlpilot.automl import train
    from mlpilot.registry import Workspace

    second = train(str(churn_csv), "churn", workspace=Workspace.open(ws), deterministic=True, n_trials=0,
                   families=("knn",), report=False)
    assert not second.champion and "kept as a candidate" in second.champion_reason


def test_errors_are_clean(tmp_path: Path, churn_csv: Path) -> None:
    ws = str(tmp_path / "ws")
    bad = runner.invoke(app, ["train", str(churn_csv), "--target", "chrun", "-w", ws])
    assert bad.exit_code == 2
    assert "Did you mean 'churn'" in flat(bad.output) and "Traceback" not in bad.output
    budget = runner.invoke(app, ["train", str(churn_csv), "--target", "churn", "-w", ws, "--time-budget", "soon"])
    assert budget.exit_code == 2 and "duration such as" in flat(budget.output)
    limit = runner.invoke(app, ["train", str(churn_csv), "--target", "churn", "-w", ws, "--max-predict-ms", "-5"])
    assert limit.exit_code == 2 and "max_predict_ms: Input should be greater than 0" in flat(limit.output)
    for command in (["train", str(churn_csv), "--target", "churn"], ["watch", "churn", "--source", str(churn_csv), "--once"]):
        trials = runner.invoke(app, [*command, "-w", ws, "--n-trials", "3"])
        assert trials.exit_code == 2, trials.output  # refused, not silently ignored
        assert "--n-trials 3 bounds only a --deterministic run" in flat(trials.output)
    missing = runner.invoke(app, ["leaderboard", "nope", "-w", ws])
    assert missing.exit_code == 2
    none = runner.invoke(app, ["leaderboard", "-w", ws])
    assert none.exit_code == 2 and "mlpilot train" in flat(none.output)


def test_leak_warning_is_shown(tmp_path: Path, churn: pd.DataFrame) -> None:
    path = tmp_path / "leaky.csv"
    churn.sample(400, random_state=2).assign(answer=lambda d: d["churn"]).to_csv(path, index=False)
    ws = str(tmp_path / "ws")
    result = runner.invoke(app, ["train", str(path), "-t", "churn", "-w", ws, *FAST, "--drop-leaks"])
    assert result.exit_code == 0, result.output
    assert "DataQualityWarning" in result.output and "'answer'" in result.output


def _recorded_random_state(ws: str, ref: str) -> int:
    from mlpilot.registry import Registry, Workspace

    registry = Registry(Workspace.open(ws))
    try:
        return int(registry.get_version(ref).info["config"]["random_state"])
    finally:
        registry.close()


def test_random_state_option_and_the_deprecated_seed(churn_csv: Path, tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    fast = ["--deterministic", "--n-trials", "0", "--families", "linear", "-w", ws]
    new = runner.invoke(app, ["train", str(churn_csv), "-t", "churn", "--random-state", "5", *fast])
    assert new.exit_code == 0, new.output
    assert "deprecated" not in new.output and _recorded_random_state(ws, "churn:1") == 5
    old = runner.invoke(app, ["train", str(churn_csv), "-t", "churn", "--seed", "5", *fast])
    assert old.exit_code == 0, old.output
    assert "--seed is deprecated (removed in 0.4); use --random-state" in flat(old.output)
    assert _recorded_random_state(ws, "churn:2") == 5
    both = runner.invoke(app, ["train", str(churn_csv), "-t", "churn", "--seed", "1", "--random-state", "2", *fast])
    assert both.exit_code == 2 and "Traceback" not in both.output
    assert "Got both --seed 1 and --random-state 2" in flat(both.output)
    helped = runner.invoke(app, ["train", "--help"])
    assert "--random-state" in helped.output and "--seed" not in helped.output
