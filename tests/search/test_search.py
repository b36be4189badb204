from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import mlpilot.search as search_pkg
from mlpilot.exceptions import BudgetWarning, InvalidParameterError
from mlpilot.features import TabularPreprocessor, column_roles
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
from mlpilot.tasks import get_metric


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
        tuner, out = Tuner(space, seed=3), []
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
        frame, y, first, task="binary", roles=column_roles(frame), n_classes=2, seed=0, n_jobs=1,  # type: ignore[arg-type]
        deterministic=True, deadline=None,
    )
    model = TabularEnsemble(task="binary", members=members, weights=weights, names=member_names,
                            classes=["neg", "pos"], feature_names=list(frame.columns)).fit()
    assert set(model.predict(frame.head(10))) <= {"neg", "pos"}
    assert model.predict_proba(frame.head(3)).shape == (3, 2)


def test_spent_budget_falls_back_to_a_fast_model() -> None:
    with pytest.warns(BudgetWarning, match="too small to cross-validate any model"):
        result, _, _ = _search("regression", deadline=time.perf_counter() - 1.0)
    usable = [c.name for c in result.candidates if c.usable and c.family != "dummy"]  # type: ignore[attr-defined]
    assert usable == ["linear_fallback"]
    assert any("too small" in note for note in result.notes)  # type: ignore[attr-defined]


def test_memory_cap_skips_heavy_families() -> None:
    result, _, _ = _search("binary", families=("linear", "random_forest"), memory_limit=1_000_000, n_trials=0)
    skipped = {c.name: c.note for c in result.candidates if c.status == "skipped"}  # type: ignore[attr-defined]
    assert "random_forest" in skipped and "exceeds the cap" in skipped["random_forest"]
