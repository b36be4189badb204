"""The compiler builds a `TabularPreprocessor`'s chains from its ``compiled_parts()`` hook only."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpilot.data import infer_schema
from mlpilot.features import TabularPreprocessor
from mlpilot.features._parts import LookupPart, NumberPart, OneHotPart, PreprocessorParts
from mlpilot.runtime._compile_steps import CompileError, FeatureEncoder
from mlpilot.runtime._compile_transformers import compile_tabular_preprocessor


@pytest.fixture(scope="module")
def table(churn: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """mlc_churn's features with a few missing and infinite values, and its target."""
    frame = churn.drop(columns=["rownames", "churn"]).head(400).copy()
    frame.loc[frame.index[:7], "total_day_minutes"] = np.nan
    frame.loc[frame.index[7:9], "total_eve_minutes"] = np.inf
    frame.loc[frame.index[9:12], "area_code"] = None
    return frame, (churn["churn"].head(400) == "yes").to_numpy(dtype=int)


def _encoded(pre: Any, frame: pd.DataFrame) -> np.ndarray:
    schema = infer_schema(frame)
    encoder = FeatureEncoder(compile_tabular_preprocessor(pre, schema))
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    batch = encoder.transform(rows, len(rows))
    np.testing.assert_array_equal(np.array(encoder.row(rows[0])), batch[0])  # the one-row form agrees
    return batch


@pytest.mark.parametrize("encoding", ["ordinal", "onehot"])
def test_the_declared_parts_compute_what_transform_computes(table: tuple[pd.DataFrame, np.ndarray],
                                                            encoding: str) -> None:
    frame, y = table
    # state (a target-encoded categorical) beside numbers and codes
    pre = TabularPreprocessor(encoding=encoding, target_encoding_min=3).fit(frame, y)
    declared = pre.compiled_parts()
    assert declared.unsupported is None and declared.n_outputs == pre.n_features_out_
    if encoding == "ordinal":
        assert any(isinstance(p, LookupPart) and p.column == "state" for p in declared.parts[1:]), \
            "the mean-target column of 'state' is declared"
    else:
        assert any(isinstance(p, OneHotPart) for p in declared.parts)
    shown = pd.concat([frame.head(40), frame.head(3).assign(state="ZZ", area_code="unseen")])  # unseen values
    np.testing.assert_allclose(_encoded(pre, shown), pre.transform(shown), rtol=0, atol=1e-12)


def test_the_compiler_reads_nothing_but_the_hook(table: tuple[pd.DataFrame, np.ndarray],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    frame, y = table
    pre = TabularPreprocessor(encoding="ordinal", target_encoding_min=10**6).fit(frame, y)
    parts = pre.compiled_parts()
    at = next(i for i, p in enumerate(parts.parts) if isinstance(p, NumberPart) and p.column == "total_day_minutes")
    changed = list(parts.parts)
    changed[at] = dataclasses.replace(parts.parts[at], fill=-1.0, centre=1.0, scale=2.0)  # type: ignore[arg-type]
    monkeypatch.setattr(pre, "compiled_parts", lambda: PreprocessorParts(changed, parts.n_outputs))
    encoded = _encoded(pre, frame.head(9))  # its first 7 values are missing
    expected = (frame["total_day_minutes"].head(9).fillna(-1.0).to_numpy() - 1.0) / 2.0
    np.testing.assert_allclose(encoded[:, at], expected)
    assert np.isnan(pre.transform(frame.head(9))[:7, at]).all()  # the preprocessor itself is unchanged
    monkeypatch.setattr(pre, "compiled_parts", lambda: PreprocessorParts(n_outputs=parts.n_outputs,
                                                                       unsupported="datetime column 'when'"))
    with pytest.raises(CompileError, match="datetime column 'when'"):
        _encoded(pre, frame.head(12))
    monkeypatch.setattr(pre, "compiled_parts", lambda: PreprocessorParts(parts.parts[1:], parts.n_outputs))
    with pytest.raises(CompileError, match=f"has {parts.n_outputs} outputs, compiled {parts.n_outputs - 1}"):
        _encoded(pre, frame.head(12))


def test_date_and_text_columns_are_declared_unsupported() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "when": pd.date_range("2024-01-01", periods=4)})
    declared = TabularPreprocessor(roles={"x": "numeric", "when": "datetime"}).fit(frame).compiled_parts()
    assert declared.unsupported == "datetime column 'when'" and declared.parts == []
