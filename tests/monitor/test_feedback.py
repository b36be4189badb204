"""Labels that arrive later, through a real ``mlpilot serve`` (API), the CLI and Python; a kill -9 of the server."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app
from mlpilot.exceptions import ColumnNotFoundError, EmptyDataError, ModelNotFoundError
from mlpilot.monitor import (
    labelled_predictions,
    read_feedback,
    read_prediction_log,
    record_feedback,
)
from mlpilot.registry import Registry, Workspace
from tests._sharing import once_per_run
from tests.serve.conftest import fit_churn_pipeline, free_port, register_churn


def _serve(root: Path, port: int) -> None:
    os.environ.update({"MLPILOT_HOME": str(root), "MLPILOT_LOG_FLUSH_INTERVAL": "0.05"})
    app(["serve", "--port", str(port), "--keep", "30d", "--log-level", "warning"])


@pytest.fixture(scope="module")
@once_per_run
def served(tmp_path_factory: pytest.TempPathFactory, churn: pd.DataFrame) -> dict[str, object]:
    """A real ``mlpilot serve`` given traffic, then killed with SIGKILL; what it answered."""
    root = tmp_path_factory.mktemp("served") / "ws"
    frame = churn.drop(columns=["rownames"]).head(600)
    registry = Registry(Workspace.open(root))
    register_churn(registry, frame, fit_churn_pipeline(frame))
    registry.close()
    port = free_port()
    # a forked child runs the CLI's `mlpilot serve` as a user's shell would (without re-importing everything)
    proc = multiprocessing.get_context("fork").Process(target=_serve, args=(root, port), daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    rows = frame.drop(columns=["churn"]).head(8).to_dict("records")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.is_alive(), f"mlpilot serve exited with {proc.exitcode}"
            assert time.monotonic() < deadline, "mlpilot serve did not become ready"
            time.sleep(0.2)
        with httpx.Client(base_url=url, timeout=30) as http:
            answers = [http.post("/v1/models/churn/predict", json={"rows": rows[i:i + 1]}).json()
                       for i in range(6)]
            pair = http.post("/v1/models/churn/predict", json={"rows": rows[6:8]},
                             headers={"X-Request-ID": "client-pair"})
            feedback = http.post("/v1/models/churn/feedback", json=[
                {"request_id": answers[0]["request_id"], "label": "yes"},
                {"request_id": answers[1]["request_id"], "label": answers[1]["predictions"][0]},
                {"request_id": answers[1]["request_id"], "label": "no"},
                {"request_id": "client-pair", "row": 1, "label": "no"},
                {"request_id": "made-up", "label": "no"},
                {"request_id": answers[2]["request_id"], "label": 1.5},
            ])
            # everything answered is written within the flush interval; then the kill
            deadline = time.monotonic() + 30
            while "mlpilot_prediction_log_written_total 8" not in http.get("/metrics").text:
                assert time.monotonic() < deadline, "the log did not catch up"
                time.sleep(0.05)
            metrics = http.get("/metrics").text
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    return {"root": root, "answers": answers, "pair": pair, "feedback": feedback, "metrics": metrics}


def test_request_ids_and_api_feedback_through_a_real_server(served: dict[str, object]) -> None:
    answers = served["answers"]
    assert isinstance(answers, list) and len({a["request_id"] for a in answers}) == 6
    pair = served["pair"]
    assert isinstance(pair, httpx.Response) and pair.headers["x-request-id"] == "client-pair"
    feedback = served["feedback"]
    assert isinstance(feedback, httpx.Response) and feedback.status_code == 200
    body = feedback.json()
    assert body["accepted"] == 3
    assert body["counts"] == {"accepted": 3, "unknown_ids": 1, "duplicates": 1, "wrong_type": 1}
    assert body["unknown_ids"][0]["request_id"] == "made-up"
    assert "Accepted 3 labels" in body["message"] and "1 duplicate" in body["message"]
    assert "mlpilot_prediction_log_dropped_total 0" in str(served["metrics"])


def test_a_killed_server_loses_no_written_row_and_its_segment_is_compacted_later(served: dict[str, object]) -> None:
    root = served["root"]
    assert isinstance(root, Path)
    log = read_prediction_log(root, "churn")  # the killed server's segment, read as it is
    assert len(log) == 8 and not log.duplicated(["request_id", "row"]).any()
    assert list(log.loc[log["request_id"] == "client-pair", "row"]) == [0, 1]
    segments = list((root / "logs" / "predictions" / "churn").glob("*.jsonl"))
    assert len(segments) == 1  # its lock died with it: any later writer or reader may compact it
    labelled = labelled_predictions(root, "churn")
    assert len(labelled) == 3 and set(labelled["label"]) <= {"yes", "no"}
    assert {"prediction", "label", "received_at", "account_length"} <= set(labelled.columns)


def test_cli_feedback_from_a_file(served: dict[str, object], tmp_path: Path) -> None:
    root = served["root"]
    answers = served["answers"]
    assert isinstance(root, Path) and isinstance(answers, list)
    source = tmp_path / "labels.csv"
    pd.DataFrame({
        "rid": [answers[3]["request_id"], answers[4]["request_id"], answers[0]["request_id"], "nope", "client-pair"],
        "truth": ["no", "yes", "yes", "no", "no"],
        "r": [0, 0, 0, 0, 0],
    }).to_csv(source, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["feedback", "churn", str(source), "--id", "rid", "--label", "truth", "--row", "r",
                                 "--json", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["accepted"] == 3 and report["counts"]["duplicates"] == 1 and report["counts"]["unknown_ids"] == 1
    assert len(read_feedback(root, "churn")) == 6
    again = runner.invoke(app, ["feedback", "churn", str(source), "--id", "rid", "--label", "truth",
                                "--workspace", str(root)])
    assert again.exit_code == 2 and "Accepted 0 labels" in again.output  # all known or unknown: nothing new
    missing = runner.invoke(app, ["feedback", "churn", str(source), "--id", "request", "--label", "truth",
                                  "--workspace", str(root)])
    assert missing.exit_code == 2 and "'request'" in missing.output and "rid" in missing.output


def test_bad_labels_are_clear(served: dict[str, object]) -> None:
    root = served["root"]
    with pytest.raises(ColumnNotFoundError, match="label"):
        record_feedback(root, "churn", pd.DataFrame({"request_id": ["a"]}))
    with pytest.raises(EmptyDataError, match="no rows"):
        record_feedback(root, "churn", pd.DataFrame({"request_id": [], "label": []}))
    with pytest.raises(ModelNotFoundError, match="No model named 'ghost'"):
        record_feedback(root, "ghost", pd.DataFrame({"request_id": ["a"], "label": ["no"]}))
    result = record_feedback(root, "churn", pd.DataFrame({"request_id": [None, "client-pair"], "label": ["no", None],
                                                          "row": [0, -1]}))
    assert result.accepted == 0 and result.counts["unknown_ids"] == 1 and result.counts["wrong_type"] == 1
    assert "row must be a whole number" in result.wrong_type[0]["reason"]
