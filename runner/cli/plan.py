"""`kling-batch plan MANIFEST [--json]`: the expanded jobs, counts per model, seconds of video."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.cli import output
from runner.cli.validate import add_allow_unknown
from runner.errors import EXIT_OK
from runner.manifest import Manifest, load_manifest
from runner.planning import PlanSummary, job_seconds, summarize_plan
from runner.schemas import SchemaRegistry

NAME = "plan"
HELP = "show the expanded job list, counts per model and total seconds of video"
_PROMPT_WIDTH = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags."""
    parser.add_argument("manifest", type=Path, metavar="MANIFEST", help="the YAML manifest")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_allow_unknown(parser)


def execute(args: argparse.Namespace) -> int:
    """Print the plan; a manifest with problems raises ManifestError (exit 2)."""
    registry = SchemaRegistry.load()
    manifest = load_manifest(
        args.manifest, registry, allow_unknown_params=args.allow_unknown_params
    )
    summary = summarize_plan(manifest, registry)
    for warning in manifest.warnings:
        output.err(str(warning))
    if args.json:
        output.out_json(_as_json(manifest, summary, registry))
    else:
        _print_text(manifest, summary, registry)
    return EXIT_OK


def _short_prompt(prompt: object) -> str:
    text = " ".join(str(prompt or "").split())
    return text if len(text) <= _PROMPT_WIDTH else text[: _PROMPT_WIDTH - 1] + "…"


def _seconds(value: int | None) -> str:
    return "video" if value is None else f"{value}s"


def _print_text(manifest: Manifest, summary: PlanSummary, registry: SchemaRegistry) -> None:
    id_width = max((len(spec.id) for spec in manifest.jobs), default=2)
    model_width = max((len(spec.model) for spec in manifest.jobs), default=5)
    for spec in manifest.jobs:
        length = _seconds(job_seconds(spec, registry))
        prompt = _short_prompt(spec.params.get("prompt"))
        output.out(f"{spec.id:<{id_width}}  {spec.model:<{model_width}}  {length:>5}  {prompt}")
    output.out()
    for model, count in summary.per_model.items():
        seconds = summary.seconds_per_model.get(model)
        length = "video-length" if seconds is None else f"{seconds} s"
        output.out(f"{model:<{model_width}}  {count:>6} job(s)  {length:>12}")
    total = f"total: {summary.jobs} job(s), {summary.total_seconds} s of video"
    if summary.unknown_length:
        total += f" + {summary.unknown_length} job(s) as long as their driving video"
    output.out(total)


def _as_json(manifest: Manifest, summary: PlanSummary, registry: SchemaRegistry) -> object:
    return {
        "jobs": [
            {
                "id": spec.id,
                "model": spec.model,
                "seconds": job_seconds(spec, registry),
                "prompt": spec.params.get("prompt"),
            }
            for spec in manifest.jobs
        ],
        "perModel": dict(summary.per_model),
        "secondsPerModel": dict(summary.seconds_per_model),
        "totalSeconds": summary.total_seconds,
        "unknownLength": summary.unknown_length,
    }
