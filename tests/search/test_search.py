from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import mlpilot.search as search_pkg
import mlpilot.search._families as families_module
from mlpilot.exceptions import BudgetWarning, InvalidParameterError
from mlpilot.features import TabularPreprocessor, column_roles
from mlpilot.registry._artifacts import dumps, loads
from mlpilot.search import (
    FAMILIES,
    Learner,
    SearchConfig,
    TabularEnsemble,
    Tuner,
    caruana_weights,
    fit_final,
    load_portfolio,
    run_search,
)
from mlpilot.search._ensemble import prune_for_speed, prune_weights
from mlpilot.search._search import PRUNE_TOLERANCE
from mlpilot.tasks import get_metric
from mlpilot.tune import Budget


def test_exports() -> None:
    assert sorted(search_pkg.__all__) == sorted(n for n in dir(search_pkg) if not n.startswith("_") and n != "annotations")


def _table(task: str, n: int = 150, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": rng.choice(["x", "y", "z"], n),
            "t": [f"word{i % 7} token{i % 3} other filler text" for i in range(n)],
        }
    )
    signal = frame["a"] + (frame["c"] == "x") * 1.5 + rng.normal(scale=0.3, size=n)
    if task == "regression":
        return frame, signal.to_numpy()
    if task == "binary":
        return frame, (signal > signal.median()).astype(int).to_numpy()
    return frame, np.digitize(signal, np.quantile(signal, [0.33, 0.66]))


def test_portfolio_is_valid_data() -> None:
    for task in ("binary", "regression"):
        entries = load_portfolio(task)
        assert entries and all(e["family"] in FAMILIES for e in entries)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_fits_and_predicts(family: str, task: str) -> None:
    if task not in FAMILIES[family].tasks:
        pytest.skip(f"{family} does not do {task}")
    frame, y = _table(task)
    fam = FAMILIES[family]
    roles = column_roles(frame)
    if fam.text_only:
        roles = {"t": "text"}
    pre = TabularPreprocessor(encoding=fam.encoding, roles=roles).fit(frame)
    X = pre.transform(frame)
    params = {"n_estimators": 20} if fam.boosted else {}
    learner = Learner(family=family, task=task, params=params, categorical_indices=tuple(pre.categorical_indices_),
                      n_classes=3 if task == "multiclass" else 2, n_jobs=1)
    learner.fit(X[:100], y[:100], X_val=X[100:] if fam.boosted else None, y_val=y[100:] if fam.boosted else None)
    values = learner.predict_values(X[100:])
    if task == "regression":
        assert values.shape == (50,)
    else:
        assert values.shape == (50, 3 if task == "multiclass" else 2)
        np.testing.assert_allclose(values.sum(axis=1), 1.0, rtol=1e-6)


def test_unknown_family() -> None:
    with pytest.raises(InvalidParameterError, match="Unknown model family 'svm'"):
        Learner(family="svm").fit(np.zeros((4, 1)), np.array([0, 1, 0, 1]))


def test_caruana_prefers_the_blend_that_helps() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0])
    weights = caruana_weights([y + 1, y - 1, y + 10], y, get_metric("rmse"))
    assert weights.tolist() == [0.5, 0.5, 0.0]


def test_tuner_is_seeded() -> None:
    space = {"x": ("float", 0.0, 1.0, False), "k": ("int", 1, 10, True), "c": ("cat", ("a", "b"))}

    def proposals() -> list[dict[str, object]]:
        tuner, out = Tuner(space, random_state=3), []
        for _ in range(7):
            trial, params = tuner.ask()
            tuner.tell(trial, -abs(float(params["x"]) - 0.3))  # type: ignore[arg-type]
            out.append(params)
        return out

    assert proposals() == proposals()


