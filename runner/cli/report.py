"""`kling-batch report DIR`: write DIR/report.html — and the other views of the batch,
results.csv and the dataset card README.md — from the folder's ledger and plan (or, with
`--ledger`, from the shared ledger)."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.cli import output
from runner.cli.refresh import write_views
from runner.cli.status import add_ledger_argument, shared_ledger, target_of
from runner.outdir import writing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="the run's output folder (or, with --ledger, the "
                        "batch's -o)")
    add_ledger_argument(parser)


def execute(args: argparse.Namespace) -> int:
    ledger = shared_ledger(args)
    if ledger is not None:
        from runner.cli.shared import ledger_url, write_shared_views, write_store_report

        target = target_of(args)
        if "://" in target:
            for key in write_store_report(target, ledger_url(ledger)):
                output.out(key)
            return 0
        with writing(Path(target)):
            written = write_shared_views(Path(target), ledger_url(ledger), target)
    else:
        with writing(args.directory):  # a read-only folder: one line, exit 2
            written = write_views(args.directory)
    for path in written:
        output.out(str(path))
    return 0
