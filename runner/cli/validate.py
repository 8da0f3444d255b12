"""`kling-batch validate MANIFEST [--json] [--allow-unknown-params]`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.cli import output
from runner.domain import Problem
from runner.errors import EXIT_OK, EXIT_USAGE, ManifestError
from runner.manifest import Manifest, load_manifest
from runner.schemas import SchemaRegistry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags."""
    parser.add_argument("manifest", type=Path, metavar="MANIFEST", help="the YAML manifest")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_manifest_switches(parser)


def add_manifest_switches(parser: argparse.ArgumentParser) -> None:
    """`--allow-unknown-params` and `--allow-outside-files`, shared with the commands that
    load manifests."""
    parser.add_argument(
        "--allow-unknown-params",
        action="store_true",
        help="send parameters the schemas do not know (a warning each) instead of refusing",
    )
    parser.add_argument(
        "--allow-outside-files",
        action="store_true",
        help="let local input files (and symlinks) resolve outside the manifest's folder",
    )


def load_from_args(args: argparse.Namespace) -> tuple[SchemaRegistry, Manifest]:
    """The schemas and `args.manifest`, as every command that takes a manifest loads them.

    Raises ManifestError with every problem.
    """
    registry = SchemaRegistry.load()
    manifest = load_manifest(
        args.manifest, registry, allow_unknown_params=args.allow_unknown_params,
        allow_outside_files=args.allow_outside_files,
    )
    return registry, manifest


def execute(args: argparse.Namespace) -> int:
    """Exit 0 when the manifest is valid (warnings allowed), 2 otherwise."""
    try:
        _, manifest = load_from_args(args)
    except ManifestError as exc:
        _report(args, None, exc.problems)
        return EXIT_USAGE
    _report(args, len(manifest.jobs), manifest.warnings)
    return EXIT_OK


def _report(args: argparse.Namespace, jobs: int | None, problems: Sequence[Problem]) -> None:
    if args.json:
        output.out_json(
            {"ok": jobs is not None, "jobs": jobs, "problems": [problem_json(p) for p in problems]}
        )
        return
    for problem in problems:
        output.out(str(problem))
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if jobs is None:
        output.out(f"{args.manifest}: {errors} error(s), {warnings} warning(s)")
    else:
        output.out(f"{args.manifest}: ok, {jobs} job(s), {warnings} warning(s)")


def problem_json(problem: Problem) -> dict[str, Any]:
    """A problem as the JSON object of `validate --json`."""
    where = problem.location
    return {
        "file": where.file if where else None,
        "line": where.line if where else None,
        "column": where.column if where else None,
        "job": problem.job,
        "model": problem.model,
        "path": problem.path,
        "message": problem.message,
        "hint": problem.hint,
        "severity": problem.severity,
    }
