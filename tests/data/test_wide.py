"""Wide tables take the block paths; they must give exactly what the per-column paths give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpilot.data import infer_schema, profile
from mlpilot.data._profile import _n_duplicate_rows
from mlpilot.data._schema import infer_column


def _wide(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = ["alpha beta gamma delta epsilon", "the quick brown fox jumps over", "lorem ipsum dolor sit amet"]
    cols: dict[str, object] = {}
    for j in range(60):
        f = rng.normal(size=n)
        f[rng.random(n) < 0.1] = np.nan
        g = rng.integers(0, 5, n).astype(float)
        g[::7] = np.nan
        c = rng.choice(["a", "b", "c"], n).astype(object)
        c[::9] = None
        cols |= {
            f"i{j}": rng.integers(0, 3 + j * 10, n), f"f{j}": f, f"g{j}": g, f"cat{j}": c,
            f"two{j}": rng.choice(["x", "y"], n), f"txt{j}": [f"{rng.choice(words)} {i}" for i in range(n)],
            f"date{j}": pd.date_range("2020-01-01", periods=n).strftime("%Y-%m-%d"),
            f"uid{j}": [f"u{i:05d}" for i in range(n)], f"many{j}": [f"v{i % 110}" for i in range(n)],
            f"mixed{j}": [1 if i % 2 else "s" for i in range(n)],
        }
    cols |= {"row_id": np.arange(n), "counter": np.arange(n) + 5, "const": np.ones(n), "empty": np.full(n, np.nan),
             "inf": np.r_[np.inf, np.inf, rng.normal(size=n - 2)], "big": np.r_[2.0**60, np.zeros(n - 1)]}
    return pd.DataFrame(cols)


@pytest.mark.parametrize(("n", "strings"), [(120, False), (120, True), (20, False)])
def test_block_schema_equals_per_column_schema(n: int, strings: bool) -> None:
    frame = _wide(n, seed=n)
    if strings:
        frame = frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object and not c.startswith("mixed")})
    schema = infer_schema(frame)
    assert schema.columns == tuple(infer_column(str(c), frame[c]) for c in frame.columns)
    assert {c.role for c in schema.columns} >= {"numeric", "categorical", "datetime", "text", "id", "constant"}


def test_duplicates_of_a_wide_table_match_pandas() -> None:
    frame = _wide(40, seed=1)
    frame = pd.concat([frame, frame.iloc[[3, 5, 5]]], ignore_index=True)
    frame = pd.concat([frame] + [frame[["f0"]].rename(columns={"f0": f"extra{k}"}) for k in range(400)], axis=1)
    assert frame.shape[1] >= 1_000
    assert _n_duplicate_rows(frame) == int(frame.duplicated().sum()) == 3


def test_a_wide_short_table_profiles_its_strings() -> None:
    frame = _wide(60, seed=2)
    report = profile(frame, infer_schema(frame))
    cat = next(c for c in report.columns if c.name == "cat0")
    assert dict(cat.top_values) == frame["cat0"].value_counts().to_dict()
    assert cat.n_missing == int(frame["cat0"].isna().sum())
    empty = next(c for c in report.columns if c.name == "empty")
    assert empty.top_values == () and empty.mean is None


def test_the_html_report_of_a_wide_table_charts_a_bounded_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from mlpilot.data import _report, render_profile_html

    # The bound is the module's constant (200); a smaller one tests the same rule at a tenth of the charts.
    MAX_CHARTS = 16
    monkeypatch.setattr(_report, "MAX_CHARTS", MAX_CHARTS)
    rng = np.random.default_rng(5)
    y = rng.choice(["no", "yes"], 80)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=80) for i in range(MAX_CHARTS + 10)})
    frame["leak"] = (y == "yes").astype(float)
    frame["y"] = y
    report = profile(frame, infer_schema(frame, target="y"))
    page = render_profile_html(frame, report, title="wide")
    charted = re.findall(r"<img alt='distribution of ([^']+)'", page)
    assert charted == [f"x{i}" for i in range(MAX_CHARTS)] + ["leak", "y"]
    assert f"the table above lists all {MAX_CHARTS + 12:,}" in page
    assert page.count("<tr><td>x") == MAX_CHARTS + 10  # every column is in the table