def _search(task: str, **config: object) -> tuple[object, pd.DataFrame, np.ndarray]:
    frame, y = _table(task, n=200)
    metric = get_metric({"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}[task])
    result = run_search(
        frame.iloc[:160], y[:160], task=task, metric=metric, roles=column_roles(frame),
        n_classes=3 if task == "multiclass" else 2, holdout=frame.iloc[160:],
        config=SearchConfig(**config),  # type: ignore[arg-type]
    )
    return result, frame, y


def test_deterministic_search_is_reproducible_and_ensembles() -> None:
    kwargs = {"families": ("lightgbm", "linear", "knn"), "n_trials": 2, "n_folds": 3}
    first, frame, y = _search("binary", **kwargs)
    second, _, _ = _search("binary", **kwargs)
    assert [c.cv_mean for c in first.candidates] == [c.cv_mean for c in second.candidates]  # type: ignore[attr-defined]
    assert first.weights == second.weights  # type: ignore[attr-defined]
    names = [c.name for c in first.candidates]  # type: ignore[attr-defined]
    assert names[0] == "dummy" and "lightgbm_tuned_2" in names
    assert first.ensemble_holdout.shape == (40, 2)  # type: ignore[attr-defined]
    members, member_names, weights, _ = fit_final(
        frame, y, first, task="binary", roles=column_roles(frame), n_classes=2, random_state=0, n_jobs=1,  # type: ignore[arg-type]
        deterministic=True,
    )
    model = TabularEnsemble(task="binary", members=members, weights=weights, names=member_names,
                            classes=["neg", "pos"], feature_names=list(frame.columns)).fit()
    assert set(model.predict(frame.head(10))) <= {"neg", "pos"}
    assert model.predict_proba(frame.head(3)).shape == (3, 2)


def test_spent_budget_falls_back_to_a_fast_model() -> None:
    spent = Budget(10.0, 0.0, lambda: 11.0)  # a fake clock already past the deadline
    with pytest.warns(BudgetWarning, match="too small to cross-validate any model"):
        result, _, _ = _search("regression", budget=spent)
    usable = [c.name for c in result.candidates if c.usable and c.family != "dummy"]  # type: ignore[attr-defined]
    assert usable == ["linear_fallback"]
    assert any("too small" in note for note in result.notes)  # type: ignore[attr-defined]


def test_memory_cap_skips_heavy_families() -> None:
    result, _, _ = _search("binary", families=("linear", "random_forest"), memory_limit=1_000_000, n_trials=0)
    skipped = {c.name: c.note for c in result.candidates if c.status == "skipped"}  # type: ignore[attr-defined]
    assert "random_forest" in skipped and "exceeds the cap" in skipped["random_forest"]


@pytest.mark.parametrize("task", ["multiclass", "regression"])
@pytest.mark.parametrize("family", ["extra_trees", "random_forest"])
def test_forest_values_match_scikit_learn(family: str, task: str) -> None:
    frame, y = _table(task, n=120)
    pre = TabularPreprocessor(encoding="ordinal", roles=column_roles(frame)).fit(frame)
    X = pre.transform(frame)
    X[::7, 0] = np.nan
    train = y[:80] if task == "regression" else np.where(y[:80] == 1, 0, y[:80])  # class 1 unseen in training
    learner = Learner(family=family, task=task, params={"n_estimators": 15}, n_classes=3, n_jobs=1).fit(X[:80], train)
    model = learner.estimator_
    if task == "regression":
        np.testing.assert_array_equal(learner.predict_values(X[80:]), model.predict(X[80:]))
    else:
        values = learner.predict_values(X[80:])
        np.testing.assert_array_equal(values[:, [0, 2]], model.predict_proba(X[80:]))
        assert not values[:, 1].any()


def test_catboost_frame_keeps_codes_and_missing_values() -> None:
    learner = Learner(family="catboost", categorical_indices=(1,))
    X = np.array([[0.5, 2.0], [np.nan, np.nan], [1.5, 0.0]])
    frame = FAMILIES["catboost"].library_input(learner, X)
    assert list(frame.columns) == ["0", "1"]
    assert frame["1"].dtype == np.int64 and frame["1"].tolist() == [2, -1, 0]
    np.testing.assert_array_equal(frame["0"].to_numpy(), X[:, 0])


@pytest.mark.parametrize("task", ["multiclass", "regression"])
@pytest.mark.parametrize("family", ["lightgbm", "catboost"])
def test_prediction_threads_do_not_change_values(family: str, task: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(families_module, "_PARALLEL_WORK", 1)  # every batch counts as large
    frame, y = _table(task, n=600)
    pre = TabularPreprocessor(encoding="ordinal", roles=column_roles(frame)).fit(frame)
    X = pre.transform(frame)
    learner = Learner(family=family, task=task, params={"n_estimators": 60}, n_classes=3, n_jobs=1,
                      categorical_indices=tuple(pre.categorical_indices_)).fit(X, y)
    one = learner.predict_values(X, n_jobs=1)
    np.testing.assert_array_equal(learner.predict_values(X, n_jobs=2), one)
    np.testing.assert_array_equal(learner.predict_values(X), one)


class _CountingPreprocessor(TabularPreprocessor):
    calls = 0

    def transform(self, X: object) -> object:
        type(self).calls += 1
        return super().transform(X)


def test_members_share_one_transform_per_preprocessor() -> None:
    frame, y = _table("binary", n=200)
    pre = _CountingPreprocessor(encoding="ordinal", roles=column_roles(frame)).fit(frame)
    X = pre.transform(frame)
    learners = [
        Learner(family=f, params=p, categorical_indices=tuple(pre.categorical_indices_), n_jobs=1).fit(X, y)
        for f, p in [("lightgbm", {"n_estimators": 30}), ("catboost", {"n_estimators": 30}), ("extra_trees", {})]
    ]
    weights = [0.5, 0.3, 0.2]
    shared = TabularEnsemble(members=[(pre, learner) for learner in learners], weights=weights, classes=[0, 1],
                             n_jobs=2).fit()
    separate = TabularEnsemble(members=[(copy.deepcopy(pre), learner) for learner in learners], weights=weights,
                               classes=[0, 1]).fit()
    _CountingPreprocessor.calls = 0
    proba = shared.predict_proba(frame)
    assert _CountingPreprocessor.calls == 1
    np.testing.assert_array_equal(proba, separate.predict_proba(frame))
    assert _CountingPreprocessor.calls == 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pruning_stays_within_tolerance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=300)
    predictions = [y + rng.normal(scale=s, size=300) + b for s, b in [(0.5, 0.1), (0.6, -0.1), (0.7, 0.0), (0.55, 0.2)]]
    metric = get_metric("rmse")
    weights = caruana_weights(predictions, y, metric)

    def score(w: np.ndarray) -> float:
        return metric.score(y, sum(wi * p for wi, p in zip(w, predictions, strict=True)))

    assert np.count_nonzero(weights) > 2
    for tolerance in (0.0, 0.005, 0.02, 1.0):
        pruned = prune_weights(predictions, y, metric, weights, tolerance=tolerance)
        assert pruned.sum() == pytest.approx(1.0)
        assert set(np.flatnonzero(pruned)) <= set(np.flatnonzero(weights))
        assert score(pruned) >= score(weights) - tolerance
    assert np.count_nonzero(prune_weights(predictions, y, metric, weights, tolerance=1.0)) == 1


def test_pruning_drops_the_member_that_adds_least() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0])
    predictions = list(y + np.array([[0.3, -0.2, 0.0, -0.2], [-0.3, 0.2, -0.3, -0.2], [0.0, 0.0, -0.3, 0.3]]))
    metric = get_metric("rmse")
    weights = caruana_weights(predictions, y, metric)
    assert weights.tolist() == [0.5, 0.25, 0.25]
    assert prune_weights(predictions, y, metric, weights, tolerance=0.01).tolist() == [0.5, 0.25, 0.25]
    assert prune_weights(predictions, y, metric, weights, tolerance=0.05).tolist() == [0.5, 0.0, 0.5]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_speed_pruning_gives_up_score_only_in_proportion_to_time_saved(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=300)
    predictions = [y + rng.normal(scale=s, size=300) + b for s, b in [(0.5, 0.1), (0.6, -0.1), (0.7, 0.0), (0.55, 0.2)]]
    costs = np.array([1.0, 20.0, 2.0, 5.0])
    metric = get_metric("rmse")
    weights = caruana_weights(predictions, y, metric)

    def score(w: np.ndarray) -> float:
        return metric.score(y, sum(wi * p for wi, p in zip(w, predictions, strict=True)))

    full_cost = costs[weights > 0].sum()
    for allowance in (0.0, 0.01, 0.05, 0.2, 10.0):
        faster = prune_for_speed(predictions, y, metric, weights, costs, allowance=allowance)
        assert faster.sum() == pytest.approx(1.0)
        assert set(np.flatnonzero(faster)) <= set(np.flatnonzero(weights))
        saved = 1.0 - costs[faster > 0].sum() / full_cost
        assert score(faster) >= score(weights) - allowance * saved - 1e-12
    cheapest = prune_for_speed(predictions, y, metric, weights, costs, allowance=10.0)
    assert np.count_nonzero(cheapest) == 1
    # a floor far above the ensemble's cost makes every share small: nothing is worth dropping
    floored = prune_for_speed(predictions, y, metric, weights, costs, allowance=0.05, floor=1e6)
    assert score(floored) >= score(weights)


