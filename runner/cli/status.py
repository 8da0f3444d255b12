"""`kling-batch status DIR [--json]`: every job's state and cost, from the run's ledger.

Exit codes, for scripts: 0 every job succeeded with its files; 1 nothing remains but some
failed or were canceled; 4 work remains (jobs pending, submitted or running, or files to
fetch); 2 not a run's folder.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from runner.cli import output
from runner.errors import UsageError
from runner.ledger import LEDGER_NAME, load_records
from runner.outdir import PLAN_NAME, SIMULATOR, read_batch, read_lock, read_plan
from runner.views import JobView, job_views, status_exit_code, status_json, status_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="the run's output folder (or, with "
                        "--ledger, the batch's -o: a folder or s3://BUCKET/PREFIX)")
    parser.add_argument("--json", action="store_true", help="a JSON array, one object per job")
    parser.epilog = ("exit codes: 0 every job succeeded with its files; 1 nothing remains, "
                     "some failed or were canceled; 4 work remains (jobs pending, submitted "
                     "or running, or files to fetch); 2 not a run's folder")
    add_ledger_argument(parser)


LEDGER_HINT = "add --ledger postgresql://USER@HOST:PORT/DB or set KLING_BATCH_LEDGER"


def add_ledger_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger", metavar="URL", help="the shared ledger the batch ran "
                        "with: postgresql://USER@HOST:PORT/DB (default $KLING_BATCH_LEDGER "
                        "for an s3:// target or a folder without a ledger.jsonl)")


def target_of(args: argparse.Namespace) -> str:
    """The command's TARGET as typed (a Path would fold the `//` of an s3:// URL)."""
    return str(getattr(args, "target", args.directory))


def shared_ledger(args: argparse.Namespace) -> str | None:
    """The shared ledger a command on `args.directory` reads, or None for the folder's own.

    The variable applies only where the folder has no ledger of its own, so a folder's
    batch is never read from a database by accident."""
    target = str(args.directory)
    args.target = target
    args.directory = Path(target)  # the folder's commands read it as a path
    if args.ledger:
        return str(args.ledger)
    env = os.environ.get("KLING_BATCH_LEDGER")
    if env and ("://" in target or not (Path(target) / LEDGER_NAME).exists()):
        return env
    if "://" in target:
        raise UsageError(f"{target} is an object store: its batch is in a shared ledger",
                         hint=LEDGER_HINT)
    return None


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
    ledger = shared_ledger(args)
    if ledger is not None:
        from runner.cli.shared import ledger_url, shared_views

        views = shared_views(target_of(args), ledger_url(ledger))
        if args.json:
            output.out_json([status_json(view) for view in views])
        else:
            for line in status_lines(views):
                output.out(line)
        return status_exit_code(views)
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
