"""One job's way through the API: upload its files, submit, follow, download.

`JobFlow` holds the shared services of a batch (client, uploader, ledger writer, limits,
budget, reconciler) and runs one job at a time per call; the scheduler decides which jobs
run and how many at once. Every outcome becomes a ledger record; only bugs, ledger I/O
failures and cancellation propagate.

Money is spent at the generate POST, so the order here is fixed: the `intent` record is
durable before the request leaves; the jobId is recorded the moment it arrives; a POST whose
answer was lost is reconciled against the job list before anything is posted again.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from runner.api.client import ScenarioClient
from runner.api.uploads import AssetUploader
from runner.batch.bodies import request_body
from runner.batch.control import Budget, HaltReason
from runner.batch.progress import Progress
from runner.canonical import canonical_json
from runner.domain import JobSpec, JobState, RemoteJob
from runner.errors import (
    ApiError,
    AuthError,
    CreditError,
    OutcomeUnknownError,
    PermanentApiError,
    TransientApiError,
    UsageError,
)
from runner.ledger.journal import LedgerWriter, make_event, utc_now_iso
from runner.polling.each import PollPolicy
from runner.polling.listing import ListWatcher
from runner.reconcile.matching import Intent, Reconciler, body_fingerprint
from runner.schemas.registry import SchemaRegistry

log = logging.getLogger(__name__)

# How many times one job may be re-posted after reconciliation found nothing.
MAX_REPOSTS = 3
# Pauses (seconds) between attempts to read the job list after a lost answer.
RECONCILE_PAUSES = (5.0, 15.0, 30.0, 60.0, 120.0)


class _Repost(enum.Enum):
    """The POST's answer was lost and the API shows no such job: post again."""

    REPOST = "repost"


class Stop:
    """Whether new submissions may start: cleared by a drain (signal) or a halt."""

    def __init__(self) -> None:
        self.draining = False
        self.halt: HaltReason | None = None

    @property
    def submissions_allowed(self) -> bool:
        return not self.draining and self.halt is None


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """What varies per run for a job's flow."""

    out_dir: Path
    poll: PollPolicy
    auto_retries: int = 1