def test_speed_pruning_meets_a_hard_limit_keeping_the_best_blend_under_it() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    predictions = [y + rng.normal(scale=s, size=300) for s in (0.5, 0.4, 0.6, 0.45)]
    costs = np.array([1.0, 20.0, 2.0, 5.0])
    metric = get_metric("rmse")
    weights = caruana_weights(predictions, y, metric)
    assert weights[1] > 0 and costs[weights > 0].sum() > 10
    limited = prune_for_speed(predictions, y, metric, weights, costs, allowance=0.0, limit=10.0)
    assert costs[limited > 0].sum() <= 10.0 and limited[1] == 0
    assert limited.sum() == pytest.approx(1.0)


class _TickClock:
    """A fake clock that moves ``ticks[candidate]`` seconds at each reading, for the candidate the
    search reported last: predicting a fold (two readings, nothing read between them) costs one tick."""

    def __init__(self, ticks: dict[str, float]) -> None:
        self.now, self.ticks, self.current = 0.0, ticks, "dummy"

    def __call__(self) -> float:
        self.now += self.ticks.get(self.current, 0.0)
        return self.now

    def on_progress(self, event: dict[str, object]) -> None:
        self.current = str(event["current"])


def test_search_leaves_models_slower_than_the_predict_limit_out_of_the_ensemble() -> None:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    frame, y = data.data, data.target.to_numpy()
    # predict costs are read on the budget's clock: here a forest's fold costs 100 times a linear model's
    ticks = {"linear": 1e-4, "random_forest": 1e-2}

    def search(**extra: object) -> object:
        clock = _TickClock(ticks)
        return run_search(frame.iloc[:350], y[:350], task="regression", metric=get_metric("rmse"),
                          roles=column_roles(frame), n_classes=2, holdout=frame.iloc[350:],
                          on_progress=clock.on_progress,
                          config=SearchConfig(budget=Budget(1e6, 0.0, clock), families=("linear", "random_forest"),
                                              n_folds=3, n_jobs=1, **extra))  # type: ignore[arg-type]

    free = search()
    cost = {c.name: c.predict_cost for c in free.candidates if c.usable and c.family != "dummy"}  # type: ignore[attr-defined]
    assert cost == pytest.approx({name: 3 * tick / 350 for name, tick in ticks.items()})  # 3 folds, 350 rows
    fast, slow = "linear", "random_forest"
    limit = (cost[fast] * cost[slow]) ** 0.5
    limited = search(predict_limit=limit)
    members = set(limited.weights)  # type: ignore[attr-defined]
    assert members == {fast} and all(limited.candidate(m).predict_cost <= limit for m in members)  # type: ignore[attr-defined]
    assert any("slower than" in note and "random_forest" in note for note in limited.notes)  # type: ignore[attr-defined]
    # nothing under the limit: the fastest model is kept and the note says so
    none = search(predict_limit=cost[fast] / 100)
    assert set(none.weights) == {fast} and any("No model predicts within" in n for n in none.notes)  # type: ignore[attr-defined]


