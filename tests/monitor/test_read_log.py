"""``read_prediction_log`` takes what ``train(workspace=...)`` takes: a Workspace, a str or a Path."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpilot.exceptions import InvalidParameterError, SourceNotFoundError
from mlpilot.monitor import PredictionLog, read_prediction_log
from mlpilot.registry import Workspace


@pytest.fixture
def logged(workspace: Workspace) -> Workspace:
    log = PredictionLog(workspace, flush_interval=0.01).start()
    log.log("churn", 1, [{"x": 1.0}, {"x": 1e9}], ["no", "yes"], latency_ms=1.0, warnings=["", "out_of_range:x"])
    log.log("other", 2, [{"x": 2.0}], ["no"], latency_ms=1.0)
    log.close()
    return workspace


@pytest.mark.parametrize("kind", [Workspace, str, Path])
def test_workspace_path_or_str(logged: Workspace, kind: type) -> None:
    where = logged if kind is Workspace else kind(logged.root)
    frame = read_prediction_log(where, "churn")
    assert frame["prediction"].tolist() == ["no", "yes"] and frame["x"].tolist() == [1.0, 1e9]
    assert frame["warnings"].tolist() == ["", "out_of_range:x"]
    assert len(read_prediction_log(where)) == 3
    assert read_prediction_log(where, "other")["warnings"].tolist() == [""]


def test_missing_directory_and_wrong_type_are_clear(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SourceNotFoundError, match=r"No mlpilot workspace at .*nowhere.*does not exist"):
        read_prediction_log(missing, "churn")
    assert not missing.exists()  # reading never creates a workspace
    with pytest.raises(InvalidParameterError, match=r"must be a Workspace or the path.*Got a int"):
        read_prediction_log(3, "churn")  # type: ignore[arg-type]
