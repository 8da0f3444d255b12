"""Start-up: time from `kling-batch run` (a new process) to its first generate POST.

    python tests/benchmarks/bench_startup.py [--runs 5] [--manifest manifests/demo.yaml]
        [--repo DIR]

A simulator runs in its own process (`python -m runner simulate`); each run is a fresh
`python -m runner run MANIFEST --base-url …` into a new folder, and the first POST's time is
the earliest `createdAt` the simulator reports for the run's jobs (same machine, same wall
clock). `--repo` runs the client from another checkout (to compare two versions side by
side; the simulator always comes from this one). Also times `--help` and `validate`.
Loopback only; every process is bounded by a timeout. Prints min / median / max.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
AUTH = {"SCENARIO_SDK_API_KEY": "bench", "SCENARIO_SDK_API_SECRET": "bench"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the simulator did not answer at {url}")


def first_created(base: str) -> float:
    request = urllib.request.Request(f"{base}/jobs?pageSize=100", headers={
        "Authorization": "Basic YmVuY2g6YmVuY2g="})
    with urllib.request.urlopen(request, timeout=10) as answer:
        jobs = json.load(answer)["jobs"]
    return min(datetime.fromisoformat(j["createdAt"].replace("Z", "+00:00")).timestamp()
               for j in jobs)


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   timeout=120)
    return time.perf_counter() - started


def summary(values: list[float]) -> str:
    return (f"min {min(values):.3f} s, median {statistics.median(values):.3f} s, "
            f"max {max(values):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--manifest", type=Path, default=REPO / "manifests" / "demo.yaml")
    parser.add_argument("--repo", type=Path, default=REPO, help="the client's checkout")
    args = parser.parse_args()
    env = {**os.environ, **AUTH, "PYTHONPATH": str(args.repo.resolve())}
    client = [sys.executable, "-m", "runner"]
    repo = args.repo.resolve()
    manifest = str(args.manifest.resolve())
    print("--help:  ", summary([timed([*client, "--help"], env, repo)
                                for _ in range(args.runs)]))
    print("validate:", summary([timed([*client, "validate", manifest], env, repo)
                                for _ in range(args.runs)]))
    firsts: list[float] = []
    for _ in range(args.runs):
        port, cdn = free_port(), free_port()
        sim_env = {**os.environ, "PYTHONPATH": str(REPO)}
        sim = subprocess.Popen([sys.executable, "-m", "runner", "simulate", "--port", str(port),
                                "--cdn-port", str(cdn), "--job-seconds", "0.2", "0.4"],
                               env=sim_env, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}/v1"
            wait_for(f"http://127.0.0.1:{port}/_sim/stats")
            with tempfile.TemporaryDirectory() as tmp:
                started = time.time()
                subprocess.run([*client, "run", manifest, "-o", tmp, "--base-url",
                                base, "-q"], env=env, cwd=repo, check=False, timeout=300,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                firsts.append(first_created(base) - started)
        finally:
            sim.terminate()
            sim.wait(timeout=30)
    print("run → first POST:", summary(firsts))


if __name__ == "__main__":
    main()
