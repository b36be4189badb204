"""The watch loop on real sources that change: a SQLite table appended to, a folder of Parquet files that grows."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.automl import train
from mlpilot.autopilot import WatchConfig, run_step, watch
from mlpilot.cli._app import app as app_cli
from mlpilot.registry import Registry, Workspace
from tests._sharing import once_per_run

FAST: dict[str, Any] = {"deterministic": True, "n_trials": 0, "families": ("linear",)}


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    """The real breast-cancer table (569 rows) bundled with scikit-learn, in a shuffled fixed order."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame.iloc[:, [0, 1, 2, 3, 6, 7, 20, 21, 22, 27, 30]]  # ten features and the target


@pytest.fixture(scope="module")
@once_per_run
def strong(cancer: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose v1 was trained by a first watch step on the first 200 rows (copied by each test)."""
    root = tmp_path_factory.mktemp("strong") / "ws"
    assert watch("bc", cancer.iloc[:200], workspace=Workspace.open(root), target="target", **FAST).champion == 1
    return root


@pytest.fixture(scope="module")
@once_per_run
def weak(cancer: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose v1 knows one weak feature of the first 150 rows: a model on every feature is better."""
    root = tmp_path_factory.mktemp("weak") / "ws"
    train(cancer.iloc[:150][["mean_texture", "target"]], "target", name="bc", workspace=Workspace.open(root),
          report=False, **FAST)
    return root


def _copy(template: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(template, tmp_path / "ws-copy")
    return Workspace.open(tmp_path / "ws-copy")


def _append(db: Path, rows: pd.DataFrame) -> None:
    with sqlite3.connect(db) as con:
        rows.to_sql("t", con, index=False, if_exists="append")


def _events(workspace: Workspace, name: str) -> list[dict[str, Any]]:
    registry = Registry(workspace)
    try:
        return registry.list_events(name=name)
    finally:
        registry.close()


def test_sqlite_table_that_grows_no_retrain_then_kept(cancer: pd.DataFrame, strong: Path, tmp_path: Path) -> None:
    workspace = _copy(strong, tmp_path)  # v1: promoted by a first step on the first 200 rows
    db = tmp_path / "src.db"
    _append(db, cancer.iloc[:200])
    url = f"sqlite:///{db}"
    same = watch("bc", url, table="t", workspace=workspace, **FAST)
    assert same.decision == "no_retrain" and "has not changed" in same.reason
    _append(db, cancer.iloc[200:400])
    step = watch("bc", url, table="t", workspace=workspace, **FAST)
    # both are the same linear model on more rows of an easy table: not significantly better, kept
    assert step.decision == "kept" and step.champion == 1 and step.challenger == 2, step.reason
    evidence = step.to_dict()["evidence"]
    assert evidence["window"]["fresh_rows"] == 200 and evidence["rule"] == "superiority"
    assert evidence["test"].startswith("one-sided paired bootstrap") and 0 <= evidence["p_value"] <= 1
    assert len(evidence["challenger_interval"]) == 2 and evidence["margin"] == 0.005
    kinds = [e["kind"] for e in _events(workspace, "bc")]
    assert kinds.count("watch.step") == 3 and kinds.count("promotion") == 1
    # the CLI: one JSON object per step, and the history as a timeline
    runner = CliRunner()
    result = runner.invoke(app_cli, ["watch", "bc", "--source", url, "--table", "t", "--once", "--json",
                                 "--deterministic", "--n-trials", "0", "--families", "linear",
                                 "-w", str(workspace.root)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["decision"] == "no_retrain" and record["champion"] == 1 and record["challenger"] is None
    history = runner.invoke(app_cli, ["models", "history", "bc", "--json", "-w", str(workspace.root)])
    timeline = json.loads(history.stdout)
    assert [e["kind"] for e in timeline][:3] == ["model_registered", "promotion", "watch.step"]
    assert [e.get("decision") for e in timeline if e["kind"] == "watch.step"] == [
        "promoted", "no_retrain", "kept", "no_retrain"]


def _served_version(http: Any, rows: list[dict[str, Any]], expected: int) -> int:
    """The version a running server answers with, once it has had time to follow the alias."""
    deadline = time.monotonic() + 30
    while True:
        response = http.post("/v1/models/bc/predict", json={"rows": rows})
        assert response.status_code == 200, response.text
        version = int(response.json()["version"])
        if version == expected or time.monotonic() > deadline:
            return version
        time.sleep(0.05)


def test_a_better_retrain_is_promoted_and_a_worse_one_rolled_back_while_a_server_follows(
        cancer: pd.DataFrame, weak: Path, tmp_path: Path) -> None:
    import httpx

    from mlpilot.serve import ServeSettings, create_app
    from tests.serve.conftest import running_server

    db = tmp_path / "src.db"
    _append(db, cancer.iloc[:150])
    url = f"sqlite:///{db}"
    workspace = _copy(weak, tmp_path)
    rows = cancer.drop(columns=["target"]).head(3).to_dict("records")
    app = create_app(ServeSettings(home=workspace.root, poll_interval=0.1, prediction_log=False))
    with running_server(app) as server, httpx.Client(base_url=server, timeout=30) as http:
        assert _served_version(http, [{"mean_texture": r["mean_texture"]} for r in rows], 1) == 1
        _append(db, cancer.iloc[150:350])
        promoted = watch("bc", url, table="t", workspace=workspace, **FAST)
        assert promoted.decision == "promoted" and promoted.champion == 2, promoted.reason
        assert promoted.evidence["challenger"] > promoted.evidence["champion_interval"][1]
        assert _served_version(http, rows, 2) == 2  # the running server hot-swapped to the new champion
        # the world flips (labels inverted): on these fresh rows v2 falls below v1's interval and is rolled back
        _append(db, cancer.iloc[350:480].assign(target=lambda f: 1 - f["target"]))
        back = watch("bc", url, table="t", workspace=workspace, **FAST)
        assert back.decision == "rolled_back" and back.champion == 1 and back.challenger == 2, back.reason
        check = back.evidence["live_check"]
        assert check["new"] < check["old_interval"][0] and check["rows"] >= 100
        assert _served_version(http, rows, 1) == 1
        # and by hand, back to the champion before: v2
        out = CliRunner().invoke(app_cli, ["models", "rollback", "bc", "--json", "-w", str(workspace.root)])
        assert out.exit_code == 0 and json.loads(out.stdout) == {"name": "bc", "from_version": 1, "to_version": 2}
        assert _served_version(http, rows, 2) == 2
    kinds = [e["kind"] for e in _events(workspace, "bc")]
    assert kinds.count("rollback") == 2 and kinds.count("promotion") == 1


def test_labels_fed_back_to_a_server_roll_a_worse_champion_back_on_its_own_live_rows(
        cancer: pd.DataFrame, weak: Path, tmp_path: Path) -> None:
    import httpx

    from mlpilot.serve import ServeSettings, create_app
    from tests.serve.conftest import running_server

    path = tmp_path / "data.parquet"
    cancer.iloc[:350].to_parquet(path)
    workspace = _copy(weak, tmp_path)
    app = create_app(ServeSettings(home=workspace.root, poll_interval=0.1, log_flush_interval=0.02))
    live = cancer.iloc[350:480].reset_index(drop=True)
    with running_server(app) as server, httpx.Client(base_url=server, timeout=30) as http:
        promoted = watch("bc", path, workspace=workspace, **FAST)
        assert promoted.decision == "promoted" and promoted.champion == 2, promoted.reason
        features = live.drop(columns=["target"])
        assert _served_version(http, features.head(1).to_dict("records"), 2) == 2
        labels = []
        for start in range(0, len(live), 10):  # live traffic, ten rows a request, served by v2 and logged
            answer = http.post("/v1/models/bc/predict", json={"rows": features.iloc[start:start + 10].to_dict("records")})
            assert answer.status_code == 200 and answer.json()["version"] == 2
            rid = answer.json()["request_id"]
            labels += [{"request_id": rid, "row": i, "label": int(1 - live.loc[start + i, "target"])}
                       for i in range(len(answer.json()["predictions"]))]  # the world flips: labels inverted
        sent = http.post("/v1/models/bc/feedback", json=labels[:100]).json()
        assert sent["accepted"] == 100, sent
        assert http.post("/v1/models/bc/feedback", json=labels[100:]).json()["accepted"] == 30
        back = watch("bc", path, workspace=workspace, **FAST)  # the source has not changed: only the log shows it
        assert back.decision == "rolled_back" and back.champion == 1 and back.challenger == 2, back.reason
        check = back.evidence["live_check"]
        assert check["source"] == "prediction log" and check["rows"] == 130 and check["old_rescored"] == 130
        assert check["new"] < check["old_interval"][0] < check["old"]
        assert _served_version(http, features.head(1).to_dict("records"), 1) == 1  # hot-swapped back
    events = _events(workspace, "bc")
    rolled = [e["payload"] for e in events if e["kind"] == "rollback"]
    assert len(rolled) == 1 and rolled[0]["evidence"]["source"] == "prediction log"
    assert [e["payload"]["rows"] for e in events if e["kind"] == "live_check"] == [130]


def _serve_logged(workspace: Workspace, registry: Registry, version: int, live: pd.DataFrame,
                  starts: range) -> None:
    """``version`` answers ten live rows a request (from each of ``starts``), logged as serve logs them."""
    from mlpilot.monitor import PredictionLog
    from mlpilot.runtime import load_version, score_frame

    loaded = load_version(registry, registry.get_version(f"bc:{version}"))
    writer = PredictionLog(workspace).start()
    try:
        for start in starts:
            scored = score_frame(loaded, live.drop(columns=["target"]).iloc[start:start + 10].reset_index(drop=True))
            writer.log("bc", version, scored.inputs, scored.predictions, 1.0, probabilities=scored.probabilities,
                       request_ids=f"r{start}")
    finally:
        writer.close()


def test_the_logged_live_check_reads_the_old_champion_from_its_shadow_log(
        cancer: pd.DataFrame, weak: Path, tmp_path: Path) -> None:
    from mlpilot.autopilot._rollback import logged_live_check
    from mlpilot.autopilot._shadow import shadow_score
    from mlpilot.monitor import record_feedback

    path = tmp_path / "data.parquet"
    cancer.iloc[:350].to_parquet(path)
    workspace = _copy(weak, tmp_path)
    assert watch("bc", path, workspace=workspace, **FAST).champion == 2
    live = cancer.iloc[350:480].reset_index(drop=True)
    registry = Registry(workspace)
    try:
        new, old = registry.get_version("bc:2"), registry.get_version("bc:1")
        _serve_logged(workspace, registry, 2, live, range(0, 60, 10))
        assert shadow_score(registry, "bc", old, champion=2)[0] == 60  # v1 shadows the first six requests
        _serve_logged(workspace, registry, 2, live, range(60, 130, 10))
        labels = pd.DataFrame({"request_id": [f"r{i - i % 10}" for i in range(130)], "row": [i % 10 for i in range(130)],
                               "label": 1 - live["target"]})  # the world flips: labels inverted
        assert record_feedback(workspace, "bc", labels, registry=registry).accepted == 130
        mixed = logged_live_check(registry, "bc", new, old)
        assert mixed is not None and (mixed["old_from_shadow"], mixed["old_rescored"]) == (60, 70), mixed
        shadow_score(registry, "bc", old, champion=2)  # and the rest: every old prediction is now read from the log
        shadowed = logged_live_check(registry, "bc", new, old)
    finally:
        registry.close()
    assert shadowed is not None and (shadowed["old_from_shadow"], shadowed["old_rescored"]) == (130, 0), shadowed
    # v1's logged shadow predictions score as its rescored ones do, paired with v2's rows by (request_id, row)
    assert shadowed["old"] == pytest.approx(mixed["old"], abs=1e-9) and shadowed["new"] == mixed["new"]
    assert shadowed["rows"] == 130 and shadowed["rollback"] and shadowed["new"] < shadowed["old_interval"][0]


def test_parquet_folder_that_grows(cancer: pd.DataFrame, strong: Path, tmp_path: Path) -> None:
    workspace = _copy(strong, tmp_path)
    folder = tmp_path / "parts"
    folder.mkdir()
    cancer.iloc[:200].to_parquet(folder / "part-000.parquet")
    assert watch("bc", folder, workspace=workspace, **FAST).decision == "no_retrain"
    cancer.iloc[200:210].to_parquet(folder / "part-001.parquet")
    few = watch("bc", folder, workspace=workspace, **FAST)
    assert few.decision == "no_retrain" and "10 new labelled row(s)" in few.reason and "needs 30" in few.reason
    cancer.iloc[210:400].to_parquet(folder / "part-002.parquet")
    step = watch("bc", folder, workspace=workspace, **FAST)
    assert step.decision in ("kept", "promoted") and step.challenger == 2
    assert step.evidence["window"]["rows"] == 400 and step.evidence["window"]["fresh_rows"] == 200


def test_bad_input_fails_the_step_with_an_event_and_keeps_the_champion(cancer: pd.DataFrame, strong: Path,
                                                                       tmp_path: Path) -> None:
    workspace = _copy(strong, tmp_path)
    path = tmp_path / "data.parquet"
    cancer.iloc[:300].drop(columns=["mean_radius"]).to_parquet(path)
    gone = watch("bc", path, workspace=workspace, **FAST)
    assert gone.decision == "failed" and gone.champion == 1 and "'mean_radius'" in gone.reason
    cancer.iloc[:300].drop(columns=["target"]).to_parquet(path)
    no_target = watch("bc", path, workspace=workspace, **FAST)
    assert no_target.decision == "failed" and "target" in no_target.reason
    path.unlink()
    missing = watch("bc", path, workspace=workspace, **FAST)
    assert missing.decision == "failed" and "could not be read" in missing.reason
    cli = CliRunner().invoke(app_cli, ["watch", "bc", "--source", str(path), "--once", "-w", str(workspace.root)])
    assert cli.exit_code == 1 and "failed champion v1: the source could not be read" in " ".join(cli.stdout.split())
    cancer.iloc[:300].to_parquet(path)
    small = watch("bc", path, workspace=workspace, time_budget=2, families=("linear",))
    assert small.decision == "failed" and "too small to retrain" in small.reason
    failures = [e for e in _events(workspace, "bc") if e["kind"] == "retrain.failed"]
    assert len(failures) == 5
    registry = Registry(workspace)
    try:
        assert registry.get_aliases("bc") == {"champion": 1} and len(registry.list_versions("bc")) == 1
    finally:
        registry.close()


def test_a_second_watcher_waits_for_the_lease(cancer: pd.DataFrame, strong: Path, tmp_path: Path) -> None:
    workspace = _copy(strong, tmp_path)
    path = tmp_path / "data.parquet"
    cancer.iloc[:200].to_parquet(path)
    registry = Registry(workspace)
    try:
        assert registry.acquire_lease("bc", "other-host:1", ttl=60)["acquired"]
        config = WatchConfig(target="target", **FAST)
        busy = run_step("bc", path, workspace=workspace, config=config, owner="me:2")
        assert busy.decision == "no_retrain" and "another watcher (other-host:1) holds the lease" in busy.reason
        assert registry.get_watch_state("bc")["last_step"]["decision"] == "promoted"  # the template's step
        # the other watcher died: once its lease has expired, this one takes over
        later = run_step("bc", path, workspace=workspace, config=config, owner="me:2", clock=lambda: time.time() + 120)
        assert later.decision == "no_retrain" and "has not changed" in later.reason
        assert registry.acquire_lease("bc", "third:3", ttl=60)["acquired"]  # released after the step
    finally:
        registry.close()


_KILLED_WATCHER = """
import sys
from mlpilot.autopilot import watch
watch("bc", sys.argv[1], workspace=sys.argv[2], deterministic=True, n_trials=400, families=("lightgbm",),
      lease_ttl=30)
"""


def test_a_watcher_killed_mid_training_leaves_the_champion_and_the_next_step_says_why(
        cancer: pd.DataFrame, strong: Path, tmp_path: Path) -> None:
    workspace = _copy(strong, tmp_path)
    path = tmp_path / "data.parquet"
    cancer.to_parquet(path)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WATCHER, str(path), str(workspace.root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = Registry(workspace)
    try:
        deadline = time.monotonic() + 120
        while not registry.get_watch_state("bc").get("in_progress"):
            assert proc.poll() is None and time.monotonic() < deadline, "the watcher never started training"
            time.sleep(0.2)
        time.sleep(1.0)  # inside the search now
        proc.kill()
        proc.wait()
        assert registry.get_aliases("bc") == {"champion": 1} and len(registry.list_versions("bc")) == 1
        config = WatchConfig(**FAST)
        held = run_step("bc", path, workspace=workspace, config=config, owner="next:1")
        assert held.decision == "no_retrain" and "holds the lease" in held.reason  # the dead one's lease stands
        picky = WatchConfig(**FAST, min_new_rows=1000)  # no retrain: this step only has to take over
        step = run_step("bc", path, workspace=workspace, config=picky, owner="next:1",
                        clock=lambda: time.time() + 60)
        assert "never finished: the watcher was stopped or killed during it; champion v1 kept serving" in step.reason
        assert step.decision == "no_retrain" and "369 new labelled row(s)" in step.reason
        runs = registry.list_runs("bc")
        assert [r.status for r in runs].count("running") == 0
        assert any(r.status == "failed" and "killed" in (r.error or "") for r in runs)
        assert any(e["kind"] == "retrain.failed" and "never finished" in e["payload"]["reason"]
                   for e in registry.list_events(name="bc"))
    finally:
        registry.close()


def test_shadow_challenger_scores_live_traffic_and_is_promoted_on_labelled_live_rows(
        cancer: pd.DataFrame, weak: Path, tmp_path: Path) -> None:
    from mlpilot.monitor import PredictionLog, read_prediction_log
    from mlpilot.runtime import load_version, score_frame

    workspace = _copy(weak, tmp_path)
    path = tmp_path / "data.parquet"
    cancer.iloc[:210].to_parquet(path)  # 60 new rows: too few in the holdout for a paired test, so kept
    labels: list[dict[str, Any]] = []
    feedback = lambda _ws, _name: pd.DataFrame(labels, columns=["request_id", "row", "label"])  # noqa: E731
    opts: dict[str, Any] = {"workspace": workspace, "feedback": feedback, "shadow": True, **FAST}
    kept = watch("bc", path, **opts)
    assert kept.decision == "kept" and kept.challenger == 2 and "scores live traffic in shadow" in kept.reason
    # the champion serves live traffic (five rows a request), logged as serve logs it
    registry = Registry(workspace)
    try:
        assert registry.get_aliases("bc") == {"champion": 1, "challenger": 2}
        champion = load_version(registry, registry.get_version("bc:1"))
        live = cancer.iloc[210:410].reset_index(drop=True)
        log = PredictionLog(workspace).start()
        for i in range(0, len(live), 5):
            scored = score_frame(champion, live.iloc[i:i + 5][["mean_texture"]])
            log.log("bc", 1, scored.inputs.assign(**live.iloc[i:i + 5].drop(columns=["target", "mean_texture"])),
                    scored.predictions, 1.0, probabilities=scored.probabilities, request_ids=f"req-{i}")
        log.close()
        waiting = watch("bc", path, **opts)
        assert waiting.decision == "no_retrain" and "shadow v2 scored 200 new live row(s); waiting for labels" in waiting.reason
        shadow = read_prediction_log(workspace, "bc").query("source == 'shadow'")
        assert len(shadow) == 200 and set(shadow["version"]) == {2} and shadow["row"].max() == 4
        labels.extend({"request_id": f"req-{i - i % 5}", "row": i % 5, "label": int(live.loc[i, "target"])}
                      for i in range(len(live)))
        promoted = watch("bc", path, **opts)
        assert promoted.decision == "promoted" and promoted.champion == 2, promoted.reason
        assert "on live evidence" in promoted.reason and promoted.evidence["shadow"]["n_rows"] == 200
        assert registry.get_aliases("bc") == {"champion": 2}
        assert watch("bc", path, **opts).decision == "no_retrain"  # the rows seen again: no second shadow pass
    finally:
        registry.close()


def test_with_a_time_column_the_retrain_is_judged_on_rows_after_its_training_cut(
        cancer: pd.DataFrame, weak: Path, tmp_path: Path) -> None:
    workspace = _copy(weak, tmp_path)
    path = tmp_path / "data.parquet"
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(range(len(cancer)), unit="h")
    cancer.iloc[:400].assign(when=when[:400]).to_parquet(path)
    step = watch("bc", path, workspace=workspace, time_column="when", **FAST)
    window = step.evidence["window"]
    assert step.decision == "promoted" and step.champion == 2, step.reason
    assert "rows after the challenger's training cut" in step.reason and window["time_column"] == "when"
    assert window["window_start"] > window["cut"] and window["window_rows"] >= 30
    assert window["train_rows"] + window["window_rows"] <= 400 and step.evidence["n_rows"] == window["window_rows"]
    registry = Registry(workspace)
    try:  # v2 never saw the window: its record of training rows stops at the cut
        assert registry.get_version("bc:2").info["training_rows"]["n_rows"] == window["train_rows"]
    finally:
        registry.close()
    cancer.assign(when=when).to_parquet(path)
    missing = watch("bc", path, workspace=workspace, time_column="arrival", **FAST)
    assert missing.decision == "failed" and "time column (--time-column) 'arrival' does not exist" in missing.reason
    assert missing.champion == 2


def test_a_decaying_champion_triggers_a_retrain_under_the_non_inferiority_rule(
        cancer: pd.DataFrame, strong: Path, tmp_path: Path) -> None:
    from tests.autopilot.test_signals import _report

    workspace = _copy(strong, tmp_path)
    path = tmp_path / "data.parquet"
    cancer.iloc[:200].to_parquet(path)
    healthy = lambda name, **kw: _report(False, holdout={"value": 0.99, "interval": [0.98, 1.0]},  # noqa: E731
                                         actual={"value": 0.985, "interval": [0.97, 0.99]})
    quiet = watch("bc", path, workspace=workspace, on="drift,decay", monitor=healthy, **FAST)
    assert quiet.decision == "no_retrain" and "no drift that puts the model at risk" in quiet.reason
    decayed = lambda name, **kw: _report(False, holdout={"value": 0.99, "interval": [0.98, 1.0]},  # noqa: E731
                                         actual={"value": 0.90, "interval": [0.88, 0.92]})
    step = watch("bc", path, workspace=workspace, on=["decay"], monitor=decayed, **FAST)
    assert step.challenger == 2 and step.evidence["policy"]["mode"] == "non_inferiority"
    assert "the actual live metric 0.9000 is below the holdout's interval bound 0.9800" in step.reason
    # retrained on the rows it already had: nothing is unseen by both, so no paired test and the champion stays
    assert step.decision == "kept" and step.champion == 1 and step.evidence["rule"] == "no_shared_rows"


def test_a_retrain_keeps_the_champions_metric_and_weight_column(cancer: pd.DataFrame, tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "ws")
    weighted = cancer.assign(w=1.0 + cancer["mean_radius"] / cancer["mean_radius"].max())
    train(weighted.iloc[:200], "target", name="bc", workspace=workspace, metric="log_loss", weight_column="w",
          report=False, **FAST)
    step = watch("bc", weighted.iloc[:400], workspace=workspace, **FAST)
    assert step.challenger == 2, step.reason
    registry = Registry(workspace)
    try:
        challenger = registry.get_version("bc:2")
    finally:
        registry.close()
    config = challenger.info["config"]
    assert config["metric"] == "log_loss" and config["weight_column"] == "w"
    assert "w" not in challenger.info["features"]  # the weights stayed weights, not a feature
    assert step.evidence["metric"] == "log_loss"  # both models were judged by the champion's metric
