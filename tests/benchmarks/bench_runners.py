"""Benchmark of several runners on one batch, sharing a PostgreSQL ledger.

    python tests/benchmarks/bench_runners.py [--jobs 5000] [--runners 1 2 3]
        [--concurrency 200] [--admin-url postgresql://kling:kling@127.0.0.1:5432/kling_test]

Two parts, in one run:

1. Throughput: for each runner count, a fresh database, a fresh simulator process with very
   short jobs (the client is the bottleneck, not the API) and `--jobs` distinct jobs; all the
   runners start together on `-o DIR --ledger URL` (the shared-file-system form, so the
   object store's speed is not in the figure) and the clock stops when the last one exits.
   Printed side by side: jobs/s, database transactions and tuples per job (deltas of
   `pg_stat_database`: pg_stat_statements is not loaded on a stock server, and a
   transaction is one autocommit statement or one explicit transaction), peak connections
   to the batch's database (`pg_stat_activity`, sampled every 50 ms), and the simulator's
   own check that every body was POSTed once.
2. Takeover: two runners on jobs of 2-4 s; one is SIGKILLed while it holds jobs; the time
   from the kill until another runner records an event for one of the dead runner's jobs
   (read from the events table), with the `--lease` it ran under.

Not a test: figures go in the README. Every process is bounded and stopped on exit.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from tests.benchmarks.benchlib import (  # noqa: E402
    REPO,
    VIDEO_FLAGS,
    client_env,
    simulator,
    stop_on_sigterm,
    write_manifest,
)

ADMIN_URL = "postgresql://kling:kling@127.0.0.1:5432/kling_test"
RUN_FLAGS = ["--poll-interval", "0.05", "--poll-max", "0.5", "--listings-per-second", "20",
             "--settle", "0.5", "-q"]


def with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def fresh_database(admin_url: str, name: str) -> Iterator[str]:
    """A new, empty database for one measurement; dropped afterwards."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


STAT_COLUMNS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched",
                "tup_inserted", "tup_updated", "tup_deleted")


