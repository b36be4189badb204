"""What every command shares: plain help, one --time-budget, --json for tables, names kept whole, 4 digits."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.cli._train import print_leaderboard
from mlpilot.registry import Registry, Workspace

runner = CliRunner()
LONG = "lightgbm_extra_trees_with_a_long_descriptive_name"


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _command_paths(sub, (*prefix, name))
    return paths


def test_help_has_no_type_noise() -> None:
    paths = _command_paths(typer.main.get_command(app))
    assert ("models", "compare") in paths and ("recommend", "train") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path
        assert not re.search(r"\{[a-z_]+\}", result.output), (path, result.output)


@pytest.mark.parametrize("command", [["train", "nowhere.csv", "--target", "y"],
                                     ["recommend", "train", "nowhere.csv", "--user", "u", "--item", "i"],
                                     ["demo"]])
def test_time_budget_forms_are_the_same_everywhere(command: list[str], tmp_path: Path) -> None:
    bad = runner.invoke(app, [*command, "--time-budget", "soon", "-w", str(tmp_path)])
    assert bad.exit_code == 2 and "'90s', '2m', '1h'. Got 'soon'" in bad.output
    from_env = runner.invoke(app, [*command, "-w", str(tmp_path)], env={"MLPILOT_TIME_BUDGET": "0s"})
    assert from_env.exit_code == 2 and "must be positive" in from_env.output
    assert not list(tmp_path.glob("snapshots/*"))  # refused before any work


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    reg = Registry(Workspace.open(tmp_path))
    rows = [{"rank": i + 1, "name": LONG if i == 0 else f"model_{i}", "cv_rmse": 12.3456 + i, "cv_std": 0.5,
             "holdout_rmse": 1234.5678 + i, "holdout_ci": [1200.0, 1300.0], "fit_seconds": 1.0}
            for i in range(20)]
    reg.register_model("prices", {"w": 1}, kind="tabular", metrics={"holdout_rmse": 1234.5678},
                       headline_metric="holdout_rmse", aliases=("champion",),
                       info={"leaderboard": rows, "metric": "rmse", "task": "regression", "tests": {}})
    reg.close()
    return tmp_path


def test_tables_keep_names_whole_at_four_digits_and_say_what_is_not_shown(
        workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # piped, with no $COLUMNS (a test worker may inherit one: unset here), the table is 160 wide
    result = runner.invoke(app, ["leaderboard", "prices", "-w", str(workspace)], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout and LONG in re.sub(r"[\s│]", "", result.stdout)
    assert "12.35 ± 0.5000" in result.stdout and "1,235 [1,200, 1,300]" in result.stdout
    print_leaderboard(json.loads(runner.invoke(app, ["leaderboard", "prices", "--json", "-w", str(workspace)]).stdout)
                      ["leaderboard"], "rmse", title="t", limit=15)
    assert "5 more candidates not shown" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["-w", "{ws}", "models", "list", "--json"], ["models", "-w", "{ws}", "list", "--json"],
                                  ["models", "list", "--json", "-w", "{ws}"], ["models", "-w", "{ws}", "--json"]])
def test_every_group_takes_the_workspace(args: list[str], workspace: Path) -> None:
    result = runner.invoke(app, [a.format(ws=workspace) for a in args])
    assert result.exit_code == 0, result.output
    assert [m["name"] for m in json.loads(result.stdout)["models"]] == ["prices"]


def test_json_of_leaderboard_and_show(workspace: Path) -> None:
    board = json.loads(runner.invoke(app, ["leaderboard", "prices", "--json", "-w", str(workspace)]).stdout)
    assert board["model"] == "prices:1" and len(board["leaderboard"]) == 20 and board["leaderboard"][0]["name"] == LONG
    shown = json.loads(runner.invoke(app, ["models", "show", "prices", "--json", "-w", str(workspace)]).stdout)
    assert shown["metrics"]["holdout_rmse"] == 1234.5678


def test_a_piped_console_is_160_columns_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from mlpilot.cli._common import _CliConsole

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich's is_terminal says yes; the pipe still decides
    assert _CliConsole(file=io.StringIO()).size.width == 160
    monkeypatch.setenv("COLUMNS", "100")
    assert _CliConsole(file=io.StringIO()).size.width == 100
    # the width is read when it prints, not pinned when the console is made (rich pins $COLUMNS then)
    monkeypatch.setenv("COLUMNS", "80")
    made_at_80 = _CliConsole(file=io.StringIO())
    monkeypatch.setenv("COLUMNS", "120")
    assert made_at_80.size.width == 120
    monkeypatch.delenv("COLUMNS")
    assert made_at_80.size.width == 160
    assert _CliConsole(file=io.StringIO(), width=90).size.width == 90  # a width given is kept
