"""What the side-by-side benchmarks share: a simulator in its own process, clients measured
as child processes, manifests, and the ideal schedule of the simulator's recorded jobs.

Everything listens on 127.0.0.1 and every process is bounded: a client past its timeout is
killed with its whole process group, and a simulator is stopped (then killed) on exit.
Imports nothing from `runner`: the simulator is reached over HTTP like any other client.
"""

from __future__ import annotations

import heapq
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODEL = "model_kling-v3-t2v-4k"
KEY, SECRET = "bench-key", "bench-secret"
# Small, short videos: the benchmark is about the clients, not the encoder or the disk.
VIDEO_FLAGS = ["--video-size", "64", "36", "--video-fps", "4", "--video-seconds", "0.5"]


def stop_on_sigterm() -> None:
    """Turn SIGTERM (and a SIGINT a background shell ignores) into SystemExit, so that the
    `finally` blocks stop every simulator and client this process started."""
    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)


def write_manifest(folder: Path, count: int, offset: int = 0) -> Path:
    """`count` distinct text-to-video jobs (one prompt each) in kling-batch's format."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [{"id": f"clip-{i:06d}", "model": MODEL,
             "params": {"prompt": f"Shot number {i} of a lighthouse at dusk", "duration": "5"}}
            for i in range(offset, offset + count)]
    path = folder / "batch.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "jobs": jobs}, sort_keys=False))
    return path


def client_env(pythonpath: Path | None = None) -> dict[str, str]:
    """The environment of a client: the simulator's credentials, nothing else pointing
    anywhere (no base URL, no bearer token)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SCENARIO_BASE_URL", "SCENARIO_SDK_JWT", "PYTHONPATH")}
    env.update(SCENARIO_SDK_API_KEY=KEY, SCENARIO_SDK_API_SECRET=SECRET)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


@dataclass(frozen=True)
class Measured:
    """A finished child: exit code (None: killed at its timeout), wall seconds, CPU seconds
    (user + system, its waited-for children included) and peak RSS in MiB."""

    code: int | None
    seconds: float
    cpu: float
    rss_mib: float


def _reap(pid: int, box: list[Any]) -> None:
    _, status, usage = os.wait4(pid, 0)
    box.append((time.perf_counter(), os.waitstatus_to_exitcode(status), usage))


def wait_measured(proc: subprocess.Popen[bytes], started: float, timeout: float) -> Measured:
    """Wait for `proc` with `os.wait4` (its own rusage); kill its group after `timeout`."""
    box: list[Any] = []
    reaper = threading.Thread(target=_reap, args=(proc.pid, box), daemon=True)
    reaper.start()
    try:
        reaper.join(timeout)
    finally:  # past the timeout, or interrupted (Ctrl+C): no child outlives the benchmark
        # `not box`, not `is_alive()`: an interrupted join() marks the thread stopped (3.11).
        killed = not box
        if killed:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while not box and time.monotonic() < deadline:
                time.sleep(0.01)
    ended, code, usage = box[0]
    proc.returncode = code  # reaped here: keep Popen from waiting on a pid that is gone
    return Measured(None if killed else code, ended - started,
                    usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def run_measured(command: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path,
                 timeout: float) -> Measured:
    """Run one client to its end (or its timeout), its output in `log`."""
    with log.open("wb") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=sink, stderr=sink,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        return wait_measured(proc, started, timeout)


@dataclass
class SimProcess:
    """A simulator serving in its own process."""

    proc: subprocess.Popen[bytes]
    base_url: str
    origin: str
    log: Path
    usage: Measured | None = None

    def stats(self) -> dict[str, Any]:
        """Its accounting (`GET /_sim/stats`)."""
        with urllib.request.urlopen(f"{self.origin}/_sim/stats", timeout=60) as reply:
            return dict(json.load(reply))


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Stop with Ctrl+C." in text:
            return text.splitlines()[0].split(" at ")[1].strip()
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError(f"the simulator did not start:\n{log.read_text(errors='replace')}")


@contextmanager
def simulator(flags: Sequence[str], log: Path, repo: Path = REPO) -> Iterator[SimProcess]:
    """`python -m runner simulate` on free loopback ports, with the bench credentials."""
    command = [sys.executable, "-m", "runner", "simulate", "--host", "127.0.0.1",
               "--port", "0", "--cdn-port", "0", "--api-key", KEY, "--api-secret", SECRET,
               *flags]
    with log.open("wb") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=repo, env=client_env(repo), stdout=sink,
                                stderr=sink, stdin=subprocess.DEVNULL, start_new_session=True)
    sim: SimProcess | None = None
    try:
        base_url = _wait_ready(proc, log, 60)
        sim = SimProcess(proc, base_url, base_url.removesuffix("/v1"), log)
        yield sim
    finally:
        with suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        usage = wait_measured(proc, started, 20)
        if sim is not None:
            sim.usage = usage


def valid_videos(out: Path, ids: Sequence[str]) -> int:
    """How many of `ids` have `videos/<id>.mp4` that is an MP4 (an `ftyp` box first)."""
    count = 0
    for job_id in ids:
        path = out / "videos" / f"{job_id}.mp4"
        with suppress(OSError), path.open("rb") as handle:
            count += handle.read(8)[4:8] == b"ftyp"
    return count


@dataclass(frozen=True)
class Record:
    """The simulator's jobs, read for a schedule: chains (a failed attempt, then its
    resubmission, back to back) and duplicates (jobs nothing justified)."""

    chains: list[float]
    duplicates: int
    resubmissions: int


def read_jobs(jobs: Sequence[dict[str, Any]]) -> Record:
    """Per fingerprint, in creation order: a job is needed when it is the first, or when the
    needed job before it had failed by the time it was created; any other is a duplicate."""
    by_print: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in sorted(jobs, key=lambda j: j["started"]):
        by_print[job["fingerprint"]].append(job)
    chains: list[tuple[float, float]] = []
    duplicates = resubmissions = 0
    for runs in by_print.values():
        last = runs[0]
        length = last["ended"] - last["started"]
        for job in runs[1:]:
            if last["status"] == "failure" and last["ended"] <= job["started"]:
                resubmissions += 1
                length += job["ended"] - job["started"]
                last = job
            else:
                duplicates += 1
        chains.append((runs[0]["started"], length))
    return Record([length for _, length in sorted(chains)], duplicates, resubmissions)


def list_schedule(lengths: Sequence[float], places: int) -> float:
    """Makespan of the greedy list schedule: each task, in order, on the first free place."""
    free = [0.0] * max(1, places)
    for length in lengths:
        heapq.heappush(free, heapq.heappop(free) + length)
    return max(free)
