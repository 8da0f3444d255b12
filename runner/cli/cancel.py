"""`kling-batch cancel DIR`: ask the API to cancel the run's in-flight jobs; report refusals.

The logic is `runner.batch.cancel`; this module parses, calls and prints. A run still going
keeps submitting new jobs into freed places: stop it first (Ctrl-C drains it), then cancel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from runner.api import api_origin
from runner.batch import cancel_jobs, cancel_targets, record_cancellations
from runner.cli import output
from runner.cli.endpoint import api_endpoint
from runner.cli.status import add_ledger_argument, load_views, shared_ledger, target_of
from runner.errors import EXIT_JOBS_FAILED, FolderError, UsageError
from runner.outdir import SIMULATOR, read_batch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="the run's output folder (or, with --ledger, the "
                        "batch's -o)")
    add_ledger_argument(parser)
    parser.add_argument("--base-url", help="API base URL (default: $SCENARIO_BASE_URL)")


def execute(args: argparse.Namespace) -> int:
    ledger = shared_ledger(args)
    if ledger is not None:
        return _cancel_shared(args, ledger)
    targets = cancel_targets(load_views(args.directory))
    unknown = targets.without_job_id
    if unknown:
        output.err(f"{len(unknown)} job(s) have a POST whose answer was lost and no jobId "
                   f"yet ({', '.join(unknown[:5])}): run again to reconcile them, then cancel")
    if not targets.jobs:
        output.out("no job of this run is in flight: nothing to cancel")
        return 0
    base_url, credentials = api_endpoint(args.base_url)
    _check_origin(args.directory, api_origin(base_url))
    outcomes = anyio.run(cancel_jobs, base_url, credentials, targets.jobs)
    refused = [o for o in outcomes if o.refusal is not None]
    for outcome in outcomes:
        text = f"refused: {outcome.refusal}" if outcome.refusal else (
            outcome.result.raw_status if outcome.result else "?")
        output.out(f"{outcome.job}  {outcome.job_id}  {text}")
    output.out(f"{len(outcomes) - len(refused)} cancel request(s) accepted, "
               f"{len(refused)} refused")
    try:
        recorded = record_cancellations(args.directory, outcomes)
    except FolderError as exc:  # the API did cancel: the next run's polling records it
        raise FolderError(f"the cancellations were not recorded: {exc.message}",
                          hint="the next run sees them at the API") from None
    if not recorded:
        output.err("a run holds this folder: it will record the cancellations itself")
    return EXIT_JOBS_FAILED if refused else 0


def _cancel_shared(args: argparse.Namespace, ledger: str) -> int:
    """Cancel a shared batch's jobs in flight. Its runners record the cancellations as
    they follow the jobs (the ledger's events are theirs to write)."""
    from runner.cli.shared import ledger_url, shared_batch
    from runner.views import job_views

    batch, records, folder = shared_batch(target_of(args), ledger_url(ledger))
    targets = cancel_targets(job_views(folder, batch.plan, records))
    if targets.without_job_id:
        output.err(f"{len(targets.without_job_id)} job(s) have a POST whose answer was lost "
                   "and no jobId yet: a runner reconciles them, then cancel again")
    if not targets.jobs:
        output.out("no job of this batch is in flight: nothing to cancel")
        return 0
    base_url, credentials = api_endpoint(args.base_url)
    origin = api_origin(base_url)
    if batch.origin not in (None, origin):
        raise UsageError(f"{batch.location} is a batch sent to {batch.origin}, not {origin}",
                         hint=f"pass --base-url {batch.origin}")
    outcomes = anyio.run(cancel_jobs, base_url, credentials, targets.jobs)
    refused = [o for o in outcomes if o.refusal is not None]
    for outcome in outcomes:
        text = f"refused: {outcome.refusal}" if outcome.refusal else (
            outcome.result.raw_status if outcome.result else "?")
        output.out(f"{outcome.job}  {outcome.job_id}  {text}")
    output.out(f"{len(outcomes) - len(refused)} cancel request(s) accepted, "
               f"{len(refused)} refused; the batch's runners record them as they follow")
    return EXIT_JOBS_FAILED if refused else 0


def _check_origin(directory: Path, origin: str) -> None:
    """UsageError when the folder's jobs belong to another API origin (or the simulator)."""
    batch = read_batch(directory)
    if batch is None or batch.origin is None or batch.origin == origin:
        return
    if batch.origin == SIMULATOR:
        raise UsageError(f"{directory} holds a batch run against the built-in simulator: its "
                         "jobs died with it, there is nothing to cancel at the API")
    raise UsageError(f"{directory} holds a batch run against {batch.origin}, not {origin}",
                     hint=f"pass --base-url {batch.origin}")
