"""Several runners, one batch: faults done to real processes, and the accounting after.

Every runner is a real `python -m runner run MANIFEST -o s3://BUCKET/PREFIX --ledger
postgresql://…` process; they share one simulator process (after-create faults on: jobs are
created and their answers lost), one PostgreSQL database (a fresh one per test) and one S3
bucket on moto's server. The faults are real too: SIGKILL at seeded moments, SIGSTOP past
the lease then SIGCONT, a restart of the PostgreSQL server, 503s and resets from a proxy in
front of S3.

Afterwards, always the same accounting (`assert_accounted`):
- every distinct request body was POSTed exactly as often as the manifest asks (`repeat: n`
  and identical entries count), from the simulator's own counters;
- the simulator never had more of the batch's jobs in flight than `--concurrency`;
- `status --json` shows every job succeeded with one asset, and every paid job belongs to
  exactly one manifest job;
- every video object in the bucket was downloaded and its size and sha256 match the ledger,
  and the bucket holds no other video.

Select them with `-m several_runners`. Sizes are modest (about 50 jobs, jobs of 0.3-1 s at
the simulator) and every wait is on a condition with a generous deadline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers.cluster import (
    AFTER_CREATE_FAULTS,
    T2V,
    Accounting,
    Cluster,
    RunnerProcess,
    SimulatorProcess,
    account,
    cluster_jobs,
    expanded_count,
    expected_submissions,
    local_tcp_ports,
    restart_postgresql,
    submitted_count,
    wait_for_created,
    wait_until,
)
from tests.helpers.faultproxy import Fault, FaultRule, background_fault_proxy
from tests.helpers.runs import write_manifest

pytestmark = [pytest.mark.several_runners, pytest.mark.timeout(600)]

CONCURRENCY = 6
LEASE = 3  # seconds: short, so a takeover happens within the test's patience


class Target:
    """Where the batch's videos go, and the test's own reader of it."""

    spec: str  # what -o says

    def videos(self) -> set[str]:
        """Every video file there, relative to the batch's root."""
        raise NotImplementedError

    def read(self, path: str) -> bytes:
        raise NotImplementedError


class FolderTarget(Target):
    """A shared file system: every runner writes into one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.spec = str(folder)

    def videos(self) -> set[str]:
        root = self.folder / "videos"
        found = root.rglob("*") if root.is_dir() else iter(())
        return {p.relative_to(self.folder).as_posix() for p in found if p.is_file()}

    def read(self, path: str) -> bytes:
        return (self.folder / path).read_bytes()


class BucketTarget(Target):
    """A prefix in a bucket of moto's S3 server, read with a boto3 client of its own."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.spec = f"s3://{bucket}/{prefix}"

    def videos(self) -> set[str]:
        found: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/videos/"):
            found.update(item["Key"].removeprefix(f"{self.prefix}/")
                         for item in page.get("Contents", []))
        return found

    def read(self, path: str) -> bytes:
        reply = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{path}")
        return bytes(reply["Body"].read())


@dataclass
class Bed:
    """What one test's runners share, besides the simulator."""

    folder: Path
    ledger: str  # postgresql://… of a fresh database
    target: Target
    env: dict[str, str]  # AWS_* of the S3 server (empty for a folder)


