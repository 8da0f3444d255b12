"""`kling-batch run MANIFEST`: run the batch, or resume it if DIR already holds its ledger.

Signals: the first SIGINT/SIGTERM drains (no new submissions; jobs in flight are still
followed and downloaded), a second one stops at once. Either way every jobId is in the
ledger and the exit code is 130: re-run the same command to resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from runner.api import DEFAULT_BASE_URL, account_of, api_origin
from runner.batch import (
    Control,
    Coordination,
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
from runner.cli import confirm, notify, output
from runner.cli.endpoint import api_endpoint, simulated_endpoint
from runner.cli.events import EventStream
from runner.cli.live import render_progress
from runner.cli.refresh import keep_views_fresh, record_batch, write_final_views
from runner.cli.selection import add_selection_arguments, selection_of
from runner.cli.status import LEDGER_HINT
from runner.cli.validate import add_manifest_switches, load_from_args
from runner.clock import REAL_CLOCK
from runner.domain import JobState
from runner.errors import (
    EXIT_HALTED,
    EXIT_INTERRUPTED,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
)
from runner.ledger import JobRecord, load_records, replay
from runner.manifest import Manifest, flag_value, model_limit_flag
from runner.outdir import SIMULATOR, Destination, PlannedJob, default_index_path, writing
from runner.polling import PollMode, PollPolicy
from runner.schemas import SchemaRegistry
from runner.views import JobView, job_views, state_counts

# The in-process simulator's memory, kept in the folder so a simulated run resumes.
SIMULATOR_STATE = Path(".simulator") / "state.json"

# The defaults, for the help texts (RunOptions is where they are written).
_D = default_options(Path("."))



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="the YAML manifest")
    parser.add_argument("-o", "--output", help="output folder (default: output/<manifest "
                        "name>/), or s3://BUCKET/PREFIX with --ledger")
    shared = parser.add_argument_group("several runners, one batch")
    shared.add_argument("--ledger", metavar="URL",
                        help="a shared ledger: postgresql://USER@HOST:PORT/DB (default "
                        "$KLING_BATCH_LEDGER; the password from PGPASSWORD or ~/.pgpass); "
                        "the same manifest, -o and --ledger on any number of machines is one "
                        "batch")
    shared.add_argument("--lease", metavar="SECONDS",
                        help="with --ledger: a runner silent this long has its jobs taken "
                        "over by the others (default 30)")
    parser.add_argument("--simulate", action="store_true",
                        help="run against the built-in API simulator on a loopback port")
    parser.add_argument("--sim-profile", default="none", choices=("none", "flaky", "hostile"),
                        help="with --simulate: the simulator's fault profile")
    parser.add_argument("--sim-seed", type=int, default=0, help="with --simulate: fault seed")
    parser.add_argument("--sim-job-seconds", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="with --simulate: how long a job runs, drawn per job "
                        "(default 0.3 1.5); long enough to try Ctrl-C and resume")
    parser.add_argument("--base-url", help="API base URL (default: $SCENARIO_BASE_URL or "
                        f"{DEFAULT_BASE_URL})")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--concurrency", metavar="N", help="jobs in flight at the API "
                        f"(default {_D.concurrency})")
    limits.add_argument("--model-concurrency", action="append", default=[],
                        metavar="MODEL=N", help="per-model limit on jobs in flight")
    limits.add_argument("--submit-rate", metavar="PER_SECOND",
                        help="at most this many generate requests per second")
    limits.add_argument("--download-concurrency", metavar="N", help="parallel downloads "
                        f"(default {_D.download_concurrency})")
    limits.add_argument("--job-timeout", metavar="SECONDS",
                        help="per-job deadline for a terminal status (default "
                        f"{_D.poll.deadline:g})")
    limits.add_argument("--poll-interval", metavar="SECONDS",
                        help=f"first poll after this long, then x{_D.poll.factor:g} each time "
                        f"(default {_D.poll.initial:g})")
    limits.add_argument("--poll-max", metavar="SECONDS",
                        help="longest wait between two polls (or listings) (default "
                        f"{_D.poll.maximum:g})")
    limits.add_argument("--poll-mode", choices=[m.value for m in PollMode],
                        help="list (default): one job listing for the whole batch, at a "
                        "cadence learned from the jobs' durations; each: one GET per job, "
                        "backing off (see the README's benchmark)")
    limits.add_argument("--listings-per-second", metavar="N",
                        help="list mode's request budget: at most N job listings a second "
                        f"(default {_D.listings_per_second:g}); the cadence follows the jobs")
    limits.add_argument("--lost-grace", metavar="SECONDS",
                        help="a job the API answers 404 for this long is recorded lost "
                        f"(default {_D.poll.lost_grace:g})")
    limits.add_argument("--settle", metavar="SECONDS",
                        help="how long a lost POST is looked for before posting again "
                        f"(default {_D.settle:g})")
    halts = parser.add_argument_group("halting and retries")
    halts.add_argument("--budget", metavar="CU",
                       help="stop submitting before the spend would pass this many CU")
    halts.add_argument("--max-failures", metavar="N|N%",
                       help="halt once this many of the folder's jobs have failed")
    halts.add_argument("--auto-retries", metavar="N",
                       help="automatic new attempts for transient job failures "
                       f"(default {_D.auto_retries})")
    halts.add_argument("--retry-failed", action="store_true",
                       help="make a new attempt for jobs that failed or were canceled")
    halts.add_argument("--redo-changed", action="store_true",
                       help="submit jobs whose model/params changed since they were submitted")
    halts.add_argument("--redo", action="append", default=[], metavar="ID",
                       help="submit this changed job again (repeatable)")
    batch = parser.add_argument_group("the folder's batch (one manifest, one API origin)")
    batch.add_argument("--new-batch", action="store_true",
                       help="start a new folder for a manifest already run into another one "
                       "(its jobs are paid again)")
    batch.add_argument("--continue-batch", action="store_true",
                       help="run this manifest (or these credentials) into a folder holding "
                       "another manifest's batch, as its continuation")
    add_manifest_switches(parser)
    add_selection_arguments(parser)
    parser.add_argument("--events", metavar="FILE|-",
                        help="append one JSON object per job transition to FILE as it "
                        "happens ('-': stdout, and the summary goes to stderr); see README")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="errors and nothing else: no progress, notes, warnings or "
                        "summary (the exit code says how it ended)")
    confirm.add_arguments(parser)
    notify.add_arguments(parser)


def _model_limits(values: list[str], manifest: Manifest, models: Sequence[str]) -> dict[str, int]:
    limits = dict(manifest.settings.model_concurrency)
    for value in values:
        model, limit = model_limit_flag(value, models)
        limits[model] = limit
    return limits


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


# Flags checked as the manifest's settings are (runner.manifest's one table of settings).
_CHECKED_FLAGS = ("concurrency", "submit_rate", "download_concurrency", "job_timeout",
                  "poll_mode", "max_failures", "budget", "auto_retries", "settle",
                  "poll_interval", "poll_max", "lost_grace", "listings_per_second")


@dataclass(frozen=True, slots=True)
class Endings:
    """What `run` does around the batch (CLI only): the question before it, the
    notifiers after it. Flags over the manifest's settings."""

    confirm_above: float | None
    notify_command: str | None
    notify_url: str | None