def test_folds_side_by_side_give_the_sequential_result_and_leave_warnings_alone() -> None:
    import warnings

    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    frame, y = data.data, data.target.to_numpy()

    def search(n_jobs: int) -> object:
        return run_search(frame.iloc[:140], y[:140], task="multiclass", metric=get_metric("log_loss"),
                          roles=column_roles(frame), n_classes=3, holdout=frame.iloc[140:],
                          config=SearchConfig(families=("lightgbm", "linear", "random_forest"),
                                              n_trials=1, n_folds=3, n_jobs=n_jobs))

    filters = list(warnings.filters)
    one, two = search(1), search(2)
    assert warnings.filters == filters  # no "ignore" left behind by the threads
    for a, b in zip(one.candidates, two.candidates, strict=True):  # type: ignore[attr-defined]
        assert (a.name, a.status, a.fold_scores, a.n_iterations) == (b.name, b.status, b.fold_scores, b.n_iterations)
        if a.usable:
            np.testing.assert_array_equal(a.oof, b.oof)
            np.testing.assert_array_equal(a.holdout, b.holdout)
    assert one.weights == two.weights  # type: ignore[attr-defined]
    np.testing.assert_array_equal(one.ensemble_holdout, two.ensemble_holdout)  # type: ignore[attr-defined]
    forest = next(c for c in two.candidates if c.family == "random_forest")  # type: ignore[attr-defined]
    sequential = next(c for c in one.candidates if c.family == "random_forest")  # type: ignore[attr-defined]
    # folds that overlap in time add up to more than the wall clock; one after another they cannot
    assert forest.work_seconds > forest.fit_seconds and sequential.work_seconds <= sequential.fit_seconds