class JobFlow:
    """The per-job pipeline, sharing one batch's services."""

    def __init__(
        self,
        *,
        client: ScenarioClient,
        cdn_session: aiohttp.ClientSession,
        uploader: AssetUploader,
        registry: SchemaRegistry,
        writer: LedgerWriter,
        reconciler: Reconciler,
        budget: Budget,
        estimate: Callable[[str, Mapping[str, Any]], Awaitable[float]] | None,
        progress: Progress,
        stop: Stop,
        config: FlowConfig,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        watcher: ListWatcher | None = None,
    ) -> None:
        self.watcher = watcher
        self.client = client
        self.cdn_session = cdn_session
        self.uploader = uploader
        self.registry = registry
        self.writer = writer
        self.reconciler = reconciler
        self.budget = budget
        self.estimate = estimate
        self.progress = progress
        self.stop = stop
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.states: dict[str, JobState] = {}
        self.attempts: dict[str, int] = {}  # the last attempt number each job posted

    # -- bookkeeping -------------------------------------------------------------------

    def set_state(self, job: str, state: JobState) -> None:
        old = self.states.get(job)
        if old is not state:
            self.states[job] = state
            self.progress.move(old, state)

    async def record(self, job: str, event: str, **fields: Any) -> None:
        await self.writer.append(make_event(job, event, **fields))

    # -- submitting ----------------------------------------------------------------------

    async def build_body(self, spec: JobSpec) -> dict[str, Any]:
        """The request body: params with every local file replaced by its asset id."""
        return await request_body(spec, self.registry, self.uploader)

    async def reserve(self, spec: JobSpec, body: Mapping[str, Any]) -> float | None:
        """Reserve the job's estimated cost; None (and a halt) when the budget says no."""
        if self.budget.limit is None or self.estimate is None:
            return 0.0
        cost = await self.estimate(spec.model, body)
        if self.budget.try_reserve(cost):
            return cost
        self.halt(HaltReason.BUDGET, f"{spec.id} would cost ~{cost:g} CU; budget "
                  f"{self.budget.limit:g}, spent {self.budget.spent:g}")
        return None

    def halt(self, reason: HaltReason, detail: str) -> None:
        if self.stop.halt is None:
            self.stop.halt = reason
            self.progress.halt = reason.value
            self.progress.note(f"halting: {reason.value} ({detail})")

    async def submit(self, spec: JobSpec, attempt: int) -> str | None:
        """Post the job once (reconciling a lost answer); its jobId, or None if not created."""
        try:
            body = await self.build_body(spec)
        except (ApiError, UsageError) as exc:
            await self._refuse(spec, attempt, exc, what="uploading its files")
            return None
        for _ in range(MAX_REPOSTS):
            if not self.stop.submissions_allowed:
                return None
            try:
                estimate = await self.reserve(spec, body)
            except ApiError as exc:
                await self._refuse(spec, attempt, exc, what="pricing it (dry run)")
                return None
            if estimate is None:
                return None
            outcome = await self._post(spec, body, attempt, estimate)
            if outcome is not _Repost.REPOST:
                return outcome
            attempt += 1
        await self.record(spec.id, "not-submitted", attempt=attempt,
                          error="reconciliation kept finding no job; gave up re-posting")
        return None

    async def _post(
        self, spec: JobSpec, body: dict[str, Any], attempt: int, estimate: float
    ) -> str | _Repost | None:
        body_json = canonical_json(body)
        await self.reconciler.begin(body_json, spec.model)
        intent_ts = utc_now_iso()
        try:
            self.attempts[spec.id] = attempt
            await self.record(spec.id, "intent", ts=intent_ts, attempt=attempt,
                              model=spec.model, params=dict(spec.params), body=body,
                              fingerprint=body_fingerprint(spec.model, body))
            outcome = await self._send_generate(spec, body, body_json, attempt, estimate)
            if isinstance(outcome, OutcomeUnknownError):
                intent = Intent(spec.id, spec.model, body_json, intent_ts)
                return await self._after_unknown(spec, intent, attempt, estimate, outcome)
        finally:
            self.reconciler.end(body_json, spec.model)
        if isinstance(outcome, ApiError):
            self.budget.release(estimate)
            await self._refuse(spec, attempt, outcome, what="submitting it")
            return None
        return outcome

    async def _send_generate(
        self, spec: JobSpec, body: dict[str, Any], body_json: str, attempt: int, estimate: float
    ) -> str | ApiError:
        """POST and record the jobId; the jobId, or the error the API (or network) gave.

        Shielded from cancellation: once the request may have left, even a hard stop waits
        for its answer and records the jobId, so no paid job is left unrecorded.
        """
        self.reconciler.posting(body_json, +1)
        with anyio.CancelScope(shield=True):
            try:
                submission = await self.client.generate(spec.model, body)
            except ApiError as exc:
                return exc
            finally:
                self.reconciler.posting(body_json, -1)
            self.reconciler.claim(submission.job.job_id)
            self.budget.settle(estimate, submission.cost)
            await self._submitted(spec, submission.job, attempt, submission.cost,
                                  reconciled=False)
        return submission.job.job_id

    async def _submitted(
        self, spec: JobSpec, job: RemoteJob, attempt: int, cost: float | None, *, reconciled: bool
    ) -> None:
        await self.record(spec.id, "submitted", jobId=job.job_id, model=spec.model,
                          attempt=attempt, cost=cost, reconciled=reconciled or None)
        self.progress.cost += cost or 0.0
        self.set_state(spec.id, JobState.SUBMITTED)

    async def _after_unknown(
        self, spec: JobSpec, intent: Intent, attempt: int, estimate: float, exc: ApiError
    ) -> str | _Repost | None:
        await self.record(spec.id, "unknown", attempt=attempt, error=str(exc))
        try:
            found = (await self._resolve_patiently(intent))[spec.id]
        except (AuthError, CreditError) as err:
            self.halt(HaltReason.AUTH if isinstance(err, AuthError) else HaltReason.CREDIT,
                      str(err))
            return None
        except ApiError as err:
            # The job may exist: never post it again blindly. It stays unknown in the
            # ledger, and the next run looks for it first.
            self.progress.note(f"{spec.id}: its POST's answer was lost and the job list "
                               f"cannot be read ({err}); a re-run will reconcile it")
            return None
        if found is None:
            self.budget.release(estimate)
            self.progress.note(f"{spec.id}: no job found after a lost answer; posting again")
            return _Repost.REPOST
        self.budget.settle(estimate, found.cu_cost)
        await self.adopt(spec, found, attempt)
        return found.job_id

    async def _resolve_patiently(self, intent: Intent) -> dict[str, RemoteJob | None]:
        """Reconcile, riding out an API outage of a few minutes (the client's own retries
        cover only seconds)."""
        for pause in RECONCILE_PAUSES:
            try:
                return await self.reconciler.resolve([intent])
            except TransientApiError:
                await self.sleep(pause)
        return await self.reconciler.resolve([intent])

    async def adopt(self, spec: JobSpec, job: RemoteJob, attempt: int) -> None:
        """Record a job that reconciliation found for this manifest job."""
        self.progress.adopted += 1
        self.progress.note(f"{spec.id}: adopted {job.job_id} (its POST's answer was lost)")
        await self._submitted(spec, job, attempt, job.cu_cost, reconciled=True)

    async def _refuse(
        self, spec: JobSpec, attempt: int, exc: ApiError | UsageError, *, what: str
    ) -> None:
        if isinstance(exc, AuthError | CreditError):
            reason = HaltReason.AUTH if isinstance(exc, AuthError) else HaltReason.CREDIT
            self.halt(reason, str(exc))
            await self.record(spec.id, "not-submitted", attempt=attempt, error=str(exc))
            return
        if isinstance(exc, PermanentApiError | UsageError):
            status = exc.status if isinstance(exc, PermanentApiError) else None
            await self.record(spec.id, "rejected", attempt=attempt, status=status,
                              error=f"refused while {what}: {exc}")
            self.set_state(spec.id, JobState.FAILED)
            return
        # Transient and out of retries: nothing was created; the job stays pending.
        await self.record(spec.id, "not-submitted", attempt=attempt, error=str(exc))
        self.progress.note(f"{spec.id}: not submitted ({exc}); a re-run will try again")
