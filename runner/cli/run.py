"""`kling-batch run MANIFEST`: run the batch, or resume it if DIR already holds its ledger.

Signals: the first SIGINT/SIGTERM drains (no new submissions; jobs in flight are still
followed and downloaded), a second one stops at once. Either way every jobId is in the
ledger and the exit code is 130: re-run the same command to resume.
"""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio

from runner.api.client import DEFAULT_BASE_URL, Credentials
from runner.batch.control import FailureLimit, HaltReason
from runner.batch.engine import (
    RunContext,
    RunOptions,
    RunResult,
    execute_run,
    load_records,
    plan_items,
    start_run_files,
    state_counts,
)
from runner.batch.progress import Progress, progress_line
from runner.batch.scheduler import WorkItem
from runner.batch.submission import Stop
from runner.cli import output
from runner.cli.endpoint import api_endpoint, simulated_endpoint
from runner.cli.live import render_progress
from runner.cli.validate import add_allow_unknown, load_from_args
from runner.errors import EXIT_INTERRUPTED, UsageError
from runner.ledger.journal import JobRecord
from runner.manifest import Manifest
from runner.outdir.lock import hold_lock
from runner.polling.each import PollPolicy
from runner.schemas.registry import SchemaRegistry

NAME = "run"
HELP = "run a manifest's jobs (or resume them) and download the videos"

