"""Output paths are checked before any work: exit 2, a clear message, nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpilot.cli import app

runner = CliRunner()


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    path.write_text("y,x\n" + "".join(f"{i % 2},{i * 7 % 13}\n" for i in range(60)))
    return path


def _bad_paths(tmp_path: Path) -> list[tuple[Path, str]]:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    return [
        (tmp_path / "nonexistent" / "dir" / "out", "does not exist"),
        (tmp_path / "a-file" / "out", "is not a directory"),
        (tmp_path / "a-dir", "is a directory"),
    ]


@pytest.mark.parametrize("command", ["profile", "train", "predict"])
def test_unwritable_output_is_refused_before_the_work(tmp_path: Path, command: str) -> None:
    data = _csv(tmp_path)
    ws = tmp_path / "ws"
    option = {"profile": "--html", "train": "--report", "predict": "--output"}[command]
    for bad, reason in _bad_paths(tmp_path):
        args = {
            "profile": ["profile", str(data), "--target", "y"],
            "train": ["train", str(data), "--target", "y", "--deterministic", "--n-trials", "0", "--families", "linear"],
            "predict": ["predict", "nosuchmodel", str(data)],
        }[command]
        result = runner.invoke(app, [*args, option, str(bad), "-w", str(ws)])
        assert result.exit_code == 2, result.output
        text = flat(result.stderr)
        assert f"Cannot write {option} {bad}: " in text and reason in text, text
        assert "Traceback" not in result.output
        # refused first: no snapshot, no model, not even the model lookup of predict
        assert not ws.exists() or not any(ws.rglob("*.parquet")), list(ws.rglob("*"))
        assert "nosuchmodel" not in text
        assert not (tmp_path / "nonexistent").exists()


def test_a_writable_output_path_is_accepted(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["profile", str(_csv(tmp_path)), "--html", str(html), "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    assert html.read_text().startswith("<")
