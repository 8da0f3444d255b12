"""Wiring of one `run`: output folder, ledger, decisions, HTTP sessions, scheduler.

`prepare_run` does everything that needs no network and may refuse (lock, changed jobs);
`execute_run` opens the sessions and runs the scheduler. Both take every varying thing as a
parameter (base URL, credentials, clock, sleep), and only the CLI builds those.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from runner.api.backoff import Pacer
from runner.api.client import Credentials, ScenarioClient
from runner.api.uploads import AssetUploader
from runner.batch.admission import ModelLimiters, RateLimiter
from runner.batch.control import Budget, FailureLimit, HaltReason
from runner.batch.pricing import CostEstimator
from runner.batch.progress import Progress
from runner.batch.resume import Action, decide
from runner.batch.scheduler import PoolConfig, Scheduler, WorkItem
from runner.batch.submission import FlowConfig, JobFlow, Stop
from runner.domain import JobSpec, JobState
from runner.errors import EXIT_HALTED, EXIT_INTERRUPTED, EXIT_JOBS_FAILED, EXIT_OK, UsageError
from runner.ledger.journal import JobRecord, JsonlLedger, LedgerWriter, replay
from runner.manifest import Manifest
from runner.outdir.files import verified_assets, video_name_clashes, write_metadata, write_plan
from runner.polling.each import PollPolicy
from runner.polling.listing import ListWatcher
from runner.reconcile.matching import Reconciler
from runner.schemas.registry import SchemaRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything a run needs to know besides the manifest (CLI flags over manifest settings)."""

    out_dir: Path
    concurrency: int = 8
    model_concurrency: Mapping[str, int] = field(default_factory=dict)
    submits_per_second: float | None = None
    download_concurrency: int = 4
    poll: PollPolicy = field(default_factory=PollPolicy)
    poll_mode: str = "list"  # "list": one GET /jobs?updatedAfter=… per interval; "each"
    settle: float = 30.0
    budget: float | None = None
    max_failures: FailureLimit = field(default_factory=FailureLimit)
    auto_retries: int = 1
    retry_failed: bool = False
    redo_changed: bool = False
    redo_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended."""

    exit_code: int
    halt: HaltReason | None
    records: Mapping[str, JobRecord]


def plan_items(
    manifest: Manifest, records: Mapping[str, JobRecord], options: RunOptions
) -> list[WorkItem]:
    """The work items of a run; raises UsageError (nothing sent) for changed jobs."""
    clashes = video_name_clashes(spec.id for spec in manifest.jobs)
    if clashes:
        raise UsageError(
            f"job id(s) {', '.join(clashes[:10])} would share video file names with another "
            "job's extra videos (<id>_<n>.mp4)",
            hint="rename them, e.g. with '-' instead of '_' before the number",
        )
    items: list[WorkItem] = []
    for spec in manifest.jobs:
        record = records.get(spec.id)
        redo = options.redo_changed or spec.id in options.redo_ids
        # Hashed once here: the decision and a later re-download both use the result.
        verified = verified_assets(options.out_dir, record) if record else frozenset()
        files_ok = record is not None and len(verified) == len(record.assets)
        decision = decide(spec.model, spec.params, record, files_ok=files_ok,
                          retry_failed=options.retry_failed, redo=redo)
        items.append(WorkItem(spec, decision, record, verified))
    changed = [i for i in items if i.decision.action is Action.CHANGED]
    if changed:
        lines = "; ".join(f"{i.spec.id}: {', '.join(i.decision.changed)}" for i in changed[:20])
        more = f" (and {len(changed) - 20} more)" if len(changed) > 20 else ""
        raise UsageError(
            f"{len(changed)} job(s) differ from what was submitted under the same id: "
            f"{lines}{more}",
            hint="rename them to keep both, or pass --redo-changed (or --redo ID) to "
            "submit the new version; the ledger keeps the old attempt",
        )
    return items


def exit_code_for(
    specs: Sequence[JobSpec], records: Mapping[str, JobRecord], halt: HaltReason | None
) -> int:
    """0 all done with files, 1 some failed/canceled/missing, 3 halted, 130 interrupted."""
    if halt is HaltReason.INTERRUPTED:
        return EXIT_INTERRUPTED
    if halt is not None:
        return EXIT_HALTED
    for spec in specs:
        record = records.get(spec.id)
        if record is None or not record.all_downloaded:
            return EXIT_JOBS_FAILED
    return EXIT_OK


@dataclass
class RunContext:
    """The injected shell of a run."""

    base_url: str
    credentials: Credentials
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    stop: Stop = field(default_factory=Stop)


def _list_jobs_from(client: ScenarioClient) -> Callable[[str], Any]:
    def list_since(created_after: str) -> Any:
        return client.list_jobs(created_after=created_after)

    return list_since


async def execute_run(
    *,
    manifest: Manifest,
    registry: SchemaRegistry,
    items: Sequence[WorkItem],
    records: Mapping[str, JobRecord],
    options: RunOptions,
    ctx: RunContext,
    progress: Progress,
) -> RunResult:
    """Run the batch; the ledger and metadata.jsonl are complete however it ends."""
    ledger = JsonlLedger(options.out_dir)
    writer = LedgerWriter(ledger)
    claimed = {r.job_id for r in records.values() if r.job_id}
    claimed.update(j for r in records.values() for j in r.previous_job_ids)
    try:
        async with api_sessions() as (api_session, cdn_session), anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            client = ScenarioClient(api_session, ctx.base_url, ctx.credentials,
                                    pacer=Pacer(), sleep=ctx.sleep)
            watcher = _watcher(client, options, ctx)
            flow = JobFlow(
                client=client, cdn_session=cdn_session,
                uploader=AssetUploader(client, cdn_session,
                                       options.out_dir / ".cache" / "assets.json"),
                registry=registry, writer=writer,
                reconciler=Reconciler(_list_jobs_from(client), claimed=claimed,
                                      settle=options.settle, clock=ctx.clock, sleep=ctx.sleep),
                budget=Budget(options.budget, sum(r.total_cost for r in records.values())),
                estimate=CostEstimator(client) if options.budget is not None else None,
                progress=progress, stop=ctx.stop,
                config=FlowConfig(options.out_dir, options.poll, options.auto_retries),
                clock=ctx.clock, sleep=ctx.sleep, watcher=watcher,
            )
            scheduler = Scheduler(
                flow,
                PoolConfig(options.concurrency, options.download_concurrency,
                           options.max_failures, options.auto_retries),
                ModelLimiters(options.model_concurrency),
                RateLimiter(options.submits_per_second, clock=ctx.clock, sleep=ctx.sleep),
            )
            if watcher is not None:
                tg.start_soon(watcher.run)
            try:
                await scheduler.run(items)
            finally:
                # After every job task has ended (shielded POSTs included): the writer
                # drains what they handed over, then returns; the watcher has no one left.
                writer.close()
                tg.cancel_scope.cancel()
    finally:
        ledger.close()
        final = replay(JsonlLedger(options.out_dir).read_events())
        write_metadata(options.out_dir, final.values())
    halt = ctx.stop.halt or (HaltReason.INTERRUPTED if ctx.stop.draining else None)
    return RunResult(exit_code_for(manifest.jobs, final, halt), halt, final)


def _watcher(client: ScenarioClient, options: RunOptions, ctx: RunContext) -> ListWatcher | None:
    if options.poll_mode != "list":
        return None

    def list_updated(since: str) -> Any:
        return client.list_jobs(updated_after=since)

    return ListWatcher(list_updated, client.get_job, clock=ctx.clock, sleep=ctx.sleep,
                       interval=options.poll.initial)


class api_sessions:
    """Two aiohttp sessions: one for the API (credentials added per request by the client,
    only for its origin), one that never carries credentials, for the CDN and upload parts.
    """

    async def __aenter__(self) -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=60.0)
        self._api = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        self._cdn = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        return self._api, self._cdn

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self._api.close()
            await self._cdn.close()


def load_records(out_dir: Path) -> dict[str, JobRecord]:
    """Replay the folder's ledger (empty for a new folder)."""
    return replay(JsonlLedger(out_dir).read_events())


def start_run_files(out_dir: Path, manifest: Manifest, records: Mapping[str, JobRecord]) -> None:
    """Snapshot the plan, and make metadata.jsonl whole after a killed run."""
    write_plan(out_dir, manifest.jobs)
    write_metadata(out_dir, records.values())


def state_counts(records: Mapping[str, JobRecord], specs: Sequence[JobSpec]) -> dict[str, int]:
    """Jobs per state for the manifest's jobs."""
    counts = {s.value: 0 for s in JobState}
    for spec in specs:
        record = records.get(spec.id)
        counts[(record.state if record else JobState.PENDING).value] += 1
    return counts