def build_endings(args: argparse.Namespace, manifest: Manifest) -> Endings:
    """`--confirm-above`, `--notify-command`, `--notify-url` over their settings."""
    s = manifest.settings
    above = flag_value("--confirm-above", args.confirm_above)
    return Endings(
        confirm.threshold(above, s.confirm_above, simulated=args.simulate),
        _first(flag_value("--notify-command", args.notify_command), s.notify_command),
        _first(flag_value("--notify-url", args.notify_url), s.notify_url),
    )


def build_options(
    args: argparse.Namespace, manifest: Manifest, models: Sequence[str],
    endpoint: Endpoint | None = None,
) -> RunOptions:
    """CLI flags over the manifest's `settings:`, over the defaults (`RunOptions`); the
    folder's batch is checked against `endpoint` (None: the simulator).

    Raises UsageError for a flag its setting would refuse (`--budget nan`, an unknown
    model in `--model-concurrency`).
    """
    f = {name: flag_value(f"--{name.replace('_', '-')}", getattr(args, name))
         for name in _CHECKED_FLAGS}
    s = manifest.settings
    out_dir = (Path(args.output) if args.output else
               Path("output") / args.manifest.stem).resolve()
    defaults = default_options(out_dir, simulated=args.simulate)
    poll = defaults.poll
    mode = _first(f["poll_mode"], s.poll_mode)
    return defaults.with_overrides(
        concurrency=_first(f["concurrency"], s.concurrency),
        model_concurrency=_model_limits(args.model_concurrency, manifest, models),
        submits_per_second=_first(f["submit_rate"], s.submits_per_second),
        download_concurrency=_first(f["download_concurrency"], s.download_concurrency),
        poll=PollPolicy(_first(f["poll_interval"], poll.initial), poll.factor,
                        _first(f["poll_max"], poll.maximum),
                        _first(f["job_timeout"], s.job_timeout, poll.deadline),
                        _first(f["lost_grace"], poll.lost_grace)),
        poll_mode=PollMode(mode) if mode else None,
        listings_per_second=f["listings_per_second"],
        settle=_first(f["settle"], s.settle),
        budget=_first(f["budget"], s.budget),
        max_failures=FailureLimit.parse(_first(f["max_failures"], s.max_failures)),
        auto_retries=_first(f["auto_retries"], s.auto_retries),
        retry_failed=args.retry_failed,
        redo_changed=args.redo_changed,
        redo_ids=frozenset(args.redo),
        origin=SIMULATOR if endpoint is None else api_origin(endpoint.base_url),
        account=None if endpoint is None else account_of(endpoint.credentials),
        batch_index=default_index_path(os.environ),
        new_batch=args.new_batch,
        continue_batch=args.continue_batch,
        selection=selection_of(args),
    )


