"""`DIR/README.md`: the batch's dataset card, with its provenance, for the Hugging Face Hub.

The front matter is YAML the Hub (and `datasets.load_dataset(DIR)`) reads: the `default`
config names the videos and `metadata.jsonl`, so the folder loads as a VideoFolder even
beside its posters, CSV and ledger. The body says what is inside, how to load it, and where
it came from — manifest and plan hashes, kling-batch version, schema hashes, models,
counts, dates — so that the dataset can be rebuilt and cited. Text from the user (paths,
names) is escaped for Markdown or set as code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from runner.outdir import BatchRecord
from runner.views.summary import ReportSummary, format_cost, human_bytes
from runner.views.timeline import Timeline

# The card's first YAML line: a README.md without it is not ours, and is never overwritten.
CARD_MARK = "# written by kling-batch: rewritten at each run and by `kling-batch report`"
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>&])")


@dataclass(frozen=True, slots=True)
class CardContext:
    """What the card says besides the summary: the folder's name, its provenance record
    (None for a folder an older version made), the timeline's dates, and when it is written."""

    name: str
    record: BatchRecord | None
    timeline: Timeline
    written: str
    version: str


def md_text(text: str) -> str:
    """`text` as literal Markdown text: specials backslash-escaped, on one line."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", " ".join(text.split()))


def md_code(text: str) -> str:
    """`text` as inline code, fenced by more backticks than it holds, on one line."""
    flat = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def size_category(count: int) -> str:
    """The Hub's `size_categories` tag for `count` samples."""
    for limit, tag in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                       (1_000_000, "100K<n<1M")):  # fmt: skip
        if count < limit:
            return tag
    return "1M<n<10M"


def _date(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _front_matter(s: ReportSummary, ctx: CardContext) -> str:
    return "\n".join([
        "---",
        CARD_MARK,
        f"pretty_name: {json.dumps(ctx.name)}",
        "tags: [video, synthetic, kling, kling-batch]",
        "task_categories: [text-to-video, image-to-video]",
        f"size_categories: [{json.dumps(size_category(s.files))}]",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        '    path: ["videos/*.mp4", "metadata.jsonl"]',
        "---",
    ])  # fmt: skip


def _contents(s: ReportSummary) -> list[str]:
    rows = ["| model | jobs | succeeded | failed | CU |", "|---|---:|---:|---:|---:|"]
    for model, counts in s.per_model.items():
        rows.append(f"| {md_code(model)} | {sum(counts.values())} | "
                    f"{counts.get('succeeded', 0)} | {counts.get('failed', 0)} | "
                    f"{format_cost(s.cost_per_model.get(model, 0.0))} |")  # fmt: skip
    states = ", ".join(f"{n} {state}" for state, n in s.per_state.items() if n) or "no jobs"
    return ["## Contents", "",
            f"{s.jobs} jobs ({states}); {s.files} video files, {human_bytes(s.total_bytes)}, "
            f"{s.seconds} s of video; {format_cost(s.total_cost)} creative units spent.", "",
            *rows]  # fmt: skip


def _provenance(ctx: CardContext) -> list[str]:
    rec = ctx.record
    rows = ["| | |", "|---|---|"]
    if rec is not None:
        rows += [f"| manifest | {md_code(rec.manifest)} |",
                 f"| manifest sha256 | {md_code(rec.manifest_sha256)} |",
                 f"| expanded plan (`plan.jsonl`) sha256 | {md_code(rec.plan_sha256)} |",
                 f"| kling-batch at the last run | {md_code(rec.version)} |",
                 f"| last run started | {md_code(rec.started)} |"]  # fmt: skip
        rows += [f"| schema {md_code(model)} sha256 | {md_code(digest)} |"
                 for model, digest in sorted(rec.schemas.items())]  # fmt: skip
    else:
        rows.append("| manifest | not recorded (the folder predates `provenance.json`) |")
    rows += [f"| first ledger event | {_date(ctx.timeline.start)} |",
             f"| last ledger event | {_date(ctx.timeline.end)} |",
             f"| card written | {md_code(ctx.written)} by kling-batch {md_code(ctx.version)} |"]
    return ["## Provenance", "", *rows]


def _rebuild(ctx: CardContext) -> list[str]:
    manifest = ctx.record.manifest if ctx.record else "MANIFEST"
    digest = ctx.record.manifest_sha256 if ctx.record else "…"
    year = _date(ctx.timeline.end)[:4] if ctx.timeline.end else ctx.written[:4]
    key = re.sub(r"[^A-Za-z0-9]+", "-", ctx.name).strip("-") or "kling-batch"
    title = re.sub(r"[{}\\]", "", " ".join(ctx.name.split()))
    return [
        "## Rebuild and cite", "",
        "The same requests are sent again by running the manifest whose sha256 is above, with "
        "schema files of the same hashes (`sha256sum schemas/*.schema.json`); generation is "
        "not deterministic, so a rebuild makes new videos of the same requests:", "",
        "```bash", f"kling-batch run {json.dumps(manifest)} -o NEW_FOLDER", "```", "",
        "```bibtex", f"@misc{{{key},",
        f"  title = {{{{{title}}}: videos generated with Scenario's Kling models}},",
        f"  year = {{{year}}},",
        f"  note = {{kling-batch {ctx.version}; manifest sha256 {digest}}}", "}", "```",
    ]  # fmt: skip


_LOAD = [
    "## Load it", "",
    "```python",
    "from datasets import Video, load_dataset",
    'ds = load_dataset("videofolder", data_dir="THIS_FOLDER", split="train")',
    'ds = ds.cast_column("video", Video(decode=False))  # paths and bytes, no decoder needed',
    "```", "",
    "Each row is a line of `metadata.jsonl`: `file_name`, `job`, `model`, `prompt`, `params` "
    "(as the manifest asked), `jobId`, `assetId`, `sha256`, `bytes`. For training loaders "
    "that stream tar shards: `kling-batch export THIS_FOLDER --webdataset OUT`.", "",
    "## Files", "",
    "- `videos/` — the videos, verified against their sha256",
    "- `metadata.jsonl` — one line per video (above)",
    "- `results.csv` — one row per job, also the jobs without a video",
    "- `report.html` — a page to review the batch (summary, timeline, every job)",
    "- `ledger.jsonl` — the append-only record of everything that happened",
    "- `plan.jsonl`, `provenance.json` — the expanded jobs and the provenance below",
]  # fmt: skip


def render_dataset_card(s: ReportSummary, ctx: CardContext) -> str:
    """The dataset card of a batch (Markdown with YAML front matter)."""
    intro = (f"Videos generated with Scenario's Kling models by kling-batch from one manifest: "
             f"{s.files} files from {s.jobs} jobs.")
    lines = [_front_matter(s, ctx), "", f"# {md_text(ctx.name)}", "", intro, "",
             *_contents(s), "", *_LOAD, "", *_provenance(ctx), "", *_rebuild(ctx), ""]
    return "\n".join(lines)
