"""`kling-batch cancel DIR [ID|GLOB …]`: cancel the run's in-flight jobs (all, or those
named) at the API, and the named jobs not yet submitted locally; report refusals.

The logic is `runner.batch.cancel` and `runner.batch.withdrawals`; this module parses, calls
and prints. A run going on in the folder is told through the folder: it submits none of the
jobs named, and records their cancellation itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from runner.api import Credentials, api_origin
from runner.batch import (
    cancel_jobs,
    cancel_pending,
    cancel_targets,
    check_patterns,
    id_matches,
    record_cancellations,
)
from runner.cli import output
from runner.cli.endpoint import api_endpoint
from runner.cli.status import add_ledger_argument, load_views, shared_ledger, target_of
from runner.domain import JobState
from runner.errors import EXIT_JOBS_FAILED, FolderError, UsageError
from runner.outdir import SIMULATOR, read_batch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="the run's output folder (or, with --ledger, the "
                        "batch's -o)")
    parser.add_argument("patterns", nargs="*", metavar="ID|GLOB",
                        help="cancel only these jobs (ids or globs such as 'shot-1*'; quote "
                        "them for the shell): those in flight at the API, and those not "
                        "submitted yet, which are recorded canceled and never submitted "
                        "(bring one back with `run --retry-failed --only ID`), also by a "
                        "run going on in the folder, which submits none of them; without "
                        "any, every job in flight")
    add_ledger_argument(parser)
    parser.set_defaults(trailing_positionals="patterns")  # ids after the options too
    parser.add_argument("--base-url", help="API base URL (default: $SCENARIO_BASE_URL)")


def execute(args: argparse.Namespace) -> int:
    ledger = shared_ledger(args)
    if ledger is not None:
        return _cancel_shared(args, ledger)
    return _cancel_in_folder(args)


def _cancel_in_folder(args: argparse.Namespace) -> int:
    """Cancel a folder's jobs: in flight at the API, pending ones through the folder."""
    views = load_views(args.directory)
    patterns: list[str] = args.patterns
    if patterns:
        check_patterns(patterns, [v.id for v in views])
        views = [v for v in views if any(id_matches(v.id, p) for p in patterns)]
    targets = cancel_targets(views)
    pending = [v.id for v in views if patterns and v.planned and v.state is JobState.PENDING]
    named = [*pending, *(job for job, _ in targets.jobs), *targets.without_job_id]
    if not named:
        output.out("no job of this run is in flight" + (" or pending among those named"
                                                          if patterns else "")
                   + ": nothing to cancel")
        return 0
    endpoint = None
    if targets.jobs:  # credentials are checked before anything is written
        endpoint = api_endpoint(args.base_url)
        _check_origin(args.directory, api_origin(endpoint[0]))
    idle = cancel_pending(args.directory, pending, named, [j for _, j in targets.jobs])
    unknown = targets.without_job_id
    if unknown:
        what = ("the run holding the folder cancels them once their jobIds arrive" if not idle
                else "run again to reconcile them, then cancel")
        output.err(f"{len(unknown)} job(s) have a POST whose answer was lost and no jobId "
                   f"yet ({', '.join(unknown[:5])}): the API cannot be asked to cancel "
                   f"them now; {what}")
    if pending:
        output.out(f"{len(pending)} job(s) not submitted yet: "
                   + ("canceled; they will not be submitted" if idle else
                      "the run holding the folder will not submit them")
                   + " (bring one back with `run --retry-failed --only ID`)")
    refused: list[Any] = []
    if endpoint is not None:
        outcomes, refused = _ask_api(endpoint[0], endpoint[1], targets.jobs)
        try:
            recorded = record_cancellations(args.directory, outcomes)
        except FolderError as exc:  # the API did cancel: the next run's polling records it
            raise FolderError(f"the cancellations were not recorded: {exc.message}",
                              hint="the next run sees them at the API") from None
        idle = idle and recorded
    if not idle:
        output.err("a run holds this folder: it will record the cancellations itself")
    return EXIT_JOBS_FAILED if refused else 0


def _cancel_shared(args: argparse.Namespace, ledger: str) -> int:
    """Cancel a shared batch's jobs: those named and never submitted at once, in the
    ledger (`runner.cluster.cancel_unsubmitted` fences off a runner about to post one);
    those in flight at the API, whose cancellations its runners record as they follow."""
    from runner.cli.shared import cancel_pending_shared, ledger_url, shared_batch
    from runner.views import job_views

    batch, records, folder = shared_batch(target_of(args), ledger_url(ledger))
    views = job_views(folder, batch.plan, records)
    patterns: list[str] = args.patterns
    if patterns:
        check_patterns(patterns, [v.id for v in views])
        views = [v for v in views if any(id_matches(v.id, p) for p in patterns)]
        pending = [v.id for v in views if v.planned and v.state is JobState.PENDING]
        if pending:
            done = cancel_pending_shared(ledger_url(ledger), batch.location, pending)
            output.out(f"{len(done)} job(s) not submitted yet: canceled; no runner will "
                       "submit them (bring one back with `run --retry-failed --only ID`)")
            views = [v for v in views if v.id not in set(done)]
    targets = cancel_targets(views)
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
    _, refused = _ask_api(base_url, credentials, targets.jobs)
    output.out("the batch's runners record the cancellations as they follow the jobs")
    return EXIT_JOBS_FAILED if refused else 0


def _ask_api(
    base_url: str, credentials: Credentials, jobs: Sequence[tuple[str, str]]
) -> tuple[list[Any], list[Any]]:
    """Ask the API to cancel `jobs` ((job, jobId) pairs), print each answer and the count;
    every outcome (`runner.batch.cancel.CancelOutcome`), and the refused ones."""
    outcomes = anyio.run(cancel_jobs, base_url, credentials, jobs)
    refused = [o for o in outcomes if o.refusal is not None]
    for outcome in outcomes:
        text = f"refused: {outcome.refusal}" if outcome.refusal else (
            outcome.result.raw_status if outcome.result else "?")
        output.out(f"{outcome.job}  {outcome.job_id}  {text}")
    output.out(f"{len(outcomes) - len(refused)} cancel request(s) accepted, "
               f"{len(refused)} refused")
    return outcomes, refused


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