@pytest.fixture(params=["s3"])
def bed(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> Bed:
    """A fresh database and, by the test's parameter, a fresh bucket prefix or a folder."""
    if request.param == "folder":
        return Bed(tmp_path, pg_url, FolderTarget(tmp_path / "shared"), {})
    moto = request.getfixturevalue("moto")
    bucket = moto.new_bucket("runners")
    return Bed(tmp_path, pg_url, BucketTarget(moto.client(), bucket, "batch"), moto.env())


both_targets = pytest.mark.parametrize("bed", ["s3", "folder"], indirect=True)


def start_cluster(bed: Bed, jobs: list[dict[str, Any]], *, seed: int, runners: int,
                  env: dict[str, str] | None = None,
                  faults: dict[str, float] | None = None,
                  job_seconds: tuple[float, float] = (0.3, 1.0)) -> Cluster:
    manifest = write_manifest(bed.folder, jobs)
    sim = SimulatorProcess(bed.folder, seed=seed, job_seconds=job_seconds,
                           faults=AFTER_CREATE_FAULTS if faults is None else faults)
    cluster = Cluster(bed.folder, sim, manifest, bed.target.spec, bed.ledger,
                      env={**bed.env, **(env or {})},
                      flags=["--concurrency", str(CONCURRENCY), "--lease", str(LEASE)])
    cluster.add(runners)
    return cluster


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    """Every cluster a test starts is stopped at teardown, runners first."""
    started: list[Cluster] = []
    yield started
    for cluster in started:
        cluster.stop_all()
        cluster.sim.stop()


def finish_batch(cluster: Cluster, timeout: float = 300) -> dict[str, int]:
    """Wait for the runners; a runner that halted resumably (exit 3) is followed by one
    more run, which must finish the batch (exit 0). The exit codes seen, by runner."""
    codes = cluster.wait_all(timeout)
    ended = {code for code in codes.values() if code != -9}  # -9: killed by the test
    assert ended <= {0, 3}, (codes, cluster.logs()[-6000:])
    if 0 not in ended:
        (final,) = cluster.add(1)
        assert final.wait(timeout) == 0, final.tail()
    return codes


def verify_videos(target: Target, rows: list[dict[str, Any]]) -> int:
    """Read every video file of the target back and check it against `status --json`; the
    number of files verified. No file may be missing, and no other video may be there."""
    expected = {asset["path"]: (asset["bytes"], asset["sha256"])
                for row in rows for asset in row["assets"]}
    found = target.videos()
    assert found == set(expected), {"stray": sorted(found - set(expected)),
                                    "missing": sorted(set(expected) - found)}
    for path, (size, sha256) in expected.items():
        data = target.read(path)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha256), path
    return len(expected)


def verify_metadata(target: Target, rows: list[dict[str, Any]]) -> int:
    """`metadata.jsonl` at the batch's root names every video, relative to the root."""
    lines = target.read("metadata.jsonl").decode().splitlines()
    names = {json.loads(line)["file_name"] for line in lines if line}
    assert names == {asset["path"] for row in rows for asset in row["assets"]}
    return 0


def held_by(ledger: str, runner: RunnerProcess, *, in_flight: bool = False) -> set[str]:
    """The jobs a runner process holds now in the claims table (with a place at the API
    only, when `in_flight`)."""
    query = ("SELECT j.job FROM kb_jobs j JOIN kb_runners r ON r.id = j.owner "
             "WHERE r.pid = %s AND j.status = 'held'" + (" AND j.in_flight" if in_flight else ""))
    with psycopg.connect(ledger) as conn:
        try:
            return {str(row[0]) for row in conn.execute(query, (runner.pid,)).fetchall()}
        except psycopg.errors.UndefinedTable:
            return set()  # the runner has not created the schema yet