def test_search_prunes_within_tolerance_of_the_full_blend() -> None:
    result, _, y = _search("regression", families=("lightgbm", "linear", "knn", "extra_trees"), n_trials=2,
                           n_folds=3)
    metric = get_metric("rmse")
    usable = [c for c in result.candidates if c.usable and c.family != "dummy"]  # type: ignore[attr-defined]
    full = caruana_weights([c.oof for c in usable], y[:160], metric)
    full_score = metric.score(y[:160], sum(w * c.oof for w, c in zip(full, usable, strict=True)))
    dummy = metric.score(y[:160], result.candidates[0].oof)  # type: ignore[attr-defined]
    tolerance = PRUNE_TOLERANCE * abs(full_score - dummy)
    assert metric.score(y[:160], result.ensemble_oof) >= full_score - tolerance - 1e-12  # type: ignore[attr-defined]
    assert set(result.weights) <= {c.name for c, w in zip(usable, full, strict=True) if w > 0}  # type: ignore[attr-defined]


def test_ensembles_saved_before_n_jobs_still_load_and_predict() -> None:
    frame, y = _table("regression", n=120)
    pre = TabularPreprocessor(encoding="ordinal", roles=column_roles(frame)).fit(frame)
    learner = Learner(family="lightgbm", task="regression", params={"n_estimators": 20}, n_jobs=1,
                      categorical_indices=tuple(pre.categorical_indices_)).fit(pre.transform(frame), y)
    model = TabularEnsemble(task="regression", members=[(pre, learner)], weights=[1.0], n_jobs=2).fit()
    old = copy.deepcopy(model)
    del old.__dict__["n_jobs"]  # the state an older mlpilot wrote
    data, fmt = dumps(old)
    loaded = loads(data, fmt)
    assert loaded.get_params()["n_jobs"] is None
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_xgboost_places_probabilities_when_a_fold_lacks_a_class() -> None:
    """XGBoost numbers the classes it saw 0..k-1; the learner maps them back to class codes."""
    frame, y = _table("multiclass", n=200)
    y = np.where(y == 1, 2, y)  # the rows hold codes 0 and 2 only; the task has 3 classes
    pre = TabularPreprocessor(encoding="ordinal", roles=column_roles(frame.drop(columns="t"))).fit(frame)
    X = pre.transform(frame)
    learner = Learner(family="xgboost", task="multiclass", params={"n_estimators": 30},
                      categorical_indices=tuple(pre.categorical_indices_), n_classes=3, n_jobs=1)
    learner.fit(X[:150], y[:150], X_val=X[150:], y_val=y[150:])
    values = learner.predict_values(X[150:])
    assert values.shape == (50, 3) and np.all(values[:, 1] == 0.0)
    accuracy = np.mean(np.where(values[:, 2] > values[:, 0], 2, 0) == y[150:])
    assert accuracy > 0.7
    data, fmt = dumps(learner)
    back = loads(data, fmt)
    np.testing.assert_array_equal(back.predict_values(X[150:]), values)


def test_search_with_xgboost_is_deterministic() -> None:
    kwargs = {"families": ("xgboost",), "n_trials": 2, "n_folds": 3}
    first, _, _ = _search("binary", **kwargs)
    again, _, _ = _search("binary", **kwargs)
    scores = [(c.name, c.cv_mean) for c in first.candidates if c.family == "xgboost"]  # type: ignore[attr-defined]
    assert len(scores) == 3  # the portfolio entry and two tuned trials
    assert scores == [(c.name, c.cv_mean) for c in again.candidates if c.family == "xgboost"]  # type: ignore[attr-defined]
    assert max(score for _, score in scores) > 0.8


def test_a_family_whose_package_is_missing_is_skipped_or_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from mlpilot.automl._config import make_config
    from mlpilot.exceptions import InvalidParameterError as ParamError

    missing = dataclasses.replace(FAMILIES["xgboost"], requires="mlpilot_no_such_package")
    monkeypatch.setitem(FAMILIES, "xgboost", missing)
    assert not missing.installed
    with pytest.raises(ParamError, match=r"need the 'mlpilot_no_such_package' package: pip install 'mlpilot\[boost\]'"):
        make_config(families=["xgboost", "lightgbm"])
    result, _, _ = _search("binary", n_trials=0, n_folds=3)
    families = {c.family for c in result.candidates}  # type: ignore[attr-defined]
    assert "lightgbm" in families and "xgboost" not in families
