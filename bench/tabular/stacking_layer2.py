"""Which level-2 model over [members' out-of-fold outputs + encoded features]: the choice behind the feature stack.

One deterministic search per table (the benchmark's training split, `datasets.load`; families as
`stacking.py`), then, on the same members, the same member's out-of-fold encoded features and the
same folds, the nested out-of-fold score of:

- ``greedy``: the greedy ensemble;
- ``linear``: the linear stack over the members' outputs only;
- ``lgbm``: the feature stack (`FeatureStacker`: a small LightGBM boosting from the linear layer);
- ``linear+features``: a linear model over the level-1 features and the standardised encoded
  features (median-imputed with missing indicators, then standardised; ridge for regression, L2
  logistic regression for classifiers; all fitted on each outer fold's training rows).

Unlike `stacking.py` it trains without a holdout (every row of the training split is a development row).

    python bench/tabular/stacking_layer2.py --datasets Chile,concrete,mlc_churn
    python bench/tabular/stacking_layer2.py --datasets Chile,concrete,mlc_churn --families linear,knn
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import BY_KEY, load
from stacking import FAMILIES


def _linear_features(task: str, Z: np.ndarray, F: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray,
                     n_classes: int) -> np.ndarray:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    M = np.hstack([Z, F])
    # the ordinal encoding keeps missing values for the trees: a linear model needs them imputed
    prep = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()).fit(M[tr])
    A, B = prep.transform(M[tr]), prep.transform(M[va])
    if task == "regression":
        return Ridge(alpha=1.0).fit(A, y[tr]).predict(B)
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(A, y[tr])
    out = np.zeros((len(va), n_classes))
    out[:, clf.classes_] = clf.predict_proba(B)
    return out


def compare(key: str, n_trials: int, families: tuple[str, ...] = FAMILIES) -> dict:
    import mlpilot
    from mlpilot.search._stack import LinearStacker
    from mlpilot.tasks import get_metric

    spec = BY_KEY[key]
    train, _test = load(spec)
    out = mlpilot.train(train, spec.target, task=spec.task, metric=spec.metric, register=False, report=False,
                        deterministic=True, n_trials=n_trials, families=families, stacking="force", holdout=0.0)
    # the search's own objects: the stack tried both layers on the same members and features
    search = out.outcome.search
    stack = search.stack
    assert stack is not None and stack.features is not None, "no feature stack was tried"
    metric = get_metric(spec.metric)
    target = train[spec.target].dropna()  # no holdout: the development rows are the rows with a target
    y = target.to_numpy(dtype=float) if spec.task == "regression" else out.outcome.encoding.encode(target)
    assert len(y) == len(stack.oof)
    folds = search.folds
    values = [np.asarray(search.candidate(n).oof) for n in stack.names]
    Z = LinearStacker.features(stack.stacker.task, values)
    n_classes = stack.stacker.n_classes
    pred = np.zeros_like(stack.oof)
    for tr, va in folds:
        pred[va] = _linear_features(stack.stacker.task, Z, stack.features.oof, y, tr, va, n_classes)
    lf = float(np.mean([metric.on(va).score(y[va], pred[va]) for _tr, va in folds]))
    sign = 1.0 if metric.greater_is_better else -1.0
    row = {"dataset": key, "families": ",".join(families), "metric": spec.metric, "greedy": sign * stack.greedy_cv,
           **{("lgbm" if k == "features" else k): sign * v["cv"] for k, v in stack.layers.items()},
           "linear+features": sign * lf, "feature_member": stack.features.member,
           "n_features": int(stack.features.oof.shape[1])}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="mlc_churn,Chile,concrete")
    parser.add_argument("--n-trials", type=int, default=0)
    parser.add_argument("--families", default=",".join(FAMILIES), help="the search's families (the stack's members)")
    args = parser.parse_args(argv)
    families = tuple(f for f in args.families.split(",") if f)
    for key in [d for d in args.datasets.split(",") if d]:
        print(json.dumps(compare(key, args.n_trials, families)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
