"""`kling-batch report DIR`: write DIR/report.html — and the other views of the batch,
results.csv and the dataset card README.md — from the folder's ledger and plan."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.cli import output
from runner.cli.refresh import write_views
from runner.outdir import writing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="the run's output folder")


def execute(args: argparse.Namespace) -> int:
    with writing(args.directory):  # a read-only folder: one line, exit 2
        written = write_views(args.directory)
    for path in written:
        output.out(str(path))
    return 0