def database_stats(admin_url: str, name: str) -> dict[str, int]:
    """The cumulative counters of one database (fresh snapshot)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            sql.SQL("SELECT {} FROM pg_stat_database WHERE datname = %s").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in STAT_COLUMNS)), (name,)
        ).fetchone()
    assert row is not None
    return dict(zip(STAT_COLUMNS, (int(v) for v in row), strict=True))


class ConnectionSampler:
    """Counts the connections to one database every 50 ms, in a thread; keeps the peak."""

    def __init__(self, admin_url: str, name: str) -> None:
        self.admin_url, self.name = admin_url, name
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self._stop.is_set():
                conn.execute("SELECT pg_stat_clear_snapshot()")
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                   (self.name,)).fetchone()
                self.peak = max(self.peak, int(row[0]) if row else 0)
                self._stop.wait(0.05)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def start_runner(manifest: Path, out: Path, ledger: str, base_url: str, log: Path,
                 *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "runner", "run", str(manifest), "-o", str(out),
               "--ledger", ledger, "--base-url", base_url, *RUN_FLAGS, *extra]
    with log.open("ab") as sink:
        return subprocess.Popen(command, cwd=REPO, env=client_env(REPO), stdout=sink,
                                stderr=sink, stdin=subprocess.DEVNULL, start_new_session=True)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@dataclass(frozen=True)
class Throughput:
    runners: int
    jobs: int
    seconds: float
    codes: list[int]
    stats: dict[str, int]
    peak_connections: int
    once: bool  # every body POSTed exactly once
    counted: int  # transactions the runners counted themselves (their closing lines)

    def line(self) -> str:
        per_job = {k: v / self.jobs for k, v in self.stats.items()}
        return (f"runners={self.runners} jobs={self.jobs} exits={self.codes} "
                f"wall={self.seconds:.1f}s jobs/s={self.jobs / self.seconds:.1f} "
                f"xact/job={per_job['xact_commit'] + per_job['xact_rollback']:.1f} "
                f"rollbacks/job={per_job['xact_rollback']:.2f} "
                f"tup_returned/job={per_job['tup_returned']:.0f} "
                f"tup_fetched/job={per_job['tup_fetched']:.0f} "
                f"tup_ins+upd+del/job="
                f"{per_job['tup_inserted'] + per_job['tup_updated'] + per_job['tup_deleted']:.1f}"
                f" runner-counted xact/job={self.counted / self.jobs:.1f}"
                f" peak_connections={self.peak_connections} posted_once={self.once}")


def throughput(args: argparse.Namespace, runners: int, tmp: Path) -> Throughput:
    folder = tmp / f"r{runners}"
    manifest = write_manifest(folder, args.jobs)
    name = f"kb_bench_r{runners}_{os.getpid()}"
    sim_flags = ["--job-seconds", "0.02", "0.05", *VIDEO_FLAGS]
    with simulator(sim_flags, folder / "sim.log") as sim, \
            fresh_database(args.admin_url, name) as url:
        before = database_stats(args.admin_url, name)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            with ConnectionSampler(args.admin_url, name) as sampler:
                started = time.perf_counter()
                procs = [start_runner(manifest, folder / "out", url, sim.base_url,
                                      folder / f"runner{i}.log", "--concurrency",
                                      str(args.concurrency)) for i in range(runners)]
                codes = [proc.wait(args.timeout) for proc in procs]
                seconds = time.perf_counter() - started
        finally:
            stop(procs)
        time.sleep(1.0)  # backends flush their counters when they exit
        after = database_stats(args.admin_url, name)
        counts = sim.stats()["submissionsByFingerprint"]
    once = len(counts) == args.jobs and set(counts.values()) == {1}
    delta = {k: after[k] - before[k] for k in STAT_COLUMNS}
    counted = sum(counted_transactions(folder / f"runner{i}.log") for i in range(runners))
    return Throughput(runners, args.jobs, seconds, codes, delta, sampler.peak, once, counted)


def counted_transactions(log: Path) -> int:
    """The transactions a runner says it made (`shared ledger: N transaction(s) …`)."""
    found = re.search(r"shared ledger: (\d+) transaction", log.read_text(errors="replace"))
    return int(found.group(1)) if found else 0


def takeover(args: argparse.Namespace, tmp: Path) -> str:
    """Seconds from a SIGKILL until another runner records an event of a dead runner's job."""
    folder = tmp / "takeover"
    manifest = write_manifest(folder, 300)
    name = f"kb_bench_takeover_{os.getpid()}"
    sim_flags = ["--job-seconds", "2", "4", *VIDEO_FLAGS]
    with simulator(sim_flags, folder / "sim.log") as sim, \
            fresh_database(args.admin_url, name) as url, \
            psycopg.connect(url, autocommit=True) as conn:
        flags = ["--concurrency", "20", "--lease", str(args.lease)]
        procs = [start_runner(manifest, folder / "out", url, sim.base_url,
                              folder / f"runner{i}.log", *flags) for i in range(2)]
        try:
            victim = procs[0]
            held: list[str] = []
            deadline = time.monotonic() + 120
            while not held and time.monotonic() < deadline:
                held = dead_runner_jobs(conn, victim.pid)
                time.sleep(0.05)
            os.killpg(victim.pid, signal.SIGKILL)
            killed = time.perf_counter()
            victim.wait(30)
            held = dead_runner_jobs(conn, victim.pid)
            mark = last_seq(conn)
            while time.perf_counter() - killed < 10 * args.lease + 120:
                if events_since(conn, mark, held):
                    seconds = time.perf_counter() - killed
                    return (f"takeover: lease={args.lease}s, {len(held)} jobs held by the "
                            f"killed runner; first event of one of them by another runner "
                            f"{seconds:.2f}s after the SIGKILL")
                time.sleep(0.02)
            return "takeover: no other runner took the dead runner's jobs"
        finally:
            stop(procs)
            del sim


def dead_runner_jobs(conn: psycopg.Connection[Any], pid: int) -> list[str]:
    """The jobs a runner process holds now (the claims table names its runner row)."""
    try:
        rows = conn.execute(
            "SELECT j.job FROM kb_jobs j JOIN kb_runners r ON r.id = j.owner "
            "WHERE r.pid = %s AND j.status = 'held'", (pid,)).fetchall()
    except psycopg.errors.UndefinedTable:
        return []  # the runners have not made the schema yet
    return [str(row[0]) for row in rows]


def last_seq(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(seq), 0) FROM kb_events").fetchone()
    return int(row[0]) if row else 0


def events_since(conn: psycopg.Connection[Any], seq: int, jobs: list[str]) -> bool:
    row = conn.execute("SELECT count(*) FROM kb_events WHERE seq > %s AND job = ANY(%s)",
                       (seq, jobs)).fetchone()
    return bool(row and row[0])


def cli() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--lease", type=float, default=5.0, help="lease of the takeover part")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--admin-url", default=os.environ.get("KLING_TEST_POSTGRES", ADMIN_URL))
    parser.add_argument("--no-takeover", action="store_true")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the runners' logs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-runners-") as tmp:
        work = Path(args.keep or tmp)
        for count in args.runners:
            print(throughput(args, count, work).line(), flush=True)
        if not args.no_takeover:
            print(takeover(args, work), flush=True)


if __name__ == "__main__":
    cli()
