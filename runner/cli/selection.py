"""`--only`, `--model`, `--limit`: the flags that select jobs, shared by `run` and `plan`
(and the same function decides for both: `runner.batch.select_jobs`)."""

from __future__ import annotations

import argparse

from runner.batch import Selection


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """`--only`, `--model`, `--limit` (`run` and `plan` share them, and their meaning)."""
    pick = parser.add_argument_group(
        "selection (the jobs left out stay as they are; a later run without these flags "
        "continues the batch)")
    pick.add_argument("--only", action="append", default=[], metavar="PATTERN",
                      help="only the jobs with this id or matching this glob ('shot-*'), "
                      "repeatable; a pattern matching no job is an error")
    pick.add_argument("--model", action="append", default=[], metavar="MODEL",
                      dest="models", help="only the jobs of this model, repeatable")
    pick.add_argument("--limit", type=int, metavar="N",
                      help="a pilot of N jobs (of those --only/--model leave): spread "
                      "round-robin over the models, then their templates, in manifest "
                      "order — the same N every time; the exit code is the pilot's")


def selection_of(args: argparse.Namespace) -> Selection:
    """The selection the flags ask for."""
    return Selection(only=tuple(args.only), models=tuple(args.models), limit=args.limit)
