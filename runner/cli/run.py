"""`kling-batch run MANIFEST`: run the batch, or resume it if DIR already holds its ledger.

Signals: the first SIGINT/SIGTERM drains (no new submissions; jobs in flight are still
followed and downloaded), a second one stops at once. Either way every jobId is in the
ledger and the exit code is 130: re-run the same command to resume.
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from runner.api import DEFAULT_BASE_URL
from runner.batch import (
    Control,
    Endpoint,
    FailureLimit,
    HaltReason,
    Live,
    PreparedRun,
    RunOptions,
    RunResult,
    default_options,
    live_state,
    prepare_run,
    progress_line,
    run_batch,
)
from runner.cli import output
from runner.cli.endpoint import api_endpoint, simulated_endpoint
from runner.cli.live import render_progress
from runner.cli.refresh import keep_views_fresh, record_batch, write_final_views
from runner.cli.validate import add_allow_unknown, load_from_args
from runner.clock import REAL_CLOCK
from runner.errors import EXIT_INTERRUPTED, UsageError
from runner.ledger import JobRecord, load_records
from runner.manifest import Manifest
from runner.outdir import PlannedJob
from runner.polling import PollMode, PollPolicy
from runner.schemas import SchemaRegistry
from runner.views import job_views, state_counts

# The defaults, for the help texts (RunOptions is where they are written).
_D = default_options(Path("."))



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
    limits.add_argument("--concurrency", type=int, help="jobs in flight at the API (default "
                        f"{_D.concurrency})")
    limits.add_argument("--model-concurrency", action="append", default=[],
                        metavar="MODEL=N", help="per-model limit on jobs in flight")
    limits.add_argument("--submit-rate", type=float, metavar="PER_SECOND",
                        help="at most this many generate requests per second")
    limits.add_argument("--download-concurrency", type=int, help="parallel downloads "
                        f"(default {_D.download_concurrency})")
    limits.add_argument("--job-timeout", type=float, metavar="SECONDS",
                        help="per-job deadline for a terminal status (default "
                        f"{_D.poll.deadline:g})")
    limits.add_argument("--poll-interval", type=float, metavar="SECONDS",
                        help=f"first poll after this long, then x{_D.poll.factor:g} each time "
                        f"(default {_D.poll.initial:g})")
    limits.add_argument("--poll-max", type=float, metavar="SECONDS",
                        help="longest wait between two polls (or listings) (default "
                        f"{_D.poll.maximum:g})")
    limits.add_argument("--poll-mode", choices=[m.value for m in PollMode],
                        help="list (default): one job listing for the whole batch, at a "
                        "cadence learned from the jobs' durations; each: one GET per job, "
                        "backing off (see the README's benchmark)")
    limits.add_argument("--listings-per-second", type=float, metavar="N",
                        help="list mode's request budget: at most N job listings a second "
                        f"(default {_D.listings_per_second:g}); the cadence follows the jobs")
    limits.add_argument("--settle", type=float, metavar="SECONDS",
                        help="how long a lost POST is looked for before posting again "
                        f"(default {_D.settle:g})")
    halts = parser.add_argument_group("halting and retries")
    halts.add_argument("--budget", type=float, metavar="CU",
                       help="stop submitting before the spend would pass this many CU")
    halts.add_argument("--max-failures", metavar="N|N%", help="halt once this many jobs fail")
    halts.add_argument("--auto-retries", type=int,
                       help="automatic new attempts for transient job failures "
                       f"(default {_D.auto_retries})")
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


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def build_options(args: argparse.Namespace, manifest: Manifest) -> RunOptions:
    """CLI flags over the manifest's `settings:`, over the defaults (`RunOptions`)."""
    s = manifest.settings
    for name in ("concurrency", "submit_rate", "download_concurrency", "job_timeout",
                 "settle", "budget", "poll_interval", "poll_max", "listings_per_second"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    out_dir = (args.output or Path("output") / args.manifest.stem).resolve()
    defaults = default_options(out_dir, simulated=args.simulate)
    poll = defaults.poll
    return defaults.with_overrides(
        concurrency=_first(args.concurrency, s.concurrency),
        model_concurrency=_model_limits(args.model_concurrency, manifest),
        submits_per_second=_first(args.submit_rate, s.submits_per_second),
        download_concurrency=_first(args.download_concurrency, s.download_concurrency),
        poll=PollPolicy(_first(args.poll_interval, poll.initial), poll.factor,
                        _first(args.poll_max, poll.maximum),
                        _first(args.job_timeout, s.job_timeout, poll.deadline)),
        poll_mode=PollMode(args.poll_mode) if args.poll_mode else None,
        listings_per_second=args.listings_per_second,
        settle=args.settle,
        budget=_first(args.budget, s.budget),
        max_failures=FailureLimit.parse(args.max_failures or s.max_failures),
        auto_retries=None if args.auto_retries is None else max(0, args.auto_retries),
        retry_failed=args.retry_failed,
        redo_changed=args.redo_changed,
        redo_ids=frozenset(args.redo),
    )


def resolve_endpoint(args: argparse.Namespace) -> Endpoint | None:
    """Base URL and credentials for a real run; None with --simulate. Never falls back."""
    if args.simulate:
        return None
    return Endpoint(*api_endpoint(args.base_url), team_id=os.environ.get("SCENARIO_TEAM_ID"))


def execute(args: argparse.Namespace) -> int:
    registry, manifest = load_from_args(args)
    for warning in manifest.warnings:
        output.err(str(warning))
    options = build_options(args, manifest)
    endpoint = resolve_endpoint(args)
    with prepare_run(manifest, options) as prepared:
        if prepared.stale_lock_pid is not None:
            output.err(f"took over a stale lock left by pid {prepared.stale_lock_pid} "
                       "(it is gone)")
        record_batch(prepared)
        return anyio.run(_run, args, prepared, registry, endpoint)


async def _run(
    args: argparse.Namespace, prepared: PreparedRun, registry: SchemaRegistry,
    endpoint: Endpoint | None,
) -> int:
    clock = REAL_CLOCK
    live = live_state(prepared, clock)
    async with AsyncExitStack() as stack:
        if endpoint is None:
            endpoint = Endpoint(*await simulated_endpoint(stack, seed=args.sim_seed,
                                                          profile=args.sim_profile),
                                team_id=os.environ.get("SCENARIO_TEAM_ID"))
        outcome: list[RunResult] = []
        with anyio.CancelScope() as hard_stop:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, live.control, hard_stop)
                if not args.quiet:
                    tg.start_soon(render_progress, live.progress)
                tg.start_soon(keep_views_fresh, prepared.options.out_dir)  # report every 30 s
                outcome.append(await run_batch(prepared, live, registry=registry,
                                               endpoint=endpoint, clock=clock))
                tg.cancel_scope.cancel()
        records = outcome[0].records if outcome else load_records(prepared.options.out_dir)
        write_final_views(prepared.options.out_dir)
        _summarize(live, prepared, records)
        return outcome[0].exit_code if outcome else EXIT_INTERRUPTED


