"""Loading a version: the fast-path check asks the library once per row, and a restart reuses its record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlpilot.registry import Registry, Workspace
from mlpilot.runtime import _verified, _verify, load_version
from mlpilot.runtime._compile import compile_model
from mlpilot.runtime._compile_steps import FeatureEncoder
from mlpilot.runtime._loaded import _loaded
from tests.serve.conftest import register_churn


@pytest.fixture(scope="module")
def hgb(churn_frame: pd.DataFrame) -> Pipeline:
    """A model the compiler leaves to the library (histogram boosting) behind a compiled encoder."""
    frame = churn_frame.head(600)
    X, y = frame.drop(columns=["churn"]), frame["churn"]
    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
                            remainder="passthrough")
    model = HistGradientBoostingClassifier(max_iter=15, random_state=0)
    return Pipeline([("pre", pre), ("model", model)]).fit(X, y)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the rows histogram boosting's ``predict_proba`` is called on, call by call (until the test ends)."""
    calls: list[int] = []
    real = HistGradientBoostingClassifier.predict_proba

    def counted(self: HistGradientBoostingClassifier, X: Any) -> Any:
        calls.append(len(X))
        return real(self, X)

    monkeypatch.setattr(HistGradientBoostingClassifier, "predict_proba", counted)
    return calls


def test_the_library_scores_each_sample_row_once_and_the_one_row_path_is_still_checked(
    tmp_path: Path, churn_frame: pd.DataFrame, hgb: Pipeline, monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = Registry(Workspace.open(tmp_path))
    loaded = _loaded(hgb, register_churn(registry, churn_frame, hgb), 0.0, fast_path=False)
    assert loaded.schema is not None
    compiled = compile_model(hgb, loaded.schema, with_proba=True)
    assert not compiled.inline  # histogram boosting is the library's
    n_rows = len(_verify.sample_rows(loaded.schema, compiled.probe_values()))
    calls = _counting(monkeypatch)
    assert _verify.verify(compiled, loaded) is None
    # one batch (and the bisection of the rows both paths refuse), not one call per row as before
    assert sum(1 for n in calls if n == 1) <= 8 < n_rows and len(calls) <= 16, calls

    # the one-row encoders are still checked on every row: one that is off for one value is caught
    real_row = FeatureEncoder.row

    def off(self: FeatureEncoder, values: Any) -> list[float]:
        row = real_row(self, values)
        return [v * 3 + 7 for v in row] if values.get("total_day_calls") == 0 else row

    monkeypatch.setattr(FeatureEncoder, "row", off)
    problem = _verify.verify(compile_model(hgb, loaded.schema, with_proba=True), loaded)
    assert problem is not None and "scored alone" in problem and "total_day_calls" in problem, problem


def test_a_restart_reuses_the_recorded_verification_until_the_libraries_change(
    tmp_path: Path, churn_frame: pd.DataFrame, hgb: Pipeline, monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = Registry(Workspace.open(tmp_path))
    mv = register_churn(registry, churn_frame, hgb)
    first = load_version(registry, mv)
    assert first.compiled is not None, first.fast_path
    records = list((tmp_path / "verified").glob("*.json"))
    assert len(records) == 1

    verified: list[str] = []
    real_verify = _verify.verify

    def counted(*args: Any, **kwargs: Any) -> str | None:
        verified.append("verify")
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(_verify, "verify", counted)
    again = load_version(registry, mv)  # the same artifact, libraries and code: the record is used
    assert verified == [] and again.compiled is not None and again.fast_path == first.fast_path
    rows = churn_frame.drop(columns=["churn"]).head(3).to_dict("records")
    columns = {name: [r[name] for r in rows] for name in again.feature_names}
    np.testing.assert_array_equal(again.compiled.predict(columns, 3)[1], hgb.predict_proba(pd.DataFrame(rows)))

    monkeypatch.setattr(_verified, "_environment", lambda: "scikit-learn=99.0")  # a library upgrade
    upgraded = load_version(registry, mv)
    assert verified == ["verify"] and upgraded.compiled is not None
    assert len(list((tmp_path / "verified").glob("*.json"))) == 2

    records[0].write_text("{not json")  # a damaged record is ignored: verified again
    monkeypatch.undo()
    monkeypatch.setattr(_verify, "verify", counted)
    assert load_version(registry, mv).compiled is not None and verified == ["verify", "verify"]
