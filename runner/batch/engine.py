"""A run, assembled: `prepare_run` (lock, records, decisions, files) and `run_batch`.

`prepare_run` does everything that needs no network and may refuse (a locked folder,
changed jobs, clashing video names): nothing is sent before it has passed. `run_batch`
opens the HTTP sessions, builds the batch's parts from the options and runs the scheduler;
the ledger and metadata.jsonl are complete however it ends. Every varying thing (endpoint,
clock) is a parameter; only the CLI builds them. The defaults of a run are `RunOptions`'s,
written nowhere else.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from runner.api import (
    AssetLookup,
    AssetUploader,
    Credentials,
    DownloadedFile,
    ScenarioClient,
    download_asset,
)
from runner.batch.admission import Admission, RateLimiter
from runner.batch.bodies import input_files, request_body
from runner.batch.book import EventSink, JobBook, Observer, count_failures
from runner.batch.budget import Budget
from runner.batch.claim import (
    batch_identity,
    check_not_run_elsewhere,
    claim_folder,
    refresh_folder,
    remember_batch,
)
from runner.batch.control import Control, FailureLimit, HaltReason
from runner.batch.following import Follower, job_class
from runner.batch.numbering import keep_paid_numbers
from runner.batch.pricing import CostEstimator
from runner.batch.progress import Notes, Progress
from runner.batch.resume import Action
from runner.batch.scheduler import Scheduler, WorkItem
from runner.batch.selection import Selection, select_jobs
from runner.batch.sessions import api_sessions
from runner.batch.sharing import Coordination
from runner.batch.submission import Submitter
from runner.batch.window import opening_window
from runner.batch.withdrawals import Withdrawals, settle_leftovers
from runner.batch.work import work_items
from runner.clock import Clock
from runner.domain import JobSpec, JobState, RemoteAsset
from runner.errors import (
    EXIT_HALTED,
    EXIT_INTERRUPTED,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    ApiError,
    KlingBatchError,
)
from runner.ledger import Event, JobRecord, JsonlLedger, LedgerWriter, load_records, replay
from runner.manifest import Manifest
from runner.outdir import Destination, hold_lock, write_failure, write_metadata, writing
from runner.polling import CadencePolicy, Durations, ListWatcher, PollMode, PollPolicy
from runner.reconcile import Reconciler
from runner.schemas import SchemaRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything a run needs to know besides the manifest; the defaults are the product's.

    The CLI layers flags over the manifest's `settings:` over these (`with_overrides`).
    """

    out_dir: Path
    concurrency: int = 8
    model_concurrency: Mapping[str, int] = field(default_factory=dict)
    submits_per_second: float | None = None
    download_concurrency: int = 4
    poll: PollPolicy = field(default_factory=PollPolicy)
    poll_mode: PollMode = PollMode.LIST
    listings_per_second: float = 4.0  # the request budget of list mode's one listing
    settle: float = 30.0
    budget: float | None = None
    max_failures: FailureLimit = field(default_factory=FailureLimit)
    auto_retries: int = 1
    # Bytes a download never takes from the folder's disk: the ledger's and metadata's room.
    keep_free: int = 16 * 1024 * 1024
    retry_failed: bool = False
    redo_changed: bool = False
    redo_ids: frozenset[str] = frozenset()
    # What the folder's batch is checked against (None: not checked), the per-user index
    # of batches (None: not used), and the user's say-so for a second batch of a manifest
    # run elsewhere, or for another manifest/account continuing this folder's batch.
    origin: str | None = None
    account: str | None = None
    batch_index: Path | None = None
    new_batch: bool = False
    continue_batch: bool = False
    # The jobs this run takes (`--only`, `--model`, `--limit`); the others are left as
    # they are, for a later run (`runner.batch.selection`).
    selection: Selection = field(default_factory=Selection)

    def with_overrides(self, **values: Any) -> RunOptions:
        """These options with every value that is not None replaced."""
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})


