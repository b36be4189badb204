"""mlpilot.Client against a real server."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest

import mlpilot
from mlpilot.exceptions import DataError, ModelNotFoundError, ResourceLimitError
from mlpilot.registry import Registry
from mlpilot.serve import ServeSettings, create_app
from tests.serve.conftest import fit_churn_pipeline, register_churn, running_server


@pytest.fixture(scope="module")
def served(churn: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mlpilot.registry import Workspace

    frame = churn.drop(columns=["rownames"])
    registry = Registry(Workspace.open(tmp_path_factory.mktemp("client-ws")))
    register_churn(registry, frame, fit_churn_pipeline(frame))
    app = create_app(ServeSettings(home=registry.workspace.root, api_key="k3y", max_rows=100), registry=registry)
    with running_server(app) as url:
        yield url, frame.drop(columns=["churn"])
    registry.close()


def test_predict_rows_and_frames(served: Any) -> None:
    url, features = served
    with mlpilot.Client(url, api_key="k3y") as client:
        deadline = time.monotonic() + 60
        while not client.health():  # the server preloads models in the background
            assert time.monotonic() < deadline
            time.sleep(0.05)
        frame = features.head(4).copy()
        frame.loc[1, "total_day_minutes"] = float("nan")
        by_frame = client.predict("churn", frame)
        by_rows = client.predict("churn", frame.to_dict("records"))
        one = client.predict("churn", frame.iloc[0].to_dict(), version=1)
        assert by_frame["prediction"].tolist() == by_rows["predictions"]
        assert one["predictions"] == by_frame["prediction"].tolist()[:1]
        assert by_frame["probability_yes"].tolist() == [p["yes"] for p in by_rows["probabilities"]]
        assert by_frame["warnings"].tolist()[1] == "missing_value:total_day_minutes"
        assert list(by_frame.index) == list(frame.index) and by_frame.attrs["version"] == 1
        assert [m["name"] for m in client.models()] == ["churn"]
        assert client.model("churn")["selected"]["task"] == "binary"


def test_errors_become_mlpilot_exceptions(served: Any) -> None:
    url, features = served
    with mlpilot.Client(url, api_key="k3y") as client:
        with pytest.raises(ModelNotFoundError, match="churn"):
            client.predict("chrun", features.head(1))
        with pytest.raises(DataError, match="'state'"):
            client.predict("churn", features.head(2).drop(columns=["state"]))
        with pytest.raises(ResourceLimitError, match="limit is 100"):
            client.predict("churn", features.head(101).to_dict("records"))
    with mlpilot.Client(url) as anonymous, pytest.raises(mlpilot.exceptions.MlpilotError, match="API key"):
        anonymous.predict("churn", features.head(1))


def test_large_frames_go_through_predict_csv_in_chunks(served: Any) -> None:
    """More rows than the server takes per request (100 here): predict.csv, 60 rows at a time, the same answers."""
    url, features = served
    frame = features.iloc[:250].copy()
    frame.index = frame.index + 1000
    frame.loc[1003, "account_length"] = -5
    with mlpilot.Client(url, api_key="k3y", max_rows=100, chunk_rows=60) as client:
        big = client.predict("churn", frame)
        small = pd.concat([client.predict("churn", frame.iloc[i:i + 100]) for i in range(0, 250, 100)])
    assert list(big.index) == list(frame.index) and big.attrs["version"] == 1
    assert big["prediction"].tolist() == small["prediction"].tolist()
    assert big["probability_yes"].round(9).tolist() == small["probability_yes"].round(9).tolist()
    assert big.loc[1003, "warnings"] == small.loc[1003, "warnings"] == "out_of_range:account_length"
    assert (big["warnings"] == "").sum() == 249
