"""`kling-batch report DIR`: write DIR/report.html, a page to look at the batch."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.cli import output
from runner.cli.status import load_views
from runner.clock import REAL_CLOCK
from runner.outdir import write_atomically, writing
from runner.views import render_report

NAME = "report"
HELP = "write DIR/report.html, a self-contained page showing every job and its videos"
REPORT_NAME = "report.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="the run's output folder")


def write_report(directory: Path) -> Path:
    """Render the folder's job views into DIR/report.html (atomically); its path.
    UsageError when the folder holds no run, FolderError when it cannot be written."""
    page = render_report(
        load_views(directory),
        title=f"kling-batch report — {directory.resolve().name}",
        generated_at=REAL_CLOCK.now_iso(),
    )
    path = directory / REPORT_NAME
    with writing(directory):  # a read-only folder: one line, exit 2
        write_atomically(path, [page.encode("utf-8")])
    return path


def execute(args: argparse.Namespace) -> int:
    path = write_report(args.directory)
    output.out(str(path))
    return 0