def ledger_state(ledger: str) -> str:
    """Who holds what, and what every connection is doing: for a wait that timed out."""
    with psycopg.connect(ledger, autocommit=True) as conn:
        jobs = conn.execute(
            "SELECT r.pid, r.lease_until < now(), j.status, j.in_flight, count(*) FROM kb_jobs j "
            "LEFT JOIN kb_runners r ON r.id = j.owner GROUP BY 1, 2, 3, 4 ORDER BY 1").fetchall()
        activity = conn.execute(
            "SELECT pid, state, wait_event_type, left(query, 80) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
    return (f"jobs (runner pid, lease lapsed, status, in flight, count): {jobs}\n"
            f"connections: {activity}")


def event_lines(ledger: str) -> list[dict[str, Any]]:
    """Every event of the database's batches, in order (the store's own table)."""
    with psycopg.connect(ledger) as conn:
        rows = conn.execute("SELECT line FROM kb_events ORDER BY seq").fetchall()
    return [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in rows]


def verify_events(ledger: str) -> int:
    """No job's history says it twice: one jobId per job (never posted again), at most one
    outcome and one download. A runner that recorded over a job's new owner (an unfenced
    write after a takeover) shows up here."""
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    job_ids: dict[str, set[str]] = defaultdict(set)
    for line in event_lines(ledger):
        kinds[line["job"]][line["event"]] += 1
        if line["event"] == "submitted" and line.get("jobId"):
            job_ids[line["job"]].add(line["jobId"])
    doubled = {job: dict(c) for job, c in kinds.items()
               if c["succeeded"] > 1 or c["downloaded"] > 1}
    assert doubled == {}, doubled
    reposted = {job: ids for job, ids in job_ids.items() if len(ids) != 1}
    assert reposted == {}, reposted
    return 0


def assert_accounted(bed: Bed, cluster: Cluster, jobs: list[dict[str, Any]]) -> Accounting:
    """The accounting of the module docstring; returns it (the test prints its summary).

    Every check runs and every failure is reported together: one fault often shows in
    several places (a wrong adoption leaves a paid job behind and a place taken)."""
    books = account(cluster.sim, jobs)
    problems: dict[str, Any] = {}
    # Money first: a body paid twice (or never) is what these tests exist for.
    if books.mismatches or books.jobs_created != expanded_count(jobs):
        problems["bodies POSTed (asked, posted)"] = books.mismatches
    if books.max_in_flight > CONCURRENCY:
        problems["max in flight"] = books.max_in_flight
    rows = cluster.status_json()
    if len(rows) != expanded_count(jobs):
        problems["status rows"] = len(rows)
    not_done = [(r["id"], r["state"], r["error"]) for r in rows
                if r["state"] != "succeeded" or len(r["assets"]) != 1]
    if not_done:
        problems["not succeeded with one file"] = not_done
    created = {job["jobId"]: job["fingerprint"] for job in cluster.sim.stats()["jobs"]}
    by_job_id: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_job_id[row["jobId"]].append(row["id"])
    # One API job per manifest job, and every paid job belongs to one: no job followed for
    # two entries while another paid one is left behind.
    shared = {job_id: ids for job_id, ids in by_job_id.items() if len(ids) > 1}
    if shared:
        problems["one API job for several entries"] = shared
    if set(by_job_id) != set(created):
        problems["paid and nobody's"] = sorted(set(created) - set(by_job_id))
    verified = 0
    for check in (lambda: verify_videos(bed.target, rows),
                  lambda: verify_metadata(bed.target, rows),
                  lambda: verify_events(bed.ledger)):
        try:
            verified = check() or verified
        except AssertionError as exc:
            problems.setdefault("files and events", []).append(str(exc)[:2000])
    if problems:
        print("accounting problems:", json.dumps(problems, indent=1))  # whole, untruncated
    assert problems == {}, (books.summary(), problems)
    print(f"accounting: {books.summary()}; {verified} files verified at {bed.target.spec}")
    return books


@both_targets
def test_three_runners_one_killed_halfway_finish_the_batch(
    bed: Bed, clusters: list[Cluster]
) -> None:
    """The issue's "done when": three runners, one SIGKILLed halfway and not restarted; the
    other two take over its jobs after the lease and finish the batch."""
    jobs = cluster_jobs(45)
    cluster = start_cluster(bed, jobs, seed=10, runners=3)
    clusters.append(cluster)
    wait_for_created(cluster.sim, expanded_count(jobs) // 2, cluster=cluster)
    victim = random.Random(10).choice(cluster.runners)
    victim.kill()
    assert victim.exits == [-9]
    codes = finish_batch(cluster)
    assert codes[victim.name] == -9
    assert_accounted(bed, cluster, jobs)


def test_runners_join_a_batch_in_progress(bed: Bed, clusters: list[Cluster]) -> None:
    """A second machine joins while the first is submitting: joining writes the batch's
    rows while the first runner takes places, and neither may fail for it."""
    jobs = cluster_jobs(30)
    cluster = start_cluster(bed, jobs, seed=9, runners=1)
    clusters.append(cluster)
    wait_for_created(cluster.sim, 3, cluster=cluster)
    cluster.add(3)
    codes = cluster.wait_all(300)
    assert set(codes.values()) == {0}, (codes, cluster.logs()[-6000:])
    assert_accounted(bed, cluster, jobs)


def test_a_killed_runner_holding_every_place_is_taken_over(
    bed: Bed, clusters: list[Cluster]
) -> None:
    """The worst moment to die: the first runner holds every one of the batch's places (its
    jobs are at the API) when it is killed, and the two others have already claimed as many
    jobs as they have room for, all waiting for a place. Its places come back only with its
    jobs, so the others must take them over although they are full."""
    jobs = cluster_jobs(40)
    cluster = start_cluster(bed, jobs, seed=8, runners=1, job_seconds=(2.0, 3.0))
    clusters.append(cluster)
    (first,) = cluster.runners
    wait_until(lambda: len(held_by(bed.ledger, first, in_flight=True)) == CONCURRENCY, 120,
               "the first runner to hold every place")
    others = cluster.add(2)
    wait_until(lambda: all(held_by(bed.ledger, r) for r in others), 120,
               "the two others to claim jobs")
    first.kill()
    codes = finish_batch(cluster, timeout=120)
    assert codes[first.name] == -9
    assert_accounted(bed, cluster, jobs)


def test_identical_bodies_on_two_runners_adopt_their_own_jobs(
    bed: Bed, clusters: list[Cluster]
) -> None:
    """Every POST's answer is lost, and each body is asked for twice, the two entries far
    apart in the manifest so that two runners claim them: each entry must adopt its own job
    from the listing, never the one another runner already recorded for the other entry."""
    bodies = [{"prompt": f"Pair {i}: a gull over the harbour", "duration": "5"}
              for i in range(10)]
    jobs = [{"id": f"first-{i}", "model": T2V, "params": dict(b)} for i, b in enumerate(bodies)]
    jobs += [{"id": f"second-{i}", "model": T2V, "params": dict(b)}
             for i, b in enumerate(bodies)]
    cluster = start_cluster(bed, jobs, seed=7, runners=2,
                            faults={"reset_after_create": 1.0})
    clusters.append(cluster)
    finish_batch(cluster)
    assert_accounted(bed, cluster, jobs)


@both_targets
def test_sigkill_at_random_moments_repeatedly(bed: Bed, clusters: list[Cluster]) -> None:
    """Four SIGKILLs at seeded moments of the batch's progress, each to a runner picked at
    random and restarted at once; then the batch finishes with nothing lost or paid twice."""
    rng = random.Random(20261201)
    jobs = cluster_jobs(50)
    total = expanded_count(jobs)
    cluster = start_cluster(bed, jobs, seed=11, runners=3)
    clusters.append(cluster)
    moments = sorted(rng.sample(range(4, total - 8), 4))
    kills = 0
    for moment in moments:
        wait_for_created(cluster.sim, moment, cluster=cluster)
        alive = cluster.alive()
        if not alive:
            break
        victim = rng.choice(alive)
        victim.kill()
        kills += 1
        victim.start()
    assert kills == 4, f"the batch ended after {kills} kills"
    finish_batch(cluster)
    assert_accounted(bed, cluster, jobs)


def test_postgresql_restarted_mid_run(bed: Bed, clusters: list[Cluster]) -> None:
    """The database server restarts under three runners: each waits and reconnects or halts
    resumably (exit 3); after a final run everything is accounted."""
    jobs = cluster_jobs(45)
    cluster = start_cluster(bed, jobs, seed=12, runners=3)
    clusters.append(cluster)
    wait_for_created(cluster.sim, expanded_count(jobs) // 3, cluster=cluster)
    before = submitted_count(cluster.sim)
    restart_postgresql()
    codes = finish_batch(cluster)
    assert before < expanded_count(jobs), "the batch was done before the restart"
    print(f"exit codes after the restart: {codes}")
    assert_accounted(bed, cluster, jobs)


def test_s3_503s_and_resets_are_retried(bed: Bed, clusters: list[Cluster]) -> None:
    """The runners reach S3 through a proxy that answers 503 SlowDown or drops the
    connection (before forwarding, and after: the object is stored, the answer lost) on a
    share of the uploads and of the checks after them; uploads are retried and every object
    read back from the bucket matches the ledger."""
    moto = bed.env["AWS_ENDPOINT_URL"]
    # Windows that do not overlap (the nth matching request, retries included), so every
    # rule fires in full: PUTs 2-4, 6-8 and 11-13, HEADs 3-5 and 8-9.
    rules = [FaultRule(Fault.SLOW_DOWN, method="PUT", after=1, times=3),
             FaultRule(Fault.RESET, method="PUT", after=5, times=3),
             FaultRule(Fault.RESET_AFTER, method="PUT", after=10, times=3),
             FaultRule(Fault.SLOW_DOWN, method="HEAD", after=2, times=3),
             FaultRule(Fault.RESET, method="HEAD", after=7, times=2)]
    with background_fault_proxy(moto, *rules) as proxy:
        jobs = cluster_jobs(30)
        cluster = start_cluster(bed, jobs, seed=13, runners=2,
                                env={"AWS_ENDPOINT_URL": proxy.url})
        clusters.append(cluster)
        finish_batch(cluster)
        fired = Counter(f"{request.method} {rule.fault.name}" for rule, request in proxy.fired)
        books = assert_accounted(bed, cluster, jobs)
    # Every rule fired in full: the faults happened, so the test proves something.
    assert fired == {"PUT SLOW_DOWN": 3, "PUT RESET": 3, "PUT RESET_AFTER": 3,
                     "HEAD SLOW_DOWN": 3, "HEAD RESET": 2}, fired
    print(f"S3 faults injected: {dict(fired)}; {books.jobs_created} jobs")


def test_paused_runner_is_fenced(bed: Bed, clusters: list[Cluster]) -> None:
    """A runner paused (SIGSTOP) longer than its lease, while jobs of it are at the API,
    loses them to the others; once continued (SIGCONT) its writes for them are refused (it
    says so and moves on) and nothing it does shows in the accounting or the events."""
    jobs = cluster_jobs(40)
    cluster = start_cluster(bed, jobs, seed=14, runners=3, job_seconds=(1.0, 2.0))
    clusters.append(cluster)
    sleeper = cluster.runners[0]
    # Some of the batch's places, not all: the others keep room to take its jobs over.
    wait_until(lambda: 0 < len(held_by(bed.ledger, sleeper, in_flight=True)) < CONCURRENCY,
               120, "the sleeper to hold jobs at the API")
    sleeper.pause()
    asleep = held_by(bed.ledger, sleeper)
    try:
        wait_until(lambda: not held_by(bed.ledger, sleeper) & asleep, 120,
                   f"the others to take over the sleeper's {len(asleep)} jobs")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; sleeper pid {sleeper.pid}\n"
                             f"{ledger_state(bed.ledger)}") from None
    sleeper.resume()
    finish_batch(cluster)
    assert_accounted(bed, cluster, jobs)
    log = sleeper.logs()
    assert "another runner took this job over" in log or "lease lapsed" in log, log[-3000:]


def in_transaction(ledger: str, runner: RunnerProcess) -> bool:
    """Whether one of the runner's connections is inside a transaction the server waits on,
    one that has locked or written rows already (it has a transaction id)."""
    ports = local_tcp_ports(runner.pid)
    with psycopg.connect(ledger, autocommit=True) as conn:
        rows = conn.execute("SELECT client_port FROM pg_stat_activity WHERE datname = "
                            "current_database() AND state = 'idle in transaction' AND "
                            "backend_xid IS NOT NULL").fetchall()
    return any(row[0] in ports for row in rows)


def test_runner_paused_inside_a_transaction_is_taken_over(
    bed: Bed, clusters: list[Cluster]
) -> None:
    """A runner stopped between two statements of one of its transactions (a VM paused, a
    process stopped: its connection stays open, the server waits on it) must not keep its
    jobs from the others past its lease, whatever rows that transaction has locked."""
    jobs = cluster_jobs(40)
    cluster = start_cluster(bed, jobs, seed=15, runners=3, job_seconds=(1.0, 2.0))
    clusters.append(cluster)
    sleeper = cluster.runners[0]
    wait_until(lambda: bool(held_by(bed.ledger, sleeper, in_flight=True)), 120,
               "the sleeper to hold jobs at the API")
    for _ in range(500):  # stop it; keep it stopped only if it is inside a transaction
        sleeper.pause()
        if in_transaction(bed.ledger, sleeper):
            break
        sleeper.resume()
    else:
        raise AssertionError("never caught the sleeper inside a transaction")
    try:
        wait_until(lambda: not held_by(bed.ledger, sleeper), 120,
                   "the others to take over every job of the sleeper")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; sleeper pid {sleeper.pid}\n"
                             f"{ledger_state(bed.ledger)}") from None
    finally:
        sleeper.resume()
    finish_batch(cluster)
    assert_accounted(bed, cluster, jobs)


def test_accounting_sees_a_body_paid_twice(tmp_path: Path) -> None:
    """The accounting can fail: a body POSTed twice, or a body never POSTed, is reported
    (raw POSTs straight to a simulator process, no runner)."""
    jobs = cluster_jobs(2, repeated=2)
    sim = SimulatorProcess(tmp_path, seed=1, faults={})
    try:
        for job in [jobs[0], jobs[0], jobs[2], jobs[3], jobs[4]]:
            post_generate(sim, job["model"], job["params"])
        books = account(sim, jobs)
    finally:
        sim.stop()
    first, second, again, twin = (expected_submissions([job]) for job in jobs[:4])
    assert books.mismatches == {
        next(iter(first)): (1, 2),  # paid twice
        next(iter(second)): (1, 0),  # never paid
        next(iter(again)): (2, 1),  # repeat: 2, paid once
    }
    assert next(iter(twin)) not in books.mismatches  # two entries, one body, two POSTs
    assert books.jobs_created == 5 and books.max_in_flight >= 1


def post_generate(sim: SimulatorProcess, model: str, params: dict[str, Any]) -> None:
    token = base64.b64encode(b"cluster-key:cluster-secret").decode()
    request = urllib.request.Request(
        f"{sim.base_url}/generate/custom/{model}", data=json.dumps(params).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200
