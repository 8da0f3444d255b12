"""`kling-batch status DIR [--json]`: every job's state, from the run's ledger."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.cli import output
from runner.errors import UsageError
from runner.ledger.journal import LEDGER_NAME, JsonlLedger, replay
from runner.outdir.files import PLAN_NAME, read_plan
from runner.outdir.lock import read_lock
from runner.views.status import StatusRow, state_counts, status_rows

NAME = "status"
HELP = "show the state of every job of a run, from its ledger"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="the run's output folder")
    parser.add_argument("--json", action="store_true", help="a JSON array, one object per job")


def load_rows(directory: Path) -> list[StatusRow]:
    """The status rows of an output folder; UsageError when it holds no run."""
    if not (directory / LEDGER_NAME).exists() and not (directory / PLAN_NAME).exists():
        raise UsageError(
            f"{directory} holds no kling-batch run (no {LEDGER_NAME} or {PLAN_NAME})",
            hint="pass the folder `run` wrote to (default output/<manifest name>/)",
        )
    records = replay(JsonlLedger(directory).read_events())
    return status_rows(directory, read_plan(directory), records)


def execute(args: argparse.Namespace) -> int:
    rows = load_rows(args.directory)
    if args.json:
        output.out_json([row.as_json() for row in rows])
        return 0
    width = max((len(r.id) for r in rows), default=2)
    output.out(f"{'job':<{width}}  {'state':<9}  {'jobId':<28}  next run")
    for row in rows:
        output.out(f"{row.id:<{width}}  {row.state.value:<9}  {row.job_id or '-':<28}  "
                   f"{row.next_run}" + (f"  [{row.error}]" if row.error else ""))
    counts = state_counts(rows)
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no jobs"
    output.out(f"{summary}; {sum(r.cost for r in rows):g} CU spent")
    lock = read_lock(args.directory)
    if lock is not None and not lock.stale:
        output.out(f"a run is in progress (pid {lock.pid} on {lock.host})")
    return 0