def resolve_endpoint(args: argparse.Namespace) -> Endpoint | None:
    """Base URL and credentials for a real run; None with --simulate. Never falls back."""
    if args.simulate:
        return None
    return Endpoint(*api_endpoint(args.base_url), team_id=os.environ.get("SCENARIO_TEAM_ID"))


def load_run(
    args: argparse.Namespace,
) -> tuple[SchemaRegistry, Manifest, Endpoint | None, Endings]:
    """What every run starts from, a folder's or a shared batch's: the checked manifest
    (its warnings said unless -q), the endpoint (None: --simulate) and the endings."""
    registry, manifest = load_from_args(args)
    for warning in () if args.quiet else manifest.warnings:
        output.err(str(warning))
    return registry, manifest, resolve_endpoint(args), build_endings(args, manifest)


def execute(args: argparse.Namespace) -> int:
    ledger = args.ledger or os.environ.get("KLING_BATCH_LEDGER")
    if args.output and "://" in args.output and not ledger:
        raise UsageError(f"-o {args.output} is an object store: its batch needs a shared "
                         "ledger", hint=LEDGER_HINT)
    if ledger:
        from runner.cli.shared import execute_shared  # psycopg only for a shared batch

        return execute_shared(args, ledger)
    registry, manifest, endpoint, endings = load_run(args)
    options = build_options(args, manifest, registry.models, endpoint)
    with prepare_run(manifest, options, registry.models) as prepared:
        for note in () if args.quiet else prepared.warnings:
            output.err(note)
        if prepared.stale_lock_pid is not None and not args.quiet:
            output.err(f"took over a stale lock left by pid {prepared.stale_lock_pid} "
                       "(it is gone)")
        with writing(prepared.options.out_dir):  # provenance.json: one line if refused
            record_batch(prepared)
        return anyio.run(_run, args, prepared, registry, endpoint, endings)