# Against the built-in simulator jobs take about a second: poll briskly, settle fast.
SIMULATED_POLL = PollPolicy(initial=0.2, factor=1.5, maximum=1.0, deadline=600.0,
                            lost_grace=5.0)
SIMULATED_SETTLE = 1.0


def default_options(out_dir: Path, *, simulated: bool = False) -> RunOptions:
    """The defaults of a run into `out_dir` (briskier against the simulator)."""
    if simulated:
        return RunOptions(out_dir, poll=SIMULATED_POLL, settle=SIMULATED_SETTLE)
    return RunOptions(out_dir)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the API is and who we are there (`team_id`, when known, lets the run read
    the plan's parallel-job cap)."""

    base_url: str
    credentials: Credentials
    team_id: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedRun:
    """A run that passed every check: its folder is locked and its decisions made."""

    manifest: Manifest
    options: RunOptions
    items: Sequence[WorkItem]
    records: Mapping[str, JobRecord]
    stale_lock_pid: int | None = None
    warnings: tuple[str, ...] = ()
    left_out: int = 0  # manifest jobs the selection left out (untouched by this run)

    @property
    def selected(self) -> list[JobSpec]:
        """The manifest jobs this run takes (every one without a selection)."""
        return [item.spec for item in self.items]


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended."""

    exit_code: int
    halt: HaltReason | None
    records: Mapping[str, JobRecord]


@dataclass(frozen=True, slots=True)
class Live:
    """What a running batch exposes: its control (drain, halts) and its progress; more
    observers of its job book (`run --events`) may be given."""

    control: Control
    progress: Progress
    observers: tuple[Observer, ...] = ()


@contextmanager
def prepare_run(
    manifest: Manifest, options: RunOptions, known_models: Sequence[str] = (), *,
    verified: Callable[[JobRecord], frozenset[str]] | None = None,
) -> Iterator[PreparedRun]:
    """Lock the folder, check it holds this batch, replay its ledger, decide every job,
    snapshot the plan and make metadata.jsonl whole after a killed run. The lock is held
    for the block. `verified(record)`: the asset ids whose files are in place, where the
    videos are not in the folder (an object store's listing: `runner.objstore`).

    Raises LockedError (another runner holds the folder), FolderError (it cannot be
    written) or UsageError (another batch's folder, a manifest already run elsewhere,
    changed jobs, clashing names, a selection naming no job): nothing is sent. The
    selection is made after expanded ids are kept where they were paid, so `--only` names
    the ids `status` shows; `known_models` are what `--model` may name (default: the
    manifest's).
    """
    out_dir = options.out_dir
    wanted = batch_identity(manifest, options)
    check_not_run_elsewhere(options, wanted)
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    with hold_lock(out_dir) as stale:
        batch = claim_folder(options, wanted)
        records = settle_leftovers(out_dir, load_records(out_dir))  # a killed run's cancels
        jobs, moved = keep_paid_numbers(manifest.jobs, records)
        manifest = dataclasses.replace(manifest, jobs=jobs)
        models = known_models or sorted({spec.model for spec in jobs})
        chosen = {spec.id for spec in select_jobs(jobs, options.selection, models)}
        items = work_items(manifest.jobs, records, options.out_dir,
                           retry_failed=options.retry_failed,
                           redo=lambda job: options.redo_changed or job in options.redo_ids,
                           only=None if options.selection.everything else chosen,
                           verified=verified)
        tidied = refresh_folder(out_dir, batch, manifest.jobs, records)
        warnings = (*moved, *tidied, *remember_batch(options, wanted))
        yield PreparedRun(manifest, options, items, records,
                          stale.pid if stale is not None else None, warnings,
                          left_out=len(jobs) - len(items))


def live_state(prepared: PreparedRun, clock: Clock) -> Live:
    """The control and progress of a prepared run, its jobs counted where they start."""
    total = len(prepared.items)
    notes = Notes()
    # Failed jobs of earlier runs that this run leaves alone count toward --max-failures.
    held = sum(1 for i in prepared.items
               if i.record is not None and i.record.state is JobState.FAILED
               and i.decision.action is not Action.SUBMIT)
    control = Control(total=total, limit=prepared.options.max_failures, note=notes.add,
                      failed_before=held)
    progress = Progress(total=total, control=control, clock=clock.monotonic, notes=notes)
    progress.start(i.record.state if i.record else JobState.PENDING for i in prepared.items)
    options = prepared.options
    progress.configure(
        durations=learned_durations(prepared.records), places=options.concurrency,
        settle=options.settle,
        to_submit=[job_class(i.spec.model, i.spec.params) for i in prepared.items
                   if i.decision.action is Action.SUBMIT],
        in_flight=[(i.spec.id, job_class(i.record.model or i.spec.model,
                                         i.record.params or i.spec.params),
                    i.record.unresolved_intent, _age(i.record, clock))
                   for i in prepared.items if i.record is not None and i.record.in_flight],
        budget=options.budget, spent_before=sum(r.total_cost for r in prepared.records.values()),
    )
    return Live(control, progress)


def _age(record: JobRecord, clock: Clock) -> float:
    """Seconds since the job's POST (its intent when the answer was lost); 0 if unknown."""
    stamp = record.intent_ts if record.unresolved_intent else record.submitted_ts
    if stamp is None:
        return 0.0
    try:
        posted = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if posted.tzinfo is None:
        posted = posted.replace(tzinfo=UTC)
    return max((clock.wall() - posted).total_seconds(), 0.0)


async def run_batch(
    prepared: PreparedRun, live: Live, *, registry: SchemaRegistry, endpoint: Endpoint,
    clock: Clock, shared: Coordination | None = None, destination: Destination | None = None,
) -> RunResult:
    """Run the batch; the ledger and metadata.jsonl are complete however it ends.

    With `shared`, the batch is a shared ledger's: events go through its fenced writes and
    jobs arrive as this runner claims them; without, the folder's ledger and its items.
    `destination`: where the videos go (default: the output folder itself); one that is
    not the folder (an object store) also gets the batch's views when the run ends without
    being interrupted (`Destination.publish`)."""
    options = prepared.options
    ledger = JsonlLedger(options.out_dir) if shared is None else None
    writer = None if ledger is None else LedgerWriter(
        ledger, describe=lambda exc: write_failure(exc, options.out_dir))
    sink: EventSink = writer if writer is not None else _present(shared)
    serve = writer.run if writer is not None else _present(shared).serve
    book = JobBook(sink, prepared.records,
                   (live.progress.observe, count_failures(live.control.count_failure),
                    *live.observers), on_adopt=live.progress.moved)
    try:
        async with api_sessions() as (api_session, cdn_session), anyio.create_task_group() as tg:
            tg.start_soon(serve)
            client = ScenarioClient(api_session, endpoint.base_url, endpoint.credentials,
                                    clock=clock)
            may_list = shared is None or await shared.may_list()
            watcher = _watcher(client, options, prepared.records, clock) if may_list else None
            lookup = AssetLookup(client)
            tg.start_soon(lookup.run)
            # `cancel DIR ID…` while this run goes: through the folder it holds locked (a
            # shared batch's jobs are cancelled at the API; its runners' following sees it).
            withdrawals = None if shared is not None else Withdrawals(
                options.out_dir, state_of=book.get, record=book.record,
                run_jobs=frozenset(i.spec.id for i in prepared.items),
                cancel_at_api=client.cancel_job, note=live.progress.note)
            if withdrawals is not None:
                tg.start_soon(withdrawals.watch)
            plan_cap = await _plan_cap(client, endpoint.team_id)
            claimed = _claimed_job_ids(prepared.records)
            scheduler = _scheduler(prepared=prepared, live=live, book=book,
                                   registry=registry, client=client, lookup=lookup,
                                   cdn_session=cdn_session, watcher=watcher,
                                   plan_cap=plan_cap, clock=clock, claimed=claimed,
                                   before_post=None if shared is None else shared.before_post,
                                   before_send=None if shared is None else shared.before_send,
                                   destination=destination, withdrawals=withdrawals)
            if watcher is not None:
                tg.start_soon(watcher.run)
            try:
                if withdrawals is not None:
                    await scheduler.run(prepared.items)
                    await withdrawals.settle()  # the cancelled jobs no task reached
                else:
                    shared = _present(shared)
                    await scheduler.run_claimed(
                        shared.claims(book, claimed, live.progress.note), shared.ended)
            finally:
                # After every job task has ended (shielded POSTs included): the writer
                # drains what they handed over, then returns; the watcher has no one left.
                if writer is not None:
                    writer.close()
                tg.cancel_scope.cancel()
    finally:
        if ledger is not None:
            ledger.close()
        records, events = await _final_records(prepared, book.records, shared)
        _rewrite_metadata(prepared, live, records)
    if destination is not None:
        await _publish(destination, prepared, live, records, events)
    ending = live.control.ending
    return RunResult(exit_code_for(prepared.selected, records, ending), ending, records)


def _present(shared: Coordination | None) -> Coordination:
    if shared is None:
        raise ValueError("a run without a folder ledger needs a shared one")  # never
    return shared


async def _final_records(
    prepared: PreparedRun, records: Mapping[str, JobRecord], shared: Coordination | None
) -> tuple[Mapping[str, JobRecord], Iterable[Event]]:
    """Every job's record as the run ends, and the ledger's events (read lazily from the
    folder; the shared ledger's, read now, shielded: the run may be being cancelled)."""
    if shared is None:
        return records, JsonlLedger(prepared.options.out_dir).read_events()
    with anyio.CancelScope(shield=True):
        events = await shared.final_events()
    return replay(events), events


def _claimed_job_ids(records: Mapping[str, JobRecord]) -> set[str]:
    """Every jobId the ledger knows (a listing must never adopt one for a lost POST)."""
    claimed = {r.job_id for r in records.values() if r.job_id}
    claimed.update(j for r in records.values() for j in r.previous_job_ids)
    return claimed


def _rewrite_metadata(
    prepared: PreparedRun, live: Live, records: Mapping[str, JobRecord]
) -> None:
    """metadata.jsonl from the ledger, however the run ends; a folder that cannot take it
    halts the run (the next one rewrites it) and never hides how the run ended."""
    out_dir = prepared.options.out_dir
    try:
        write_metadata(out_dir, records.values(), {spec.id for spec in prepared.manifest.jobs})
    except OSError as exc:
        live.control.halt_for(HaltReason.DISK, f"metadata.jsonl was not rewritten: "
                              f"{write_failure(exc, out_dir)}")


async def _publish(
    destination: Destination, prepared: PreparedRun, live: Live,
    records: Mapping[str, JobRecord], events: Iterable[Event],
) -> None:
    """The batch's views where its videos are; a failure is said, never how the run ended
    (`report` writes them again)."""
    try:
        await destination.publish(records, prepared.manifest.jobs, events)
    except KlingBatchError as exc:
        live.progress.note(f"the views were not written to {destination.describe()}: {exc}")


def _scheduler(
    *, prepared: PreparedRun, live: Live, book: JobBook, registry: SchemaRegistry,
    client: ScenarioClient, lookup: AssetLookup, cdn_session: aiohttp.ClientSession,
    watcher: ListWatcher | None, plan_cap: int | None, clock: Clock, claimed: set[str],
    before_post: Callable[[str], Awaitable[None]] | None,
    before_send: Callable[[str], None] | None = None,
    destination: Destination | None = None, withdrawals: Withdrawals | None = None,
) -> Scheduler:
    options, note, control = prepared.options, live.progress.note, live.control
    records = prepared.records.values()
    uploader = AssetUploader(client, cdn_session, options.out_dir / ".cache" / "assets.json")

    async def make_body(spec: JobSpec) -> dict[str, Any]:
        return await request_body(spec, registry, uploader)

    async def inputs_of(spec: JobSpec, body: dict[str, Any]) -> tuple[dict[str, str], ...]:
        return await input_files(spec, body, uploader.content_hash)

    async def fetch(asset_id: str, dest: Path, known: RemoteAsset | None) -> DownloadedFile:
        return await download_asset(client, cdn_session, asset_id, dest, lookup=lookup,
                                    known=known, keep_free=options.keep_free)

    follower = Follower(book=book, get_job=client.get_job, watcher=watcher,
                        policy=options.poll, fetch=fetch, locate=lookup,
                        out_dir=options.out_dir, note=note, clock=clock, halt=control.halt_for,
                        destination=destination)
    submitter = Submitter(
        book=book, make_body=make_body, generate=client.generate,
        price=CostEstimator(client) if options.budget is not None else None,
        budget=Budget(options.budget, sum(r.total_cost for r in records)),
        reconciler=Reconciler(lambda since: client.list_jobs(created_after=since),
                              claimed=claimed, settle=options.settle, clock=clock),
        may_submit=lambda: control.submissions_allowed, note=note, clock=clock,
        inputs_of=inputs_of, set_aside=follower.supersede, before_post=before_post,
        before_send=before_send,
        withdrawals=withdrawals,
    )
    admission = Admission(
        window=opening_window(options.concurrency, plan_cap),
        workers=options.concurrency + options.download_concurrency,
        model_limits=options.model_concurrency,
        rate=RateLimiter(options.submits_per_second, clock=clock),
        clock=clock,
    )
    live.progress.gauge = admission.gauge
    return Scheduler(admission=admission, submitter=submitter, follower=follower,
                     control=control, download_concurrency=options.download_concurrency,
                     auto_retries=options.auto_retries, note=note, withdrawals=withdrawals)


async def _plan_cap(client: ScenarioClient, team_id: str | None) -> int | None:
    """The plan's cap on jobs in flight, where the API will say; None otherwise (the
    window then learns it from refusals)."""
    if team_id is None:
        return None
    try:
        return await client.parallel_job_cap(team_id)
    except ApiError as exc:
        log.info("the plan's limits could not be read (%s): learning the cap instead", exc)
        return None


def _watcher(
    client: ScenarioClient, options: RunOptions, records: Mapping[str, JobRecord], clock: Clock
) -> ListWatcher | None:
    if options.poll_mode is not PollMode.LIST:
        return None
    cadence = CadencePolicy(min_interval=1.0 / options.listings_per_second,
                            max_interval=options.poll.maximum)
    return ListWatcher(lambda since: client.list_jobs(updated_after=since), client.get_job,
                       clock=clock, cadence=cadence, durations=learned_durations(records),
                       lost_grace=options.poll.lost_grace)


def learned_durations(records: Mapping[str, JobRecord]) -> Durations:
    """What earlier runs in the folder learned of how long jobs take (the cadence's seed)."""
    durations = Durations()
    for record in records.values():
        if record.run_seconds is not None and record.model is not None:
            durations.add(job_class(record.model, record.params or {}), record.run_seconds)
    return durations


def exit_code_for(
    specs: Sequence[JobSpec], records: Mapping[str, JobRecord], halt: HaltReason | None
) -> int:
    """0 all done with files, 1 some failed/canceled/missing, 3 halted, 130 interrupted;
    over `specs`, the jobs the run took (a selected run answers for its selection only)."""
    if halt is HaltReason.INTERRUPTED:
        return EXIT_INTERRUPTED
    if halt is not None:
        return EXIT_HALTED
    for spec in specs:
        record = records.get(spec.id)
        if record is None or not record.all_downloaded:
            return EXIT_JOBS_FAILED
    return EXIT_OK