# With --simulate, jobs take about a second: poll briskly and settle fast.
SIMULATE_POLL = PollPolicy(initial=0.2, factor=1.5, maximum=1.0, deadline=600.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="the YAML manifest")
    parser.add_argument("-o", "--output", type=Path, help="output folder "
                        "(default: output/<manifest name>/)")
    parser.add_argument("--simulate", action="store_true",
                        help="run against the built-in API simulator on a loopback port")
    parser.add_argument("--sim-profile", default="none", choices=("none", "flaky", "hostile"),
                        help="with --simulate: the simulator's fault profile")
    parser.add_argument("--sim-seed", type=int, default=0, help="with --simulate: fault seed")
    parser.add_argument("--base-url", help="API base URL (default: $SCENARIO_BASE_URL or "
                        f"{DEFAULT_BASE_URL})")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--concurrency", type=int, help="jobs in flight at the API (default 8)")
    limits.add_argument("--model-concurrency", action="append", default=[],
                        metavar="MODEL=N", help="per-model limit on jobs in flight")
    limits.add_argument("--submit-rate", type=float, metavar="PER_SECOND",
                        help="at most this many generate requests per second")
    limits.add_argument("--download-concurrency", type=int, help="parallel downloads (4)")
    limits.add_argument("--job-timeout", type=float, metavar="SECONDS",
                        help="per-job deadline for a terminal status (default 3600)")
    limits.add_argument("--poll-interval", type=float, metavar="SECONDS",
                        help="first poll after this long, then x1.5 each time (default 2)")
    limits.add_argument("--poll-max", type=float, metavar="SECONDS",
                        help="longest wait between two polls of a job (default 15)")
    limits.add_argument("--poll-mode", choices=("each", "list"), default="list",
                        help="list (default): one job listing per poll interval for the whole "
                        "batch, plus one direct look per job; each: one GET per job, backing "
                        "off (see the README's benchmark)")
    limits.add_argument("--settle", type=float, metavar="SECONDS",
                        help="how long a lost POST is looked for before posting again (30)")
    halts = parser.add_argument_group("halting and retries")
    halts.add_argument("--budget", type=float, metavar="CU",
                       help="stop submitting before the spend would pass this many CU")
    halts.add_argument("--max-failures", metavar="N|N%", help="halt once this many jobs fail")
    halts.add_argument("--auto-retries", type=int, default=1,
                       help="automatic new attempts for transient job failures (default 1)")
    halts.add_argument("--retry-failed", action="store_true",
                       help="make a new attempt for jobs that failed or were canceled")
    halts.add_argument("--redo-changed", action="store_true",
                       help="submit jobs whose model/params changed since they were submitted")
    halts.add_argument("--redo", action="append", default=[], metavar="ID",
                       help="submit this changed job again (repeatable)")
    add_allow_unknown(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def _model_limits(values: list[str], manifest: Manifest) -> dict[str, int]:
    limits = dict(manifest.settings.model_concurrency)
    for value in values:
        model, sep, count = value.partition("=")
        if not sep or not count.strip().isdigit() or int(count) < 1:
            raise UsageError(f"--model-concurrency {value!r} is not MODEL=N",
                             hint="e.g. --model-concurrency model_kling-v3-t2v-4k=2")
        limits[model.strip()] = int(count)
    return limits


def _positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise UsageError(f"{name} must be positive, got {value:g}")


def build_options(args: argparse.Namespace, manifest: Manifest) -> RunOptions:
    """CLI flags over the manifest's `settings:`, over the defaults."""
    s = manifest.settings
    for name in ("concurrency", "submit_rate", "download_concurrency", "job_timeout",
                 "settle", "budget", "poll_interval", "poll_max"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    poll = SIMULATE_POLL if args.simulate else PollPolicy()
    deadline = args.job_timeout or s.job_timeout or poll.deadline
    settle = args.settle if args.settle is not None else (1.0 if args.simulate else 30.0)
    return RunOptions(
        out_dir=(args.output or Path("output") / args.manifest.stem).resolve(),
        concurrency=args.concurrency or s.concurrency or 8,
        model_concurrency=_model_limits(args.model_concurrency, manifest),
        submits_per_second=args.submit_rate or s.submits_per_second,
        download_concurrency=args.download_concurrency or s.download_concurrency or 4,
        poll=PollPolicy(args.poll_interval or poll.initial, poll.factor,
                        args.poll_max or poll.maximum, deadline),
        poll_mode=args.poll_mode,
        settle=settle,
        budget=args.budget if args.budget is not None else s.budget,
        max_failures=FailureLimit.parse(args.max_failures or s.max_failures),
        auto_retries=max(0, args.auto_retries),
        retry_failed=args.retry_failed,
        redo_changed=args.redo_changed,
        redo_ids=frozenset(args.redo),
    )


def resolve_endpoint(args: argparse.Namespace) -> tuple[str, Credentials] | None:
    """Base URL and credentials for a real run; None with --simulate. Never falls back."""
    return None if args.simulate else api_endpoint(args.base_url)


def execute(args: argparse.Namespace) -> int:
    registry, manifest = load_from_args(args)
    for warning in manifest.warnings:
        output.err(str(warning))
    options = build_options(args, manifest)
    endpoint = resolve_endpoint(args)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    with hold_lock(options.out_dir) as stale:
        if stale is not None and stale.pid is not None:
            output.err(f"took over a stale lock left by pid {stale.pid} (it is gone)")
        records = load_records(options.out_dir)
        items = plan_items(manifest, records, options)
        start_run_files(options.out_dir, manifest, records)
        prep = _Prepared(manifest, registry, items, records, options, endpoint)
        return anyio.run(_run, args, prep)


@dataclass(frozen=True, slots=True)
class _Prepared:
    manifest: Manifest
    registry: SchemaRegistry
    items: list[WorkItem]
    records: dict[str, JobRecord]
    options: RunOptions
    endpoint: tuple[str, Credentials] | None


async def _run(args: argparse.Namespace, prep: _Prepared) -> int:
    progress = Progress(total=len(prep.items), clock=time.monotonic)
    stop = Stop()
    endpoint = prep.endpoint
    async with AsyncExitStack() as stack:
        if endpoint is None:
            endpoint = await simulated_endpoint(stack, seed=args.sim_seed,
                                                profile=args.sim_profile)
        ctx = RunContext(base_url=endpoint[0], credentials=endpoint[1], stop=stop)
        outcome: list[RunResult] = []
        with anyio.CancelScope() as hard_stop:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, stop, progress, hard_stop)
                if not args.quiet:
                    tg.start_soon(render_progress, progress)
                result = await execute_run(
                    manifest=prep.manifest, registry=prep.registry, items=prep.items,
                    records=prep.records, options=prep.options, ctx=ctx, progress=progress,
                )
                outcome.append(result)
                tg.cancel_scope.cancel()
        records = outcome[0].records if outcome else load_records(prep.options.out_dir)
        _summarize(progress, prep, stop, records)
        return outcome[0].exit_code if outcome else EXIT_INTERRUPTED


async def _watch_signals(stop: Stop, progress: Progress, hard_stop: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if not stop.draining:
                stop.draining = True
                progress.draining = True
                output.err(f"{signal.Signals(signum).name}: draining — no new submissions; "
                           "jobs in flight are followed to the end (again to stop now)")
                continue
            output.err("stopping now; every jobId is in the ledger — run again to resume")
            hard_stop.cancel()
            return


def _summarize(
    progress: Progress, prep: _Prepared, stop: Stop, records: Mapping[str, JobRecord]
) -> None:
    """The closing lines: notes not yet shown, how the run ended, where the files are."""
    for message in progress.unshown_notes():
        output.err(message)
    output.err(progress_line(progress.snapshot()))
    if stop.halt is not None and stop.halt is not HaltReason.INTERRUPTED:
        output.err(f"halted: {stop.halt.value}; fix it and run the same command to resume")
    elif stop.draining:
        output.err("interrupted; run the same command to resume")
    counts = state_counts(records, prep.manifest.jobs)
    files = sum(len(r.assets) for r in records.values())
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    cost = sum(r.total_cost for r in records.values())
    output.out(f"{summary} — {files} file(s) in {prep.options.out_dir / 'videos'} — "
               f"{cost:g} CU spent in all")
