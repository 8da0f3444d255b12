"""`kling-batch cancel DIR`: ask the API to cancel the run's in-flight jobs; report refusals.

The API cancels only some job types ("today only cancel on inference jobs is supported"),
so each refusal is reported with the API's reason. A run still going keeps submitting new
jobs into freed places: stop it first (Ctrl-C drains it), then cancel. When no run holds
the folder, the
cancellations are recorded in the ledger at once; when a run is going, its own polling
records them (the ledger has one writer), and this command only asks the API.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio

from runner.api.client import Credentials, ScenarioClient
from runner.cli import output
from runner.cli.endpoint import api_endpoint
from runner.cli.status import load_rows
from runner.domain import JobState, RemoteJob, RemoteStatus
from runner.errors import EXIT_JOBS_FAILED, ApiError, AuthError, CreditError, LockedError
from runner.ledger.journal import JsonlLedger, make_event
from runner.outdir.lock import hold_lock

NAME = "cancel"
HELP = "ask the API to cancel a run's in-flight jobs and report refusals"

_IN_FLIGHT = (JobState.SUBMITTED, JobState.RUNNING)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="the run's output folder")
    parser.add_argument("--base-url", help="API base URL (default: $SCENARIO_BASE_URL)")


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What the API said to one cancel request."""

    job: str
    job_id: str
    result: RemoteJob | None
    refusal: str | None


async def cancel_jobs(
    base_url: str, credentials: Credentials, targets: list[tuple[str, str]]
) -> list[CancelOutcome]:
    """POST a cancel for each (manifest job, jobId); refusals are outcomes, not errors."""
    outcomes: list[CancelOutcome] = []
    async with aiohttp.ClientSession() as session:
        client = ScenarioClient(session, base_url, credentials)
        for job, job_id in targets:
            try:
                result = await client.cancel_job(job_id)
            except (AuthError, CreditError):
                raise
            except ApiError as exc:
                outcomes.append(CancelOutcome(job, job_id, None, str(exc)))
                continue
            outcomes.append(CancelOutcome(job, job_id, result, None))
    return outcomes


@contextlib.contextmanager
def _ledger_if_free(directory: Path) -> Iterator[JsonlLedger | None]:
    try:
        with hold_lock(directory):
            ledger = JsonlLedger(directory)
            try:
                yield ledger
            finally:
                ledger.close()
    except LockedError:
        yield None


def execute(args: argparse.Namespace) -> int:
    rows = load_rows(args.directory)
    targets = [(r.id, r.job_id) for r in rows if r.state in _IN_FLIGHT and r.job_id]
    unknown = [r.id for r in rows if r.state in _IN_FLIGHT and not r.job_id]
    if unknown:
        output.err(f"{len(unknown)} job(s) have a POST whose answer was lost and no jobId "
                   f"yet ({', '.join(unknown[:5])}): run again to reconcile them, then cancel")
    if not targets:
        output.out("no job of this run is in flight: nothing to cancel")
        return 0
    base_url, credentials = api_endpoint(args.base_url)
    outcomes = anyio.run(cancel_jobs, base_url, credentials, targets)
    with _ledger_if_free(args.directory) as ledger:
        if ledger is None:
            output.err("a run holds this folder: it will record the cancellations itself")
        _record(ledger, outcomes)
    refused = [o for o in outcomes if o.refusal is not None]
    for outcome in outcomes:
        text = f"refused: {outcome.refusal}" if outcome.refusal else (
            outcome.result.raw_status if outcome.result else "?")
        output.out(f"{outcome.job}  {outcome.job_id}  {text}")
    output.out(f"{len(outcomes) - len(refused)} cancel request(s) accepted, "
               f"{len(refused)} refused")
    return EXIT_JOBS_FAILED if refused else 0


def _record(ledger: JsonlLedger | None, outcomes: list[CancelOutcome]) -> None:
    if ledger is None:
        return
    events = [
        make_event(o.job, "canceled", jobId=o.job_id, status=o.result.raw_status)
        for o in outcomes
        if o.result is not None and o.result.status is RemoteStatus.CANCELED
    ]
    if events:
        ledger.write_batch(events)
