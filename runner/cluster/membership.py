"""One runner's membership of a shared batch: prepared like a folder's run (records,
decisions, refusals before anything is sent), then fed by claims (`SharedRun`, the engine's
`Coordination`).

The claim loop keeps at most `capacity` jobs held by this runner. A claimed job's records
are read fresh from the ledger (another runner may have written them), its next step is
decided by the same `work_items` as a folder's run, and the scheduler gets it. Jobs of a
runner whose lease lapsed are claimed first: their recorded jobIds are followed, their lost
POSTs reconciled (with every jobId the batch knows marked as taken). When nothing is left to
claim, the runner stays while other live runners hold jobs — to take them over should their
runner die — and ends when the batch has no job left that anyone could do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import anyio

from runner.batch import (
    Action,
    JobBook,
    PreparedRun,
    RunOptions,
    WorkItem,
    batch_identity,
    keep_paid_numbers,
    work_items,
)
from runner.cluster.batches import connected, open_batch
from runner.cluster.coordinator import Coordinator
from runner.cluster.store import read_batch_events
from runner.domain import JobSpec
from runner.errors import UsageError
from runner.ledger import Event, JobRecord, OutcomeLost, replay
from runner.manifest import Manifest
from runner.outdir import write_plan, writing

# Where the files are not in the folder (an object store): given the claimed jobs' records,
# which of a record's asset ids have their files in place.
FileCheck = Callable[[Mapping[str, JobRecord]],
                     Awaitable[Callable[[JobRecord], frozenset[str]]]]

# Actions that leave nothing for this runner to do with a claimed job.
_DONE = (Action.SKIP, Action.HOLD, Action.CHANGED)


@contextmanager
def prepare_shared_run(
    manifest: Manifest, options: RunOptions, conninfo: str, location: str, *,
    stored: Callable[[JobRecord], frozenset[str]] | None = None,
) -> Iterator[PreparedRun]:
    """Join (or create) the batch at `location` in the shared ledger, replay its events,
    decide every job and reopen the closed ones with work left.

    Raises UsageError (exit 2, nothing sent): the ledger unreachable, another manifest's
    batch at the location, changed jobs, clashing names. `stored`: the asset ids of a
    record whose files are in place, where they are not in the folder (an object store).
    """
    wanted = batch_identity(manifest, options)
    with connected(conninfo) as conn:
        open_batch(conn, location, wanted, manifest.jobs, continue_batch=options.continue_batch)
        records = replay(read_batch_events(conninfo, location))
        jobs, moved = keep_paid_numbers(manifest.jobs, records)
        manifest = dataclasses.replace(manifest, jobs=jobs)
        with writing(options.out_dir):
            options.out_dir.mkdir(parents=True, exist_ok=True)
            write_plan(options.out_dir, manifest.jobs)
        items = work_items(manifest.jobs, records, options.out_dir,
                           retry_failed=options.retry_failed,
                           redo=lambda job: options.redo_changed or job in options.redo_ids,
                           verified=stored)
        work_left = [i.spec.id for i in items if i.decision.action not in _DONE]
        with conn.transaction():
            conn.execute("UPDATE kb_jobs SET status = 'open', owner = NULL WHERE batch = %s "
                         "AND status = 'closed' AND job = ANY(%s)", (location, work_left))
        yield PreparedRun(manifest, options, items, records, None, tuple(moved))


class SharedRun:
    """The engine's `Coordination` over a `Coordinator`."""

    def __init__(
        self, coordinator: Coordinator, prepared: PreparedRun, *, capacity: int,
        list_jobs: bool, may_claim: Callable[[], bool] = lambda: True,
        idle_pause: float = 1.0, check_files: FileCheck | None = None,
    ) -> None:
        self._check_files = check_files
        self._may_claim_more = may_claim
        self._coord = coordinator
        self._prepared = prepared
        self._specs: dict[str, JobSpec] = {s.id: s for s in prepared.manifest.jobs}
        self._capacity = capacity
        self._list_jobs = list_jobs
        self._idle_pause = idle_pause
        self._active: set[str] = set()
        self._ended: list[tuple[str, bool]] = []
        self._changed = anyio.Event()
        self.taken_over = 0
        self._known: set[str] | None = None

    @property
    def transactions(self) -> int:
        """Transactions this runner made on the shared ledger so far."""
        return self._coord.db.transactions

    async def append(self, event: Event) -> None:
        await self._coord.record(event)
        if isinstance(event, OutcomeLost) and self._known is not None:
            # About to reconcile a lost POST: every jobId another runner recorded for the
            # same body is in the ledger by now (its row in the air was ours since the
            # intent), and must count as taken, or the listing would adopt it twice.
            self._known.update(await self._coord.job_ids())

    async def before_post(self, job: str) -> None:
        await self._coord.check_fence(job)

    def before_send(self, job: str) -> None:
        self._coord.still_holds(job)

    async def may_list(self) -> bool:
        return self._list_jobs and await self._coord.take_lister()

    def ended(self, job: str, started: bool) -> None:
        self._ended.append((job, started))
        self._changed.set()

    async def serve(self) -> None:
        await self._coord.register()
        try:
            await self._coord.keep_alive()
        finally:
            with anyio.CancelScope(shield=True):
                await self._settle_ended()
                await self._coord.leave()

    async def final_events(self) -> list[Event]:
        return await self._coord.events_of_batch()

    async def claims(
        self, book: JobBook, known_job_ids: set[str], note: Callable[[str], None]
    ) -> AsyncIterator[Sequence[WorkItem]]:
        self._known = known_job_ids
        await self._coord.register()  # before the first claim (serve may not have run yet)
        while True:
            await self._settle_ended()
            room = self._capacity - len(self._active)
            claims = await self._coord.claim(
                room if self._may_claim(room) else 0,
                takeovers=self._capacity if self._may_claim_more() else 0)
            if claims:
                takeovers = [c.job for c in claims if c.takeover]
                if takeovers:
                    self.taken_over += len(takeovers)
                    note(f"took over {len(takeovers)} job(s) of a runner whose lease lapsed")
                items = await self._items([c.job for c in claims], book, known_job_ids, note)
                if items:
                    yield items
                continue
            if not self._active:
                counts = await self._coord.counts()
                if not self._may_claim_more() or (
                        counts.open == 0 and counts.held_alive == 0
                        and counts.held_expired == 0):
                    return
            self._changed = anyio.Event()
            with anyio.move_on_after(self._idle_pause):
                await self._changed.wait()

    def _may_claim(self, room: int) -> bool:
        return room > 0 and self._may_claim_more()

    async def _items(
        self, jobs: Sequence[str], book: JobBook, known_job_ids: set[str],
        note: Callable[[str], None],
    ) -> list[WorkItem]:
        fresh = replay(await self._coord.events_of(jobs))
        book.adopt(fresh)
        specs = [self._specs[j] for j in jobs if j in self._specs]
        for job in jobs:
            if job not in self._specs:
                await self._coord.close(job)  # left the manifest: not ours to run
        options = self._prepared.options
        verified = None if self._check_files is None else await self._check_files(fresh)
        try:
            items = await anyio.to_thread.run_sync(lambda: work_items(
                specs, fresh, options.out_dir, retry_failed=options.retry_failed,
                redo=lambda job: options.redo_changed or job in options.redo_ids,
                verified=verified))
        except UsageError as exc:
            note(f"{len(specs)} claimed job(s) left alone: {exc}")
            for spec in specs:
                await self._coord.close(spec.id)
            return []
        if any(i.decision.action is Action.RECONCILE for i in items):
            known_job_ids.update(await self._coord.job_ids())
        self._active.update(i.spec.id for i in items)
        return items

    async def _settle_ended(self) -> None:
        ended, self._ended = self._ended, []
        for job, started in ended:
            self._active.discard(job)
            if started:
                await self._coord.close(job)
            else:
                await self._coord.release(job)