# How a shared batch joins a run: given the exit stack and the run's live state, the
# coordination; and its views, written when the run ends (and every 30 s).
JoinShared = Callable[[AsyncExitStack, Live],
                     Awaitable[tuple[Coordination, Destination | None]]]


async def _run(
    args: argparse.Namespace, prepared: PreparedRun, registry: SchemaRegistry,
    endpoint: Endpoint | None, endings: Endings, *, join: JoinShared | None = None,
    write_views: Callable[[Path], object] | None = None,
) -> int:
    clock = REAL_CLOCK
    started = clock.wall()
    live = live_state(prepared, clock)
    out_dir = prepared.options.out_dir
    async with AsyncExitStack() as stack:
        if args.events is not None:
            events = EventStream(args.events)
            stack.callback(events.close)
            live = dataclasses.replace(live, observers=(events.observe,))
        if endpoint is None:
            endpoint = Endpoint(*await simulated_endpoint(
                stack, seed=args.sim_seed, profile=args.sim_profile,
                state_file=prepared.options.out_dir / SIMULATOR_STATE,
                job_seconds=tuple(args.sim_job_seconds) if args.sim_job_seconds else None),
                team_id=os.environ.get("SCENARIO_TEAM_ID"))
        if not await confirm.confirmed(prepared, registry, endpoint, endings.confirm_above,
                                       yes=args.yes):
            output.err("not confirmed: nothing was submitted (--yes skips the question)")
            return EXIT_USAGE
        shared, destination = (None, None) if join is None else await join(stack, live)
        outcome: list[RunResult] = []
        with anyio.CancelScope() as hard_stop:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, live.control, hard_stop)
                if not args.quiet:
                    tg.start_soon(render_progress, live.progress)
                if write_views is None:
                    tg.start_soon(keep_views_fresh, out_dir)  # report every 30 s
                outcome.append(await run_batch(prepared, live, registry=registry,
                                               endpoint=endpoint, clock=clock, shared=shared,
                                               destination=destination))
                tg.cancel_scope.cancel()
        if outcome:
            records = outcome[0].records
        elif shared is not None:
            with anyio.CancelScope(shield=True):
                records = replay(await shared.final_events())
        else:
            records = load_records(out_dir)
        if write_views is None:
            write_final_views(out_dir)
        else:
            write_views(out_dir)
        facts = _summarize(live, prepared, records, quiet=args.quiet,
                           to_stderr=args.events == "-",
                           videos=None if destination is None
                           else f"{destination.describe()}/videos")
        code = outcome[0].exit_code if outcome else EXIT_INTERRUPTED
    if endings.notify_command or endings.notify_url:
        summary = notify_summary(args, prepared, live, facts, code=code,
                                 times=(started, clock.wall()))
        await notify.notify(endings.notify_command, endings.notify_url, summary)
    return code


