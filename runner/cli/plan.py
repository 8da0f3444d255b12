"""`kling-batch plan MANIFEST [--json] [--estimate]`: the expanded jobs, counts per model,
seconds of video, and with `--estimate` the cost the API's dry run gives (HTTP 269).

`--estimate` sends no generate request: one dry run per distinct price shape, and the local
files uploaded (free, cached in the output folder, so `run` reuses them).
"""

from __future__ import annotations

import argparse
import dataclasses
from contextlib import AsyncExitStack
from pathlib import Path

import anyio

from runner.api import AssetUploader, Credentials, ScenarioClient
from runner.batch import Estimate, api_sessions, estimate_jobs, select_jobs
from runner.cli import output
from runner.cli.endpoint import api_endpoint, simulated_endpoint
from runner.cli.selection import add_selection_arguments, selection_of
from runner.cli.validate import add_manifest_switches, load_from_args, problem_json
from runner.errors import EXIT_OK, EXIT_USAGE, ManifestError
from runner.manifest import Manifest
from runner.outdir import writing
from runner.schemas import SchemaRegistry
from runner.views import PlanSummary, job_seconds, summarize_plan

_PROMPT_WIDTH = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags."""
    parser.add_argument("manifest", type=Path, metavar="MANIFEST", help="the YAML manifest")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_manifest_switches(parser)
    parser.add_argument("--estimate", action="store_true",
                        help="ask the API's dry run for the cost in creative units")
    parser.add_argument("--simulate", action="store_true",
                        help="with --estimate: ask the built-in simulator")
    parser.add_argument("--base-url", help="API base URL (default: $SCENARIO_BASE_URL)")
    parser.add_argument("-o", "--output", type=Path,
                        help="output folder whose upload cache to use "
                        "(default: output/<manifest name>/)")
    add_selection_arguments(parser)  # what `run` with the same flags would take


def execute(args: argparse.Namespace) -> int:
    """Print the plan; a manifest with problems raises ManifestError (exit 2)."""
    try:
        registry, manifest = load_from_args(args)
    except ManifestError as exc:
        if not args.json:
            raise
        # --json promises one JSON document on stdout, problems included.
        output.out_json({"ok": False, "jobs": None,
                         "problems": [problem_json(p) for p in exc.problems]})
        return EXIT_USAGE
    selection = selection_of(args)
    total = len(manifest.jobs)
    if not selection.everything:
        manifest = dataclasses.replace(
            manifest, jobs=tuple(select_jobs(manifest.jobs, selection, registry.models)))
    summary = summarize_plan(manifest, registry)
    for warning in manifest.warnings:
        output.err(str(warning))
    estimate = _estimate(args, manifest, registry) if args.estimate else None
    if args.json:
        data = _as_json(manifest, summary, registry)
        if not selection.everything:
            data["selected"] = {"jobs": len(manifest.jobs), "of": total,
                                "flags": selection.describe()}
        if estimate is not None:
            data["estimate"] = {"totalCU": estimate.total, "perModelCU": dict(estimate.per_model),
                                "perJobCU": dict(estimate.per_job),
                                "dryRuns": estimate.dry_runs}
        output.out_json(data)
    else:
        _print_text(manifest, summary, registry)
        if not selection.everything:
            output.out(f"selected: {len(manifest.jobs):,} of {total:,} jobs "
                       f"({selection.describe()}); `run` with the same flags runs these")
        if estimate is not None:
            _print_estimate(estimate)
    return EXIT_OK


def _estimate(args: argparse.Namespace, manifest: Manifest, registry: SchemaRegistry) -> Estimate:
    endpoint = None if args.simulate else api_endpoint(args.base_url)
    out_dir = (args.output or Path("output") / args.manifest.stem).resolve()
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    return anyio.run(_estimate_async, manifest, registry, endpoint, out_dir)


async def _estimate_async(
    manifest: Manifest, registry: SchemaRegistry,
    endpoint: tuple[str, Credentials] | None, out_dir: Path,
) -> Estimate:
    async with AsyncExitStack() as stack:
        if endpoint is None:
            endpoint = await simulated_endpoint(stack)
        api, cdn = await stack.enter_async_context(api_sessions())
        client = ScenarioClient(api, endpoint[0], endpoint[1])
        uploader = AssetUploader(client, cdn, out_dir / ".cache" / "assets.json")
        return await estimate_jobs(manifest.jobs, registry, client, uploader)


def _print_estimate(estimate: Estimate) -> None:
    output.out()
    for model, cost in estimate.per_model.items():
        output.out(f"{model}  {cost:g} CU")
    output.out(f"estimated cost: {estimate.total:g} CU "
               f"({estimate.dry_runs} dry run(s); nothing was generated)")


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


def _as_json(
    manifest: Manifest, summary: PlanSummary, registry: SchemaRegistry
) -> dict[str, object]:
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
