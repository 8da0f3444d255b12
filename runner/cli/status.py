"""`kling-batch status DIR [--json]`: every job's state and cost, from the run's ledger.

Exit codes, for scripts: 0 every job succeeded with its files; 1 nothing remains but some
failed or were canceled; 4 work remains (jobs pending, submitted or running, or files to
fetch); 2 not a run's folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.cli import output
from runner.errors import UsageError
from runner.ledger import LEDGER_NAME, load_records
from runner.outdir import PLAN_NAME, SIMULATOR, read_batch, read_lock, read_plan
from runner.views import JobView, job_views, status_exit_code, status_json, status_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="the run's output folder")
    parser.add_argument("--json", action="store_true", help="a JSON array, one object per job")
    parser.epilog = ("exit codes: 0 every job succeeded with its files; 1 nothing remains, "
                     "some failed or were canceled; 4 work remains (jobs pending, submitted "
                     "or running, or files to fetch); 2 not a run's folder")


def check_run_folder(directory: Path) -> None:
    """UsageError when `directory` holds no kling-batch run."""
    if not (directory / LEDGER_NAME).exists() and not (directory / PLAN_NAME).exists():
        raise UsageError(
            f"{directory} holds no kling-batch run (no {LEDGER_NAME} or {PLAN_NAME})",
            hint="pass the folder `run` wrote to (default output/<manifest name>/)",
        )


def load_views(directory: Path) -> list[JobView]:
    """The job views of an output folder; UsageError when it holds no run."""
    check_run_folder(directory)
    return job_views(directory, read_plan(directory), load_records(directory))


def execute(args: argparse.Namespace) -> int:
    views = load_views(args.directory)
    if args.json:
        output.out_json([status_json(view) for view in views])
        return status_exit_code(views)
    for line in status_lines(views):
        output.out(line)
    lock = read_lock(args.directory)
    if lock is not None and not lock.stale:
        output.out(f"a run is in progress (pid {lock.pid} on {lock.host})")
    try:
        batch = read_batch(args.directory)
    except UsageError:
        batch = None  # the next run says what is wrong with it; status still shows the jobs
    if batch is not None and batch.origin == SIMULATOR:
        output.out("this batch ran against the built-in simulator (--simulate): its videos "
                   "are test clips, not generations")
    return status_exit_code(views)
