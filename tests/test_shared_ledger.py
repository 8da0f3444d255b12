"""The shared ledger on a real PostgreSQL 15: schema and migrations, the events store against
the JSONL ledger, claims, leases and fencing, the cluster-wide unknown-POST rule, the
batch-wide places, reconnection, the CLI's refusals, and two real runner processes finishing
one batch with every body posted once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from runner.cli import main
from runner.clock import REAL_CLOCK, Clock
from runner.cluster import (
    SCHEMA_VERSION,
    Coordinator,
    Database,
    PostgresLedger,
    cancel_unsubmitted,
    migrate,
    open_pool,
    session_options,
)
from runner.domain import JobState
from runner.errors import FencedError, SharedLedgerError
from runner.ledger import (
    Finished,
    Intended,
    JsonlLedger,
    Outcome,
    Submitted,
    replay,
    to_line,
)
from runner.simulator import Simulator
from tests.helpers.runs import (
    FAST_RUN,
    REPO,
    background_simulator,
    finish,
    start_run,
    t2v_jobs,
    write_manifest,
)
from tests.helpers.s3 import MotoServer

FIXTURES = Path(__file__).parent / "fixtures"
BATCH = "/batches/one"


def start_run_to(manifest: Path, target: str, sim: Simulator, *extra: str,
                 log: Path) -> subprocess.Popen[bytes]:
    """A real `run` process into `target` (any -o: an s3:// URL too)."""
    env = {**os.environ, "SCENARIO_SDK_API_KEY": "k", "SCENARIO_SDK_API_SECRET": "s",
           "PYTHONPATH": str(REPO)}
    env.pop("SCENARIO_SDK_JWT", None)
    command = [sys.executable, "-m", "runner", "run", str(manifest), "-o", target,
               "--base-url", sim.base_url, *FAST_RUN, *extra]
    with log.open("ab") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=sink)


def _batch_row(url: str, jobs: list[str], location: str = BATCH) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("INSERT INTO kb_batches (location, manifest, manifest_sha256, plan) "
                     "VALUES (%s, 'm.yaml', 'sha', '[]') ON CONFLICT DO NOTHING", (location,))
        for n, job in enumerate(jobs):
            conn.execute("INSERT INTO kb_jobs (batch, job, position) VALUES (%s, %s, %s)",
                         (location, job, n))


