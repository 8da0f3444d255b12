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
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import anyio

from runner.batch import Coordination, Live, PreparedRun
from runner.cli import output
from runner.cli.refresh import replay_with_timeline, write_views_of
from runner.cli.validate import load_from_args
from runner.clock import REAL_CLOCK
from runner.cluster import (
    Coordinator,
    Database,
    SharedBatch,
    SharedRun,
    batch_location,
    check_ledger_url,
    connected,
    open_pool,
    prepare_shared_run,
    read_batch_events,
    require_batch,
    safe_url,
)
from runner.errors import KlingBatchError, UsageError
from runner.ledger import JobRecord, replay
from runner.outdir import SIMULATOR
from runner.polling import PollMode
from runner.views import JobView, job_views

DEFAULT_LEASE = 30.0


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


def execute_shared(args: argparse.Namespace, ledger: str) -> int:
    """`run` into a shared batch."""
    from runner.cli.run import _run, build_options, resolve_endpoint

    conninfo = check_ledger_url(ledger)
    lease = lease_seconds(args.lease)
    if args.output and "://" in args.output:
        raise UsageError(f"-o {args.output}: object-store output is not available in this "
                         "build", hint="use a shared folder as -o")
    registry, manifest = load_from_args(args)
    for warning in manifest.warnings:
        output.err(str(warning))
    endpoint = resolve_endpoint(args)
    options = dataclasses.replace(build_options(args, manifest, registry.models, endpoint),
                                  batch_index=None)
    location = batch_location(str(options.out_dir))
    with prepare_shared_run(manifest, options, conninfo, location) as prepared:
        for note in prepared.warnings:
            output.err(note)
        join = partial(_join, prepared=prepared, conninfo=conninfo, location=location,
                       lease=lease)
        views = partial(_write_views, conninfo=conninfo, location=location)
        return anyio.run(partial(_run, args, prepared, registry, endpoint, join=join,
                                 write_views=views))


async def _join(
    stack: AsyncExitStack, live: Live, *, prepared: PreparedRun, conninfo: str,
    location: str, lease: float,
) -> Coordination:
    options = prepared.options
    pool = await open_pool(conninfo, max_size=max(4, options.concurrency + 2))
    stack.push_async_callback(pool.close)
    db = Database(pool, clock=REAL_CLOCK, where=f"the shared ledger at {safe_url(conninfo)}")
    account = f"{options.origin or SIMULATOR}|{options.account or ''}"
    coordinator = Coordinator(db, batch=location, account=account,
                              concurrency=options.concurrency, lease=lease, clock=REAL_CLOCK)
    return SharedRun(coordinator, prepared,
                     capacity=options.concurrency + options.download_concurrency,
                     list_jobs=options.poll_mode is PollMode.LIST,
                     may_claim=lambda: live.control.submissions_allowed)


def _write_views(directory: Path, *, conninfo: str, location: str) -> None:
    """The batch's views into its folder, from the shared ledger; a failure is said."""
    try:
        write_shared_views(directory, conninfo, location)
    except (OSError, KlingBatchError) as exc:
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
    location = batch_location(target)
    with connected(conninfo) as conn:
        batch = require_batch(conn, location)
    records = replay(read_batch_events(conninfo, location))
    folder = Path(location) if "://" not in location else Path(".")
    return batch, records, folder


def shared_views(target: str, conninfo: str) -> list[JobView]:
    """The job views of a shared batch (for `status` and `cancel`)."""
    batch, records, folder = shared_batch(target, conninfo)
    return job_views(folder, batch.plan, records)
