"""Several real runner processes on one batch, one shared simulator process, and the faults
done to them: SIGKILL, SIGSTOP/SIGCONT, a PostgreSQL restart.

Everything here is a real process on loopback: `python -m runner simulate` serves the API
(its accounting is read over HTTP at `/_sim/stats`), and each runner is
`python -m runner run MANIFEST -o TARGET --ledger URL …` in its own process group, its
output in a log file of its own (one per incarnation). Waits are on conditions with generous
deadlines, never on durations; randomness comes from a seeded `random.Random`.

The accounting (`account`) is computed from the manifest as the test wrote it, not from
anything the runners say: the fingerprint of a request is the simulator's
(`request_fingerprint(model, params)`), and a job entry with `repeat: n` asks for n POSTs
of its body.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.simulator import request_fingerprint

REPO = Path(__file__).resolve().parents[2]

# Quick polling and a short settle (the simulator lists a created job at once). Not -q: the
# runners' notes (a fenced write, a takeover) are in their logs for the tests to read; off a
# terminal the display is one line every 10 s.
FAST_FLAGS = ["--poll-interval", "0.05", "--poll-max", "0.3", "--listings-per-second", "20",
              "--settle", "0.5"]
# Small videos: the simulator encodes one per job, on two cores shared with the runners.
SMALL_VIDEOS = ["--video-size", "64", "36", "--video-fps", "6", "--video-seconds", "0.5"]
# Lost answers: the job is created, then the connection resets or a 5xx hides it.
AFTER_CREATE_FAULTS = {"reset_after_create": 0.08, "error_after_create": 0.08,
                       "server_error": 0.03}

_ANNOUNCE = re.compile(r"Scenario API simulator at (http://\S+/v1)")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05) -> None:
    """Poll `predicate` until it is true; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: this checkout first on the path, Basic credentials
    for the simulator, no Bearer token and no base URL inherited from the caller."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SCENARIO_SDK_API_KEY": "cluster-key",
           "SCENARIO_SDK_API_SECRET": "cluster-secret", "PYTHONUNBUFFERED": "1"}
    env.pop("SCENARIO_SDK_JWT", None)
    env.pop("SCENARIO_BASE_URL", None)
    env.update(extra or {})
    return env


