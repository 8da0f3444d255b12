"""The worker pool: which jobs run, how many at once, and what happens after each outcome.

One task group per batch. Jobs already at the API (a resumed run) are re-attached first:
unknown POSTs are reconciled in one listing, recorded jobIds are polled again. Then one
feeder per model hands out new submissions, each waiting for a worker slot and a place in
flight (`Admission`). A task exists only for a job that holds a worker slot, so memory
follows the jobs in flight, not the size of the manifest. The scheduler alone decides what
follows an outcome: halt, a new attempt, a download, or nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from runner.batch.admission import Admission, Ticket
from runner.batch.control import Control
from runner.batch.following import Follower, FollowOutcome
from runner.batch.resume import Action, Decision, is_transient_failure
from runner.batch.submission import SubmitOutcome, Submitter
from runner.domain import JobSpec, RemoteJob, RemoteStatus
from runner.errors import FencedError
from runner.ledger import JobRecord

# Told when a job's work in this run ends: (job id, whether any of its work started).
EndHook = Callable[[str, bool], None]


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A manifest job, what the ledger knows of it, and what to do next."""

    spec: JobSpec
    decision: Decision
    record: JobRecord | None
    verified: frozenset[str] = frozenset()  # asset ids whose files verified at start


class Scheduler:
    """Runs a batch's work items under its admission limits."""

    def __init__(
        self,
        *,
        admission: Admission,
        submitter: Submitter,
        follower: Follower,
        control: Control,
        download_concurrency: int,
        auto_retries: int,
        note: Callable[[str], None],
    ) -> None:
        self._admission = admission
        self._submitter = submitter
        self._follower = follower
        self._control = control
        self._downloads = anyio.CapacityLimiter(download_concurrency)
        self._auto_retries = auto_retries
        self._note = note
        self._on_end: EndHook = _nothing
        self._begun: set[str] = set()

    async def run(self, items: Sequence[WorkItem]) -> None:
        """Run every item to its end (or until a drain/halt stops new submissions)."""
        async with anyio.create_task_group() as tg:
            await self._run_items(tg, items)

    async def run_claimed(
        self, claimed: AsyncIterator[Sequence[WorkItem]], on_end: EndHook
    ) -> None:
        """Run the items of a shared batch as they are claimed; `on_end` hears of every job
        whose work here ended (or never began: a drain, a job with nothing to do)."""
        self._on_end = on_end
        async with anyio.create_task_group() as tg:
            async for items in claimed:
                try:
                    await self._run_items(tg, items)
                except FencedError as exc:  # taken over while it was being reconciled
                    self._note(str(exc))
                    for item in items:
                        if item.spec.id not in self._begun:
                            on_end(item.spec.id, False)

    async def _run_items(self, tg: TaskGroup, items: Sequence[WorkItem]) -> None:
        self._begun.clear()
        reposts = await self._reattach(tg, items)
        by_model: dict[str, list[JobSpec]] = defaultdict(list)
        for item in items:
            if item.decision.action is Action.SUBMIT or item.spec.id in reposts:
                by_model[item.spec.model].append(item.spec)
                self._begun.add(item.spec.id)
        for item in items:
            if item.spec.id not in self._begun:
                self._on_end(item.spec.id, True)  # nothing to do with it here
        for specs in by_model.values():
            tg.start_soon(self._feed, tg, specs)

    # -- jobs already at the API ---------------------------------------------------------

    async def _reattach(self, tg: TaskGroup, items: Sequence[WorkItem]) -> set[str]:
        """Follow jobs known by jobId; reconcile lost answers. Returns the ids of the jobs to
        post again (their lost POST created nothing), for the feeders and their limits."""
        reposts: set[str] = set()
        lost = [(i.spec, i.record) for i in items
                if i.decision.action is Action.RECONCILE and i.record is not None]
        if lost:
            found = await self._submitter.reattach(lost)
            if found.halt is not None:
                self._control.halt_for(found.halt, found.detail)
            reposts.update(found.repost)
            for spec, _record in lost:
                if spec.id in found.adopted:
                    self._start(tg, spec, found.adopted[spec.id])
        # Every job at the API first (at once), then the downloads (each waiting for a
        # worker): a download waiting must never keep a job that holds a place unfollowed.
        for item in items:
            record = item.record
            if item.decision.action is Action.POLL and record is not None and record.job_id:
                self._start(tg, item.spec, record.job_id)
        for item in items:
            record = item.record
            if item.decision.action is Action.DOWNLOAD and record is not None:
                worker = await self._admission.worker()
                self._begun.add(item.spec.id)
                tg.start_soon(self._download_task, worker, item.spec, record, item.verified)
        return reposts

    def _start(self, tg: TaskGroup, spec: JobSpec, job_id: str) -> None:
        self._begun.add(spec.id)
        worker = self._admission.worker_now()
        place = self._admission.place_at_api(spec.model)
        tg.start_soon(self._job_task, worker, place, spec, job_id)

    # -- new submissions -----------------------------------------------------------------

    async def _feed(self, tg: TaskGroup, specs: Sequence[JobSpec]) -> None:
        for n, spec in enumerate(specs):
            if not self._control.submissions_allowed:
                self._never_started(specs[n:])
                return
            worker = await self._admission.worker()
            try:
                place = await self._admission.place(spec.model)
            except BaseException:
                worker.release()
                raise
            if not self._control.submissions_allowed:
                place.release()
                worker.release()
                self._never_started(specs[n:])
                return
            tg.start_soon(self._job_task, worker, place, spec, None)

    def _never_started(self, specs: Sequence[JobSpec]) -> None:
        for spec in specs:
            self._on_end(spec.id, False)

    # -- one job's task: holds a worker slot; a place in flight until the job is terminal --

    async def _job_task(
        self, worker: Ticket, place: Ticket, spec: JobSpec, job_id: str | None
    ) -> None:
        began = True
        try:
            await self._job_steps(worker, place, spec, job_id)
        except FencedError as exc:
            # A shared batch's runner that lost its lease: the job is another's now (or it
            # is stopping and hands the job back: another runner may post it).
            self._note(str(exc))
            began = False
        finally:
            self._on_end(spec.id, began)

    async def _job_steps(
        self, worker: Ticket, place: Ticket, spec: JobSpec, job_id: str | None
    ) -> None:
        with worker:
            retries = 0
            while True:
                with place:
                    outcome = await self._submit_and_follow(spec, job_id)
                if isinstance(outcome, SubmitOutcome):
                    # Refused for capacity: the window shrinks to what the account holds
                    # and the job waits for a place again — it never fails for it.
                    self._admission.refused(outcome.retry_after)
                    if not self._control.submissions_allowed:
                        return
                    place = await self._admission.place(spec.model)
                    continue
                final = outcome.final
                if final is not None and final.status is RemoteStatus.SUCCESS:
                    located = await self._follower.locate(final.asset_ids)
                    async with self._downloads:
                        await self._follower.download(spec, final.asset_ids, located=located)
                    return
                if final is None or not self._may_retry(final, retries):
                    return
                retries += 1
                self._note(f"{spec.id}: transient failure, attempt {retries + 1}")
                job_id = None
                place = await self._admission.place(spec.model)

    async def _submit_and_follow(
        self, spec: JobSpec, job_id: str | None
    ) -> FollowOutcome | SubmitOutcome:
        """Submit (unless the job has a jobId) and follow; a busy refusal comes back as is."""
        if job_id is None:
            submitted = await self._submitter.submit(spec)
            if submitted.busy:
                return submitted
            if submitted.halt is not None:
                self._control.halt_for(submitted.halt, submitted.detail)
            if submitted.job_id is None:
                return FollowOutcome(None)
            self._admission.accepted()
            job_id = submitted.job_id
            fresh = True
        else:
            fresh = False
        outcome = await self._follower.follow(spec, job_id, fresh=fresh)
        if outcome.halt is not None:
            self._control.halt_for(outcome.halt, outcome.detail)
        return outcome

    def _may_retry(self, final: RemoteJob, retries: int) -> bool:
        return (
            final.status is RemoteStatus.FAILURE
            and retries < self._auto_retries
            and self._control.submissions_allowed
            and is_transient_failure(final.error, final.hint)
        )

    async def _download_task(
        self, worker: Ticket, spec: JobSpec, record: JobRecord, verified: frozenset[str]
    ) -> None:
        try:
            with worker:
                async with self._downloads:
                    await self._follower.download(spec, record.asset_ids, verified)
        except FencedError as exc:
            self._note(str(exc))
        finally:
            self._on_end(spec.id, True)


def _nothing(_job: str, _started: bool) -> None:
    """The end hook of a run that owns every job (a folder's run)."""

