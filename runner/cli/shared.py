"""The commands on a shared batch (`--ledger postgresql://…`): `run` joins it, `status`,
`report` and `cancel` read it. Imported only when a ledger is given (psycopg loads here).

A shared batch's output location is its name in the ledger; a local folder is a shared file
system's (every runner writes its videos there). The per-user index of batches and the
folder lock do not apply: the ledger is what the runners share.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool

from runner.batch import Coordination, Live, PreparedRun
from runner.cli import output
from runner.cli.refresh import replay_with_timeline, write_views_of
from runner.clock import REAL_CLOCK
from runner.cluster import (
    Coordinator,
    Database,
    SharedBatch,
    SharedRun,
    batch_location,
    cancel_unsubmitted,
    check_ledger_url,
    connected,
    open_pool,
    prepare_shared_run,
    read_batch_events,
    require_batch,
    safe_url,
    session_options,
)
from runner.errors import KlingBatchError, UsageError
from runner.ledger import JobRecord, replay
from runner.objstore import (
    ObjectStore,
    S3Config,
    S3Location,
    complete_store_moves,
    default_spool_dir,
    open_object_destination,
    open_store,
    stored_assets,
    stored_videos,
    write_store_views,
)
from runner.outdir import SIMULATOR, Destination
from runner.polling import PollMode
from runner.views import JobView, job_views

DEFAULT_LEASE = 30.0
POOL_SIZE = 8  # connections per runner, at most


def lease_seconds(value: str | None) -> float:
    """--lease as seconds; UsageError unless a finite number of at least one second."""
    if value is None:
        return DEFAULT_LEASE
    try:
        lease = float(value)
    except ValueError:
        lease = math.nan
    if not math.isfinite(lease) or lease < 1:
        raise UsageError(f"--lease {value!r}: give a number of seconds, at least 1",
                         hint="e.g. --lease 30")
    return lease


def ledger_url(value: str | None) -> str:
    """The ledger URL given (flag or $KLING_BATCH_LEDGER), checked."""
    return check_ledger_url(value)


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """An object-store -o: where, how to reach it, and the local spool of its runner."""

    location: S3Location
    config: S3Config
    spool_root: Path

    @property
    def work_dir(self) -> Path:
        """The runner's local folder (plan, asset cache, metadata): not the batch's files."""
        return self.spool_root / "batch"


def store_target(output: str) -> StoreTarget:
    """The object store `-o s3://…` names, configured from the AWS variables; UsageError
    when the location or the variables are wrong."""
    location = S3Location.parse(output)
    return StoreTarget(location, S3Config.from_env(os.environ),
                       default_spool_dir(str(location), os.environ))


def execute_shared(args: argparse.Namespace, ledger: str) -> int:
    """`run` into a shared batch."""
    from runner.cli.run import _run, build_options, load_run

    conninfo = check_ledger_url(ledger)
    lease = lease_seconds(args.lease)
    store = store_target(args.output) if args.output and "://" in args.output else None
    registry, manifest, endpoint, endings = load_run(args)
    if store is not None:
        args = argparse.Namespace(**{**vars(args), "output": str(store.work_dir)})
    options = dataclasses.replace(build_options(args, manifest, registry.models, endpoint),
                                  batch_index=None)
    if not options.selection.everything:
        # The runners of a shared batch claim whatever is open: a selection would be one
        # runner's view of the batch, not the batch's. A pilot goes into a folder first.
        raise UsageError(f"{options.selection.describe()} selects jobs of a folder's batch; "
                         "a shared batch's runners take every job",
                         hint="run the pilot into a folder (-o DIR without --ledger), then "
                         "start the shared batch")
    location = str(store.location) if store else batch_location(str(options.out_dir))
    stored = None if store is None else _stored_check(anyio.run(_stored_sizes, store))
    with prepare_shared_run(manifest, options, conninfo, location, stored=stored) as prepared:
        for note in () if args.quiet else prepared.warnings:
            output.err(note)
        joined: list[tuple[SharedRun, AsyncConnectionPool]] = []
        join = partial(_join, prepared=prepared, conninfo=conninfo, location=location,
                       lease=lease, store=store, joined=joined)
        views: Callable[[Path], object] = (
            partial(_write_views, conninfo=conninfo, location=location) if store is None
            else _published_by_the_run)
        try:
            return anyio.run(partial(_run, args, prepared, registry, endpoint, endings,
                                     join=join, write_views=views))
        finally:
            for shared, pool in () if args.quiet else joined:
                output.err(ledger_note(shared, pool, len(prepared.manifest.jobs)))


def ledger_note(shared: SharedRun, pool: AsyncConnectionPool, jobs: int) -> str:
    """The closing line of a shared run: what it asked of the database, what it took over
    (the benchmark's queries per job and peak connections)."""
    stats = pool.get_stats()
    done = shared.transactions
    per_job = f" ({done / jobs:.1f} per job of the batch)" if jobs else ""
    return (f"shared ledger: {done} transaction(s){per_job}, {stats.get('connections_num', 0)} "
            f"connection(s) opened (at most {pool.max_size} at once), "
            f"{stats.get('connections_lost', 0)} lost; {shared.taken_over} job(s) taken over "
            "from runners whose lease lapsed")

def _published_by_the_run(_directory: Path) -> None:
    """An object store's views are written by the run itself (`Destination.publish`)."""


async def _stored_sizes(store: StoreTarget) -> dict[str, int]:
    async with open_store(store.config, store.location) as client:
        await client.check_bucket()
        return await stored_videos(client)


def _stored_check(sizes: Mapping[str, int]) -> Callable[[JobRecord], frozenset[str]]:
    """A record's asset ids whose objects are stored with their recorded size (each was
    checked against its checksum when it was uploaded)."""
    return partial(stored_assets, sizes)


async def _heads(
    client: ObjectStore, records: Mapping[str, JobRecord]
) -> Callable[[JobRecord], frozenset[str]]:
    """For claimed jobs (another runner may have uploaded their files since the start):
    which recorded files the store holds, by one HEAD per file."""
    in_place: set[str] = set()
    for record in records.values():
        for asset in record.assets:
            head = await client.head(client.location.key(asset.path))
            if head is not None and head.size == asset.bytes and head.sha256 in (
                    None, asset.sha256):
                in_place.add(asset.path)
    return lambda record: frozenset(a.asset_id for a in record.assets if a.path in in_place)


async def _join(
    stack: AsyncExitStack, live: Live, *, prepared: PreparedRun, conninfo: str,
    location: str, lease: float, store: StoreTarget | None,
    joined: list[tuple[SharedRun, AsyncConnectionPool]],
) -> tuple[Coordination, Destination | None]:
    options = prepared.options
    # Transactions are short and a waiting intent holds no connection: a few connections
    # serve hundreds of jobs in flight, and runners on many machines must stay far below
    # the server's max_connections (100 by default).
    pool = await open_pool(conninfo, max_size=POOL_SIZE, options=session_options(lease))
    stack.push_async_callback(pool.close)
    db = Database(pool, clock=REAL_CLOCK, where=f"the shared ledger at {safe_url(conninfo)}")
    account = f"{options.origin or SIMULATOR}|{options.account or ''}"
    coordinator = Coordinator(db, batch=location, account=account,
                              concurrency=options.concurrency, lease=lease, clock=REAL_CLOCK,
                              keep_waiting=lambda: live.control.submissions_allowed)
    destination: Destination | None = None
    check_files = None
    if store is not None:
        destination = await stack.enter_async_context(open_object_destination(
            store.location, os.environ, concurrency=options.concurrency,
            budget=options.budget, spool_dir=store.spool_root))
        await complete_store_moves(destination.store, prepared.records.values())
        check_files = partial(_heads, destination.store)
    shared = SharedRun(coordinator, prepared,
                       capacity=options.concurrency + options.download_concurrency,
                       list_jobs=options.poll_mode is PollMode.LIST,
                       may_claim=lambda: live.control.submissions_allowed,
                       check_files=check_files)
    joined.append((shared, pool))
    return shared, destination


def _write_views(directory: Path, *, conninfo: str, location: str) -> None:
    """The batch's views into its folder, from the shared ledger; a failure is said."""
    try:
        write_shared_views(directory, conninfo, location)
    except (OSError, KlingBatchError, psycopg.Error) as exc:
        output.err(f"could not write the report of {directory}: {exc}")


def write_shared_views(directory: Path, conninfo: str, target: str) -> list[Path]:
    """report.html, results.csv and README.md of a shared batch, into `directory`."""
    location = batch_location(target)
    with connected(conninfo) as conn:
        batch = require_batch(conn, location)
    records, timeline = replay_with_timeline(read_batch_events(conninfo, location))
    directory.mkdir(parents=True, exist_ok=True)
    return write_views_of(directory, batch.plan, records, timeline)


def shared_batch(target: str, conninfo: str) -> tuple[SharedBatch, dict[str, JobRecord], Path]:
    """A shared batch, its records and the local folder its views read files from."""
    location = str(S3Location.parse(target)) if "://" in target else batch_location(target)
    with connected(conninfo) as conn:
        batch = require_batch(conn, location)
    records = replay(read_batch_events(conninfo, location))
    folder = Path(location) if "://" not in location else Path(".")
    return batch, records, folder


def cancel_pending_shared(conninfo: str, location: str, jobs: list[str]) -> list[str]:
    """Cancel the named jobs of a shared batch that were never posted; those cancelled."""
    with connected(conninfo) as conn:
        return cancel_unsubmitted(conn, location, jobs)


def shared_views(target: str, conninfo: str) -> list[JobView]:
    """The job views of a shared batch (for `status` and `cancel`); an object store's
    files count as present when stored with their recorded size."""
    batch, records, folder = shared_batch(target, conninfo)
    if "://" not in target:
        return job_views(folder, batch.plan, records)
    check = _stored_check(anyio.run(_stored_sizes, store_target(target)))
    return job_views(folder, batch.plan, records,
                     present=lambda r: r is not None and len(check(r)) == len(r.assets))


def write_store_report(target: str, conninfo: str) -> list[str]:
    """`report s3://…`: metadata.jsonl, results.csv and report.html under the prefix."""
    batch, records, _ = shared_batch(target, conninfo)
    events = list(read_batch_events(conninfo, batch.location))
    store = store_target(target)

    async def write() -> list[str]:
        async with open_store(store.config, store.location) as client:
            return await write_store_views(client, records=records, specs=batch.plan,
                                           events=events)

    return [f"s3://{store.location.bucket}/{key}" for key in anyio.run(write)]