class SimulatorProcess:
    """`python -m runner simulate` on free loopback ports, for every runner of a test."""

    def __init__(self, folder: Path, *, seed: int = 0,
                 job_seconds: tuple[float, float] = (0.3, 1.0),
                 faults: Mapping[str, float] | None = None, extra: Sequence[str] = ()) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "simulator.log"
        command = [sys.executable, "-m", "runner", "simulate", "--port", "0", "--cdn-port", "0",
                   "--seed", str(seed), "--job-seconds", str(job_seconds[0]), str(job_seconds[1]),
                   *SMALL_VIDEOS, *extra]
        for name, rate in (faults or {}).items():
            command += ["--fault", f"{name}={rate}"]
        with self.log_path.open("ab") as sink:
            self.proc = subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=sink,
                                         stderr=sink, start_new_session=True)
        self.base_url = ""
        wait_until(self._announced, 60, "the simulator to announce its URL")

    def _announced(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"simulator exited {self.proc.returncode}: {self.log()}")
        found = _ANNOUNCE.search(self.log())
        if found:
            self.base_url = found.group(1)
        return bool(found)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stats(self) -> dict[str, Any]:
        """The simulator's accounting, `GET /_sim/stats`."""
        url = self.base_url.removesuffix("/v1") + "/_sim/stats"
        with urllib.request.urlopen(url, timeout=30) as reply:
            return dict(json.loads(reply.read()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)


@dataclass
class RunnerProcess:
    """One runner slot: its current process, and every exit code its incarnations had."""

    name: str
    command: list[str]
    env: dict[str, str]
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    exits: list[int] = field(default_factory=list)  # negative: killed by that signal
    paused: bool = False

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.{self.incarnation}.log"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        self.incarnation += 1
        with self.log_path.open("ab") as sink:
            self.proc = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=sink,
                                         stderr=sink, start_new_session=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def poll(self) -> int | None:
        """The exit code once ended (recorded once), else None."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is not None and len(self.exits) < self.incarnation:
            self.exits.append(code)
        return code

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        if self.alive():
            self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=30)
        self.paused = False
        self.poll()

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{self.name} still running after {timeout:.0f}s:\n"
                                 f"{self.tail()}") from exc
        code = self.poll()
        assert code is not None
        return code

    def logs(self) -> str:
        """Every incarnation's output, oldest first."""
        parts = []
        for index in range(1, self.incarnation + 1):
            path = self.folder / f"{self.name}.{index}.log"
            if path.exists():
                parts.append(f"--- {self.name} #{index} ---\n" + path.read_text(errors="replace"))
        return "\n".join(parts)

    def tail(self, chars: int = 3000) -> str:
        return self.logs()[-chars:]


class Cluster:
    """N runner slots on one manifest, one `-o` target and one `--ledger`, one simulator."""

    def __init__(self, folder: Path, sim: SimulatorProcess, manifest: Path, target: str,
                 ledger: str | None, *, env: Mapping[str, str] | None = None,
                 flags: Sequence[str] = ()) -> None:
        self.folder = folder
        self.sim = sim
        self.manifest = manifest
        self.target = target
        self.ledger = ledger
        self.env = child_env(env)
        self.flags = list(flags)
        self.runners: list[RunnerProcess] = []

    def run_command(self, *extra: str) -> list[str]:
        ledger = ["--ledger", self.ledger] if self.ledger else []
        return [sys.executable, "-m", "runner", "run", str(self.manifest), "-o", self.target,
                *ledger, "--base-url", self.sim.base_url, *FAST_FLAGS, *self.flags, *extra]

    def add(self, count: int = 1, *extra: str) -> list[RunnerProcess]:
        """Start `count` more runners (each its own slot)."""
        added = []
        for _ in range(count):
            runner = RunnerProcess(f"runner{len(self.runners)}", self.run_command(*extra),
                                   self.env, self.folder)
            runner.start()
            self.runners.append(runner)
            added.append(runner)
        return added

    def alive(self) -> list[RunnerProcess]:
        return [r for r in self.runners if r.alive()]

    def wait_all(self, timeout: float) -> dict[str, int]:
        """Wait for every runner to end; their exit codes by name."""
        deadline = time.monotonic() + timeout
        codes = {}
        for runner in self.runners:
            if runner.proc is None:
                continue
            codes[runner.name] = runner.wait(max(1.0, deadline - time.monotonic()))
        return codes

    def stop_all(self) -> None:
        """SIGKILL whatever is still running (test teardown)."""
        for runner in self.runners:
            if runner.paused:
                runner.resume()
            if runner.alive():
                runner.kill()

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`python -m runner ARGS` in the cluster's environment (status, report, cancel…)."""
        return subprocess.run([sys.executable, "-m", "runner", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def status_json(self) -> list[dict[str, Any]]:
        ledger = ["--ledger", self.ledger] if self.ledger else []
        done = self.cli("status", self.target, *ledger, "--json")
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    def logs(self) -> str:
        return "\n".join(r.logs() for r in self.runners)


def local_tcp_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (from /proc: its fds, then the tables)."""
    inodes = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir() if fds.is_dir() else ():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def submitted_count(sim: SimulatorProcess) -> int:
    """Jobs the simulator has created so far."""
    return int(sim.stats()["jobsCreated"])


def wait_for_created(sim: SimulatorProcess, count: int, timeout: float = 120,
                     cluster: Cluster | None = None) -> None:
    """Wait until the simulator has created at least `count` jobs."""
    def enough() -> bool:
        if cluster is not None and not cluster.alive():
            raise AssertionError(f"every runner ended before {count} jobs were created:\n"
                                 f"{cluster.logs()[-4000:]}")
        return submitted_count(sim) >= count

    wait_until(enough, timeout, f"{count} created jobs", interval=0.1)


def restart_postgresql() -> None:
    """Restart the machine's PostgreSQL 15 cluster (every connection to it is cut)."""
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"],
                   check=True, capture_output=True, timeout=120)


# ---- the manifest and its accounting ---------------------------------------------------

T2V = "model_kling-v3-t2v-4k"


def cluster_jobs(distinct: int, repeated: int = 3, prefix: str = "shot") -> list[dict[str, Any]]:
    """`distinct` text-to-video jobs, plus one entry with `repeat: repeated` and two entries
    sharing one body: the same request asked for several times must be POSTed exactly that
    many times (reconciliation matches by count)."""
    jobs: list[dict[str, Any]] = [
        {"id": f"{prefix}-{i:03d}", "model": T2V,
         "params": {"prompt": f"Take {i} of a lighthouse in a storm", "duration": "5"}}
        for i in range(distinct)
    ]
    jobs.append({"id": f"{prefix}-again", "model": T2V, "repeat": repeated,
                 "params": {"prompt": "One identical shot, asked for again", "duration": "5"}})
    twin = {"prompt": "Twin entries, one body", "duration": "5"}
    jobs += [{"id": f"{prefix}-twin-a", "model": T2V, "params": dict(twin)},
             {"id": f"{prefix}-twin-b", "model": T2V, "params": dict(twin)}]
    return jobs


def expected_submissions(jobs: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How many POSTs each request fingerprint must get: one per expanded job."""
    wanted: Counter[str] = Counter()
    for job in jobs:
        wanted[request_fingerprint(str(job["model"]), job["params"])] += int(job.get("repeat", 1))
    return wanted


def expanded_count(jobs: Iterable[Mapping[str, Any]]) -> int:
    return sum(int(job.get("repeat", 1)) for job in jobs)


@dataclass(frozen=True)
class Accounting:
    """What the simulator saw, against what the manifest asks for."""

    wanted: Counter[str]
    submitted: Counter[str]
    max_in_flight: int
    jobs_created: int
    faults: Mapping[str, int]

    @property
    def mismatches(self) -> dict[str, tuple[int, int]]:
        """fingerprint -> (asked, POSTed) wherever they differ."""
        keys = set(self.wanted) | set(self.submitted)
        return {k: (self.wanted[k], self.submitted[k]) for k in sorted(keys)
                if self.wanted[k] != self.submitted[k]}

    def summary(self) -> str:
        shape = Counter(self.submitted.values())
        per_body = ", ".join(f"{n} body(ies) x{times}" for times, n in sorted(shape.items()))
        return (f"{len(self.submitted)} distinct bodies, {self.jobs_created} jobs created "
                f"({per_body}); max in flight {self.max_in_flight}; faults {dict(self.faults)}")


def account(sim: SimulatorProcess, jobs: Iterable[Mapping[str, Any]]) -> Accounting:
    stats = sim.stats()
    return Accounting(expected_submissions(jobs), Counter(stats["submissionsByFingerprint"]),
                      int(stats["maxJobsInFlight"]), int(stats["jobsCreated"]),
                      dict(stats["faultsInjected"]))
