"""The worker pool: which jobs run, how many at once, and in what order.

One task group per batch. Jobs already at the API (a resumed run) are re-attached first:
unknown POSTs are reconciled in one listing, recorded jobIds are polled again. Then one
feeder per model hands out new submissions, each waiting for a worker slot, its model's
slot, a place under `--concurrency` and the submit rate. A task exists only for a job that
holds a worker slot, so memory follows the jobs in flight, not the size of the manifest.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from runner.batch.admission import ModelLimiters, RateLimiter, Slots
from runner.batch.control import FailureLimit, HaltReason
from runner.batch.following import download_all, follow
from runner.batch.resume import Action, Decision, is_transient_failure
from runner.batch.submission import JobFlow
from runner.canonical import canonical_json
from runner.domain import JobSpec, JobState, RemoteJob, RemoteStatus
from runner.errors import ApiError, AuthError, CreditError
from runner.ledger.journal import JobRecord
from runner.reconcile.matching import Intent, ambiguous_intents

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A manifest job, what the ledger knows of it, and what to do next."""

    spec: JobSpec
    decision: Decision
    record: JobRecord | None
    verified: frozenset[str] = frozenset()  # asset ids whose files verified at start


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Limits of one run."""

    concurrency: int
    download_concurrency: int
    max_failures: FailureLimit
    auto_retries: int = 1


class Scheduler:
    """Runs a batch's work items through a JobFlow under the pool's limits."""

    def __init__(
        self, flow: JobFlow, pool: PoolConfig, models: ModelLimiters, rate: RateLimiter
    ) -> None:
        self.flow = flow
        self.pool = pool
        self.models = models
        self.rate = rate
        self.in_flight = Slots(pool.concurrency)
        self.workers = Slots(pool.concurrency + pool.download_concurrency)
        self.downloads = anyio.CapacityLimiter(pool.download_concurrency)
        self.total = 0

    async def run(self, items: Sequence[WorkItem]) -> None:
        """Run every item to its end (or until a drain/halt stops new submissions)."""
        self.total = len(items)
        for item in items:
            self.flow.set_state(item.spec.id, _start_state(item))
        async with anyio.create_task_group() as tg:
            reposts = await self._reattach(tg, items)
            by_model: dict[str, list[tuple[WorkItem, int]]] = defaultdict(list)
            for item, attempt in reposts:
                by_model[item.spec.model].append((item, attempt))
            for item in items:
                if item.decision.action is Action.SUBMIT:
                    attempt = (item.record.attempt + 1) if item.record else 1
                    by_model[item.spec.model].append((item, attempt))
            for model_items in by_model.values():
                tg.start_soon(self._feed, tg, model_items)

    # -- re-attaching jobs already at the API --------------------------------------------

    async def _reattach(
        self, tg: TaskGroup, items: Sequence[WorkItem]
    ) -> list[tuple[WorkItem, int]]:
        """Follow jobs known by jobId; reconcile lost answers. Returns the jobs to post
        again (their lost POST created nothing), for the feeders and their limits."""
        unknown = [i for i in items if i.decision.action is Action.RECONCILE]
        reposts = await self._reconcile(tg, unknown) if unknown else []
        for item in items:
            record = item.record
            if item.decision.action is Action.POLL and record and record.job_id:
                await self._hold(item.spec.model, forced=True)
                tg.start_soon(self._job_task, item, record.attempt, record.job_id)
            elif item.decision.action is Action.DOWNLOAD and record:
                await self.workers.acquire()
                tg.start_soon(self._download_task, item.spec, record, item.verified)
        return reposts

    async def _reconcile(
        self, tg: TaskGroup, items: Sequence[WorkItem]
    ) -> list[tuple[WorkItem, int]]:
        intents = [_intent(i) for i in items]
        flow = self.flow
        flow.progress.note(f"reconciling {len(intents)} POST(s) whose answer was lost")
        found = await self._resolve(intents)
        if found is None:
            return []
        reposts: list[tuple[WorkItem, int]] = []
        unsure = {i.job for i in ambiguous_intents(intents)}
        for item in items:
            job = found.get(item.spec.id)
            attempt = item.record.attempt if item.record else 1
            if job is not None:
                await self._hold(item.spec.model, forced=True)
                flow.budget.settle(0.0, job.cu_cost)
                await flow.adopt(item.spec, job, attempt)
                tg.start_soon(self._job_task, item, attempt, job.job_id)
            elif item.spec.id in unsure:
                flow.progress.note(f"{item.spec.id}: its lost POST has the same body as another "
                                   "model's; not adopted, not re-posted — check by hand")
            else:
                reposts.append((item, attempt + 1))
        return reposts

    async def _resolve(self, intents: list[Intent]) -> dict[str, RemoteJob | None] | None:
        """The reconciliation listing; None (nothing re-posted, a note) when it fails."""
        try:
            return await self.flow.reconciler.resolve(intents)
        except (AuthError, CreditError) as exc:
            self.flow.halt(HaltReason.AUTH if isinstance(exc, AuthError) else HaltReason.CREDIT,
                           str(exc))
        except ApiError as exc:
            self.flow.progress.note(f"the job list could not be read ({exc}): the lost POSTs "
                                    "stay unknown until a later run reconciles them")
        return None

    # -- new submissions -----------------------------------------------------------------

    async def _feed(self, tg: TaskGroup, items: Sequence[tuple[WorkItem, int]]) -> None:
        for item, attempt in items:
            if not self.flow.stop.submissions_allowed:
                return
            await self._hold(item.spec.model, forced=False)
            if not self.flow.stop.submissions_allowed:
                self._release_flight(item.spec.model)
                self.workers.release()
                return
            tg.start_soon(self._job_task, item, attempt, None)

    async def _hold(self, model: str, *, forced: bool, worker: bool = True) -> None:
        """Take a worker slot (unless `worker` is False), the model's slot and a place in
        flight; forced: even past the limits, for jobs that are at the API already."""
        if worker and forced:
            self.workers.force_acquire()
        elif worker:
            await self.workers.acquire()
        model_slot = self.models.get(model)
        if forced:
            self.in_flight.force_acquire()
            if model_slot is not None:
                model_slot.force_acquire()
            return
        if model_slot is not None:
            await model_slot.acquire()
        await self.in_flight.acquire()
        await self.rate.acquire()

    def _release_flight(self, model: str) -> None:
        self.in_flight.release()
        model_slot = self.models.get(model)
        if model_slot is not None:
            model_slot.release()

    # -- one job's task: holds a worker slot; a place in flight until the job is terminal ---

    async def _job_task(self, item: WorkItem, attempt: int, job_id: str | None) -> None:
        spec = item.spec
        retries = 0
        try:
            while True:
                final = await self._submit_and_follow(spec, attempt, job_id)
                if final is not None and final.status is RemoteStatus.SUCCESS:
                    async with self.downloads:
                        await download_all(self.flow, spec, final.asset_ids)
                    return
                self._check_failures()
                if final is None or not self._may_retry(final, retries):
                    return
                # Numbered after the last intent: re-posts inside submit() count too.
                retries += 1
                attempt, job_id = self.flow.attempts.get(spec.id, attempt) + 1, None
                self.flow.progress.note(f"{spec.id}: transient failure, attempt {attempt}")
                await self._hold(spec.model, forced=False, worker=False)
        finally:
            self.workers.release()

    async def _submit_and_follow(
        self, spec: JobSpec, attempt: int, job_id: str | None
    ) -> RemoteJob | None:
        """With a place in flight held: submit if needed, follow; the place is released."""
        try:
            if job_id is None:
                job_id = await self.flow.submit(spec, attempt)
            if job_id is None:
                return None
            return await follow(self.flow, spec, job_id)
        finally:
            self._release_flight(spec.model)

    def _may_retry(self, final: RemoteJob, retries: int) -> bool:
        return (
            final.status is RemoteStatus.FAILURE
            and retries < self.pool.auto_retries
            and self.flow.stop.submissions_allowed
            and is_transient_failure(final.error, final.hint)
        )

    async def _download_task(
        self, spec: JobSpec, record: JobRecord, verified: frozenset[str]
    ) -> None:
        try:
            async with self.downloads:
                await download_all(self.flow, spec, record.asset_ids, verified)
        finally:
            self.workers.release()

    def _check_failures(self) -> None:
        failures = self.flow.progress.failures
        if self.pool.max_failures.reached(failures, self.total):
            self.flow.halt(HaltReason.FAILURES, f"{failures} of {self.total} jobs failed")


def _start_state(item: WorkItem) -> JobState:
    if item.decision.action is Action.SUBMIT:
        return JobState.PENDING
    if item.record is None:
        return JobState.PENDING
    if item.decision.action is Action.RECONCILE:
        return JobState.SUBMITTED
    return item.record.state


def _intent(item: WorkItem) -> Intent:
    record = item.record
    assert record is not None and record.body is not None  # RECONCILE comes from an intent
    return Intent(
        item.spec.id, item.spec.model, canonical_json(record.body), record.intent_ts or ""
    )