async def _watch_signals(control: Control, hard_stop: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if not control.draining:
                control.drain()
                output.err(f"{signal.Signals(signum).name}: draining — no new submissions; "
                           "jobs in flight are followed to the end (again to stop now)")
                continue
            control.stop_now()
            output.err("stopping now; every jobId is in the ledger — run again to resume")
            hard_stop.cancel()
            return


_OUTCOMES = {EXIT_OK: "done", EXIT_JOBS_FAILED: "some jobs failed", EXIT_HALTED: "halted",
             EXIT_INTERRUPTED: "interrupted"}


def notify_summary(
    args: argparse.Namespace, prepared: PreparedRun, live: Live, facts: Mapping[str, Any],
    *, code: int, times: tuple[datetime, datetime],
) -> dict[str, Any]:
    """The JSON the notifiers get (README, "Notifications")."""
    control = live.control
    halt = control.halt.value if control.halt is not None else None
    return {
        "event": "batch-ended", "name": prepared.options.out_dir.name,
        "exitCode": code, "outcome": _OUTCOMES.get(code, "ended"), "halt": halt,
        "counts": facts["counts"], "jobs": sum(facts["counts"].values()),
        "files": facts["files"], "missingFiles": facts["missing"],
        "cuSpent": facts["cost"], "cuSpentThisRun": live.progress.cost,
        "budget": prepared.options.budget,
        "folder": str(prepared.options.out_dir), "manifest": str(args.manifest.resolve()),
        "started": _iso(times[0]), "ended": _iso(times[1]),
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _summarize(
    live: Live, prepared: PreparedRun, records: Mapping[str, JobRecord], *,
    quiet: bool = False, to_stderr: bool = False, videos: str | None = None,
) -> dict[str, Any]:
    """The closing lines: notes not yet shown, how the run ended, where the files are;
    the facts the notifiers send. Quiet: only a halt, which is an error. `to_stderr`:
    stdout carries the event stream. `videos`: where the files are, when not in the folder."""
    _closing_notes(live, quiet=quiet)
    say = output.err if to_stderr else output.out
    selected = prepared.selected
    plan = [PlannedJob(s.id, s.model, s.params) for s in selected]
    views = job_views(prepared.options.out_dir, plan, records)
    counts = state_counts(v for v in views if v.planned)
    taken = {s.id for s in selected}
    files = sum(len(r.assets) for job, r in records.items()
                if not prepared.left_out or job in taken)
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    cost = sum(r.total_cost for r in records.values())
    missing = _missing_files(views, records)
    facts = {"counts": dict(counts), "files": files, "missing": missing, "cost": cost}
    if quiet:
        return facts
    gap = f": {missing} download(s) failed — run again to fetch them" if missing else ""
    where = videos or prepared.options.out_dir / "videos"  # an object store names its own
    say(f"{summary} — {files} file(s) in {where}{gap} — "
        f"{cost:g} CU spent in all")
    if prepared.left_out:
        total = len(selected) + prepared.left_out
        pending = sum(1 for s in prepared.manifest.jobs if s.id not in taken
                      and (s.id not in records or records[s.id].state is JobState.PENDING))
        say(f"{len(selected):,} of {total:,} jobs selected "
            f"({prepared.options.selection.describe()}); {prepared.left_out:,} left "
            f"out, {pending:,} of them pending — run again without "
            f"{'--limit' if prepared.options.selection.limit else 'the selection'} "
            "to continue")
    return facts


def _closing_notes(live: Live, *, quiet: bool) -> None:
    """Notes not yet shown, the last progress line, the cap, how the run ended (quiet:
    only a halt, which is an error)."""
    progress, control = live.progress, live.control
    if quiet:
        if control.halt is not None and control.halt is not HaltReason.INTERRUPTED:
            output.err(f"halted: {control.halt.value}; fix it and run the same command to "
                       "resume")
        return
    for message in progress.unshown_notes():
        output.err(message)
    snapshot = progress.snapshot()
    output.err(progress_line(snapshot))
    gauge = snapshot.admission
    if gauge is not None and gauge.refusals:
        output.err(f"the account's cap held the batch to about {gauge.limit} job(s) in "
                   f"flight (asked {gauge.asked}): {gauge.refusals} POST(s) refused for "
                   "capacity and posted again later, none failed")
    if control.halt is not None and control.halt is not HaltReason.INTERRUPTED:
        output.err(f"halted: {control.halt.value}; fix it and run the same command to resume")
    elif control.draining:
        output.err("interrupted; run the same command to resume")


def _missing_files(views: Sequence[JobView], records: Mapping[str, JobRecord]) -> int:
    """Succeeded jobs of the manifest whose files are not all on disk."""
    return sum(1 for v in views if v.planned and v.state is JobState.SUCCEEDED
               and (r := records.get(v.id)) is not None and not r.all_downloaded)