@pytest.fixture
async def pool(pg_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(pg_url)
    try:
        yield pool
    finally:
        await pool.close()


def _coordinator(pool: AsyncConnectionPool, *, concurrency: int = 8, lease: float = 30.0,
                 clock: Clock = REAL_CLOCK) -> Coordinator:
    return Coordinator(Database(pool, clock=clock, patience=10.0), batch=BATCH,
                       account="sim|acct", concurrency=concurrency, lease=lease, clock=clock)


def _intent(job: str, body: dict[str, Any]) -> Intended:
    return Intended(job=job, attempt=1, model="model_kling-v2-1-pro", params=body, body=body)


# -- schema -------------------------------------------------------------------------------


def test_migrations_fresh_rerun_and_concurrent(pg_url: str) -> None:
    errors: list[BaseException] = []
    befores: list[int] = []

    def start() -> None:
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                befores.append(migrate(conn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(befores) == [0, SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert migrate(conn) == SCHEMA_VERSION  # a re-run applies nothing
        rows = conn.execute("SELECT version FROM kb_schema ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))


async def test_events_replay_like_the_jsonl_ledger(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "ledger.jsonl").write_bytes((FIXTURES / "ledger-0.1.jsonl").read_bytes())
    events = list(JsonlLedger(tmp_path).read_events())
    assert len(events) > 10
    _batch_row(pg_url, [])
    store = PostgresLedger(pg_url, BATCH)
    await store.append_many(events[:5])
    await store.append_many(events[5:])
    back = list(store.read_events())
    assert back == events
    assert replay(back) == replay(events)


# -- claims, leases, fencing ------------------------------------------------------------


async def test_two_runners_claim_disjoint_jobs(pool: AsyncConnectionPool, pg_url: str) -> None:
    jobs = [f"j{n:02d}" for n in range(20)]
    _batch_row(pg_url, jobs)
    a, b = _coordinator(pool), _coordinator(pool)
    await a.register()
    await b.register()
    got: dict[str, list[str]] = {}

    async def take(name: str, coord: Coordinator) -> None:
        claims: list[str] = []
        for _ in range(5):
            claims += [c.job for c in await coord.claim(3)]
        got[name] = claims

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, "a", a)
        tg.start_soon(take, "b", b)
    assert not set(got["a"]) & set(got["b"])
    assert sorted(got["a"] + got["b"]) == jobs
    assert await a.claim(5) == []


async def test_a_lapsed_lease_is_taken_over_and_the_old_owner_fenced(
    pool: AsyncConnectionPool, pg_url: str
) -> None:
    _batch_row(pg_url, ["knight"])
    a, b = _coordinator(pool), _coordinator(pool)
    await a.register()
    await b.register()
    [claim] = await a.claim(1)
    await a.record(_intent("knight", {"prompt": "x"}))
    assert await b.claim(1, takeovers=1) == []  # a's lease runs
    async with pool.connection() as conn:  # a stops heartbeating: its lease lapses
        await conn.execute("UPDATE kb_runners SET lease_until = now() - interval '1 s' "
                           "WHERE id = %s", (a.id,))
    assert await b.claim(1) == []  # not open: only a takeover may claim it
    [taken] = await b.claim(0, takeovers=1)
    assert taken.takeover and taken.token > claim.token
    with pytest.raises(FencedError):
        await a.record(Submitted(job="knight", job_id="job_1", model="m", attempt=1))
    with pytest.raises(FencedError):
        await a.check_fence("knight")  # no POST of a job taken over
    await b.record(Submitted(job="knight", job_id="job_1", model="m", attempt=1))
    kinds = [type(e).__name__ for e in await b.events_of(["knight"])]
    assert kinds == ["Intended", "Submitted"]  # nothing of a's after the takeover


async def test_cancelling_unsubmitted_jobs_fences_the_runner_about_to_post_them(
    pool: AsyncConnectionPool, pg_url: str
) -> None:
    """`cancel TARGET --ledger ID…` on jobs never posted: a runner holding one finds its
    token stale at the intent and posts nothing; a job whose intent got in first is left
    to the API's cancel; no runner claims a cancelled job."""
    _batch_row(pg_url, ["held", "open", "posted"])
    a, b = _coordinator(pool), _coordinator(pool)
    await a.register()
    await b.register()
    claims = {c.job for c in await a.claim(2)}
    assert claims == {"held", "open"}
    assert [c.job for c in await b.claim(1)] == ["posted"]
    await b.record(_intent("posted", {"prompt": "p"}))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        done = cancel_unsubmitted(conn, BATCH, ["held", "posted"])
    assert done == ["held"]  # "posted" has an intent whose fate the API decides
    with pytest.raises(FencedError):
        await a.record(_intent("held", {"prompt": "h"}))  # before its POST: never sent
    with pytest.raises(FencedError):
        await a.check_fence("held")
    await a.record(_intent("open", {"prompt": "o"}))  # the others go on
    assert await b.claim(5, takeovers=5) == []  # a closed job is nobody's to claim
    records = replay(await a.events_of(["held", "posted"]))
    assert records["held"].state is JobState.CANCELED and records["held"].job_id is None
    assert records["posted"].unresolved_intent
    assert [type(e).__name__ for e in await a.events_of(["held"])] == ["Finished"]


async def test_a_post_held_up_past_half_a_lease_after_its_check_is_not_sent(
    pool: AsyncConnectionPool, pg_url: str
) -> None:
    """The fence check renews the lease; a runner paused between that check and the send
    (SIGSTOP, a suspended VM: its monotonic clock runs on) must not post, for the job may
    be another's by then. Before: a paused runner's POST left on SIGCONT and the body was
    paid twice (seen in the fault tests, `test_paused_runner_is_fenced`)."""
    _batch_row(pg_url, ["knight"])
    now = [1000.0]
    clock = Clock(monotonic=lambda: now[0])
    a = _coordinator(pool, lease=30.0, clock=clock)
    await a.register()
    await a.claim(1)
    await a.record(_intent("knight", {"prompt": "x"}))
    with pytest.raises(FencedError):
        a.still_holds("knight")  # no check yet: nothing may leave
    await a.check_fence("knight")
    now[0] += 14.9
    a.still_holds("knight")  # within half a lease of the check: the POST goes
    now[0] += 0.2
    with pytest.raises(FencedError):
        a.still_holds("knight")


async def test_one_body_in_the_air_per_account_across_runners(
    pool: AsyncConnectionPool, pg_url: str
) -> None:
    _batch_row(pg_url, ["one", "two"])
    waits = anyio.Event()

    async def noted_sleep(seconds: float) -> None:
        waits.set()
        await anyio.sleep(0.01)

    a = _coordinator(pool)
    b = _coordinator(pool, clock=Clock(sleep=noted_sleep))
    for coord in (a, b):
        await coord.register()
    await a.claim(1)
    await b.claim(1)
    body = {"prompt": "same"}
    await a.record(_intent("one", body))
    done = anyio.Event()

    async def second() -> None:
        await b.record(_intent("two", body))
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await waits.wait()  # b found the body in the air and waits
        assert not done.is_set()
        assert [type(e) for e in await a.events_of(["two"])] == []
        await a.record(Submitted(job="one", job_id="job_a", model="m", attempt=1))
        await done.wait()
    assert len(await b.events_of(["two"])) == 1


async def test_batch_wide_places_are_never_exceeded(
    pool: AsyncConnectionPool, pg_url: str
) -> None:
    _batch_row(pg_url, ["j0", "j1", "j2"])
    waited = anyio.Event()

    async def noted_sleep(seconds: float) -> None:
        waited.set()
        await anyio.sleep(0.01)

    a = _coordinator(pool, concurrency=2)
    b = _coordinator(pool, concurrency=2, clock=Clock(sleep=noted_sleep))
    for coord in (a, b):
        await coord.register()
    await a.claim(2)
    await b.claim(1)
    await a.record(_intent("j0", {"p": 0}))
    await a.record(_intent("j1", {"p": 1}))

    async def in_flight() -> int:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM kb_jobs WHERE in_flight")
            row = await cur.fetchone()
            return int(row[0]) if row else -1

    async with anyio.create_task_group() as tg:
        tg.start_soon(b.record, _intent("j2", {"p": 2}))
        await waited.wait()
        assert await in_flight() == 2
        await a.record(Finished(job="j0", job_id="job_0", outcome=Outcome.SUCCEEDED,
                                status="success"))
    assert await in_flight() == 2  # j1 and j2


async def test_an_intent_waiting_for_a_place_gives_up_when_the_runner_stops(
    pool: AsyncConnectionPool, pg_url: str
) -> None:
    _batch_row(pg_url, ["j0", "j1"])
    stopping = False
    a = Coordinator(Database(pool, clock=REAL_CLOCK), batch=BATCH, account="sim|acct",
                    concurrency=1, lease=30.0, clock=REAL_CLOCK,
                    keep_waiting=lambda: not stopping)
    await a.register()
    await a.claim(2)
    await a.record(_intent("j0", {"p": 0}))
    stopping = True  # a drain: the second intent must not wait for a place, nor be written
    with pytest.raises(FencedError, match="stopping"):
        await a.record(_intent("j1", {"p": 1}))
    assert await a.events_of(["j1"]) == []


async def test_a_runner_paused_inside_a_transaction_does_not_stop_the_others(
    pool: AsyncConnectionPool, pg_url: str
) -> None:
    """A session idle inside a transaction (its process stopped) is ended by the server
    after half a lease, and its locks with it (`session_options`)."""
    _batch_row(pg_url, ["j0"])
    paused = psycopg.connect(pg_url, options=session_options(2.0))
    paused.execute("SELECT 1 FROM kb_batches FOR UPDATE")  # ...and then it stops
    try:
        a = _coordinator(pool)
        await a.register()
        await a.claim(1)
        await a.record(_intent("j0", {"p": 0}))  # needs the batch's row: waits, then gets it
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            paused.execute("SELECT 1")  # its session was ended
    finally:
        paused.close()


async def test_transactions_ride_out_terminated_connections(
    pool: AsyncConnectionPool, pg_url: str
) -> None:
    _batch_row(pg_url, ["j"])
    coord = _coordinator(pool)
    await coord.register()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      "datname = current_database() AND pid <> pg_backend_pid()")
    [claim] = await coord.claim(1)  # on a new connection
    assert claim.job == "j"
    await coord.heartbeat()


async def test_an_unreachable_ledger_halts_the_run_after_its_patience() -> None:
    pool = await open_pool("postgresql://kling:kling@127.0.0.1:1/none", connection_wait=0.2)
    try:
        db = Database(pool, clock=REAL_CLOCK, patience=0.5, where="the test ledger")

        async def nothing(conn: Any) -> None:
            return None

        with pytest.raises(SharedLedgerError) as raised:
            await db.transaction(nothing)
        assert raised.value.exit_code == 3 and "the test ledger" in str(raised.value)
        with pytest.raises(SharedLedgerError):  # the cleanup after it does not wait again
            await db.transaction(nothing)
    finally:
        await pool.close()


# -- the command line ---------------------------------------------------------------------


def test_object_store_output_without_a_ledger_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KLING_BATCH_LEDGER", raising=False)
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    assert main(["run", str(manifest), "-o", "s3://bucket/prefix", "--simulate"]) == 2
    assert "--ledger" in capsys.readouterr().err


def test_another_manifest_for_the_same_location_is_refused(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_manifest(tmp_path / "a", t2v_jobs(1))
    second = write_manifest(tmp_path / "b", t2v_jobs(2, prefix="other"))
    out = tmp_path / "out"
    assert main(["run", str(first), "-o", str(out), "--ledger", pg_url, "--simulate",
                 "-q", "--settle", "0.5"]) == 0
    assert main(["run", str(second), "-o", str(out), "--ledger", pg_url, "--simulate",
                 "-q"]) == 2
    assert "another manifest" in capsys.readouterr().err


def test_a_bad_ledger_url_is_refused(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    with pytest.raises(SystemExit):
        main(["run", str(manifest), "--lease"])
    assert main(["run", str(manifest), "--ledger", "mysql://x", "--simulate"]) == 2
    assert main(["run", str(manifest), "--ledger", "postgresql://kling:kling@127.0.0.1:1/x",
                 "--simulate"]) == 2


# -- two real runners, one batch -----------------------------------------------------------


def test_two_runner_processes_finish_one_batch_posting_each_body_once(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = t2v_jobs(16)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    extra = ("--ledger", pg_url, "--concurrency", "3", "--lease", "5")
    with background_simulator() as sim:
        runners = [start_run(manifest, out, sim, *extra) for _ in range(2)]
        logs = [finish(proc, out, timeout=240) for proc in runners]
        stats = sim.stats.to_json()
    assert [p.returncode for p in runners] == [0, 0], logs[-1]
    assert stats["jobsCreated"] == 16
    assert sorted(stats["submissionsByFingerprint"].values()) == [1] * 16
    assert stats["maxJobsInFlight"] <= 3
    assert main(["status", str(out), "--ledger", pg_url, "--json"]) == 0
    views = json.loads(capsys.readouterr().out)
    assert [v["state"] for v in views] == ["succeeded"] * 16
    assert all((out / v["assets"][0]["path"]).is_file() for v in views)


def test_two_runners_into_an_object_store(
    tmp_path: Path, pg_url: str, moto: MotoServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = moto.new_bucket("shared")
    target = f"s3://{bucket}/batches/spring/"
    for name, value in {**moto.env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(name, value)
    manifest = write_manifest(tmp_path / "m", t2v_jobs(6))
    with background_simulator() as sim:
        runners = [start_run_to(manifest, target, sim, "--ledger", pg_url, "--concurrency",
                                "2", log=tmp_path / f"run{n}.log") for n in range(2)]
        for proc in runners:
            proc.wait(timeout=240)
        stats = sim.stats.to_json()
    assert [p.returncode for p in runners] == [0, 0], (tmp_path / "run0.log").read_text()
    assert sorted(stats["submissionsByFingerprint"].values()) == [1] * 6
    for n in range(2):  # the closing line names the bucket, not the runner's local spool
        assert f"file(s) in s3://{bucket}/batches/spring/videos" in (
            tmp_path / f"run{n}.log").read_text()
    keys = {o["Key"] for o in moto.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert {f"batches/spring/videos/clip-{n:03d}.mp4" for n in range(6)} <= keys
    assert {"batches/spring/metadata.jsonl", "batches/spring/report.html"} <= keys
    assert main(["status", target, "--ledger", pg_url, "--json"]) == 0
    views = json.loads(capsys.readouterr().out)
    assert [v["state"] for v in views] == ["succeeded"] * 6
    assert {v["next"] for v in views} == {"done: 1 file(s) verified"}


async def test_a_runner_back_from_a_pause_keeps_the_jobs_nobody_took(
    pool: AsyncConnectionPool, pg_url: str
) -> None:
    _batch_row(pg_url, ["knight"])
    a = _coordinator(pool)
    await a.register()
    await a.claim(1)
    async with pool.connection() as conn:
        await conn.execute("UPDATE kb_runners SET lease_until = now() - interval '1 s'")
    await a.check_fence("knight")  # still its own: the lease is renewed, the POST may go
    b = _coordinator(pool)
    await b.register()
    assert await b.claim(1, takeovers=1) == []


def test_status_json_from_the_database_matches_the_folders(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m", t2v_jobs(3))
    out = tmp_path / "out"
    assert main(["run", str(manifest), "-o", str(out), "--ledger", pg_url, "--simulate",
                 "-q", "--settle", "0.5"]) == 0
    capsys.readouterr()
    assert main(["status", str(out), "--ledger", pg_url, "--json"]) == 0
    from_db = json.loads(capsys.readouterr().out)
    location = str(out.resolve())
    store = PostgresLedger(pg_url, location)
    (out / "ledger.jsonl").write_bytes(b"".join(
        json.dumps(line).encode() + b"\n" for line in _lines(store)))
    assert main(["status", str(out), "--json"]) == 0  # the folder's own ledger now
    assert json.loads(capsys.readouterr().out) == from_db
    assert [v["state"] for v in from_db] == ["succeeded"] * 3
    assert main(["report", str(out), "--ledger", pg_url]) == 0
    assert (out / "report.html").is_file() and (out / "results.csv").is_file()
    capsys.readouterr()
    assert main(["cancel", str(out), "--ledger", pg_url]) == 0  # nothing in flight
    assert "nothing to cancel" in capsys.readouterr().out


def test_cancel_by_id_on_a_shared_batch_cancels_jobs_never_posted(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Canceled means canceled on a shared batch too: a pending job named to `cancel
    --ledger` is recorded canceled, and the next runner submits the others, not it."""
    manifest = write_manifest(tmp_path / "m", t2v_jobs(3))
    out = tmp_path / "out"
    base = ["-o", str(out), "--ledger", pg_url, "--simulate", "-q", "--settle", "0.5"]
    # A budget below one job's price: the batch is made, nothing is posted (halt, exit 3).
    assert main(["run", str(manifest), *base, "--budget", "1"]) == 3
    assert main(["cancel", str(out), "--ledger", pg_url, "clip-000"]) == 0
    assert "1 job(s) not submitted yet: canceled" in capsys.readouterr().out
    assert main(["run", str(manifest), *base]) == 1  # some canceled
    capsys.readouterr()
    assert main(["status", str(out), "--ledger", pg_url, "--json"]) == 1
    states = {v["id"]: (v["state"], v["jobId"]) for v in json.loads(capsys.readouterr().out)}
    assert states["clip-000"] == ("canceled", None)
    assert states["clip-001"][0] == states["clip-002"][0] == "succeeded"


def _lines(store: PostgresLedger) -> list[dict[str, Any]]:
    return [to_line(e) for e in store.read_events()]


def test_a_killed_runner_s_jobs_are_taken_over_and_each_body_posted_once(
    tmp_path: Path, pg_url: str
) -> None:
    manifest = write_manifest(tmp_path / "m", t2v_jobs(12))
    out = tmp_path / "out"
    extra = ("--ledger", pg_url, "--concurrency", "4", "--lease", "2")
    with background_simulator(job_seconds=(0.5, 1.0)) as sim:
        first = start_run(manifest, out, sim, *extra)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            migrate(conn)  # the runner may not have made the schema yet
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM kb_events WHERE "
                                   "line->>'event' = 'submitted'").fetchone()
                if row and row[0] >= 3:
                    break
                time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        second = start_run(manifest, out, sim, *extra)
        log = finish(second, out, timeout=240)
        stats = sim.stats.to_json()
    assert second.returncode == 0, log
    assert "taken over" in log
    assert sorted(stats["submissionsByFingerprint"].values()) == [1] * 12
    assert stats["maxJobsInFlight"] <= 4
