"""`kling-batch report DIR`: write DIR/report.html, a page to look at the batch."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.cli import output
from runner.errors import UsageError
from runner.ledger.journal import LEDGER_NAME, JsonlLedger, replay, utc_now_iso
from runner.outdir.files import PLAN_NAME, read_plan, write_atomically
from runner.views.report import render_report

NAME = "report"
HELP = "write DIR/report.html, a self-contained page showing every job and its videos"
REPORT_NAME = "report.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="the run's output folder")


def _check_run_folder(directory: Path) -> None:
    if not (directory / LEDGER_NAME).is_file() and not (directory / PLAN_NAME).is_file():
        raise UsageError(
            f"{directory} holds no kling-batch run (no {LEDGER_NAME} or {PLAN_NAME})",
            hint="pass the folder `run` wrote to (default output/<manifest name>/)",
        )


def write_report(directory: Path) -> Path:
    """Render the folder's plan and ledger into DIR/report.html (atomically); its path."""
    _check_run_folder(directory)
    records = replay(JsonlLedger(directory).read_events())
    page = render_report(
        read_plan(directory),
        records,
        title=f"kling-batch report — {directory.resolve().name}",
        generated_at=utc_now_iso(),
    )
    path = directory / REPORT_NAME
    write_atomically(path, [page.encode("utf-8")])
    return path


def execute(args: argparse.Namespace) -> int:
    path = write_report(args.directory)
    output.out(str(path))
    return 0