async def _watch_signals(control: Control, hard_stop: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if not control.draining:
                control.drain()
                output.err(f"{signal.Signals(signum).name}: draining — no new submissions; "
                           "jobs in flight are followed to the end (again to stop now)")
                continue
            output.err("stopping now; every jobId is in the ledger — run again to resume")
            hard_stop.cancel()
            return


def _summarize(live: Live, prepared: PreparedRun, records: Mapping[str, JobRecord]) -> None:
    """The closing lines: notes not yet shown, how the run ended, where the files are."""
    progress, control = live.progress, live.control
    for message in progress.unshown_notes():
        output.err(message)
    output.err(progress_line(progress.snapshot()))
    gauge = progress.snapshot().admission
    if gauge is not None and gauge.refusals:
        output.err(f"the account's cap held the batch to about {gauge.limit} job(s) in "
                   f"flight (asked {gauge.asked}): {gauge.refusals} POST(s) refused for "
                   "capacity and posted again later, none failed")
    if control.halt is not None and control.halt is not HaltReason.INTERRUPTED:
        output.err(f"halted: {control.halt.value}; fix it and run the same command to resume")
    elif control.draining:
        output.err("interrupted; run the same command to resume")
    plan = [PlannedJob(s.id, s.model, s.params) for s in prepared.manifest.jobs]
    views = job_views(prepared.options.out_dir, plan, records)
    counts = state_counts(v for v in views if v.planned)
    files = sum(len(r.assets) for r in records.values())
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    cost = sum(r.total_cost for r in records.values())
    output.out(f"{summary} — {files} file(s) in {prepared.options.out_dir / 'videos'} — "
               f"{cost:g} CU spent in all")
