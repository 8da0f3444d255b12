"""A batch's views written to its object-store prefix: `metadata.jsonl` (`file_name`
relative to the prefix, the Hugging Face VideoFolder layout the output folder uses),
`results.csv` and `report.html` — rendered by the same pure views as the folder's, from
the ledger's records and events, and uploaded (each in one verified PUT).

Which files are present is the bucket's listing of `PREFIX/videos/` (key and size), not a
local folder. The page has no posters (they are made from local video files).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from runner.clock import REAL_CLOCK, Clock
from runner.domain import JobSpec
from runner.jsonl import json_line
from runner.ledger import Event, JobRecord
from runner.objstore.store import ObjectStore, StoredObject
from runner.outdir import METADATA_NAME, PlannedJob, metadata_rows
from runner.views import ReportContext, job_views, render_report, result_lines, timeline_of

REPORT_NAME = "report.html"
RESULTS_NAME = "results.csv"
VIDEOS_PREFIX = "videos/"


@dataclass(frozen=True, slots=True)
class StoreViews:
    """The three files of a batch's prefix, rendered (bytes), ready to upload."""

    metadata: bytes
    results: bytes
    report: bytes


def planned_jobs(specs: Iterable[JobSpec | PlannedJob]) -> list[PlannedJob]:
    """The manifest's jobs as the views take them."""
    return [s if isinstance(s, PlannedJob) else PlannedJob(s.id, s.model, dict(s.params))
            for s in specs]


def render_store_views(
    *, records: Mapping[str, JobRecord], planned: Sequence[PlannedJob],
    events: Iterable[Event], stored: Mapping[str, int], title: str,
    concurrency: int | None = None, budget: float | None = None, generated_at: str | None = None,
    live: bool = False,
) -> StoreViews:
    """The views (pure). `stored`: relative path → size of the objects under the prefix;
    a record's files count as present when each is stored with its recorded size."""

    def present(record: JobRecord | None) -> bool:
        return record is not None and len(stored_assets(stored, record)) == len(record.assets)

    timeline = timeline_of(events)
    views = job_views(Path("."), planned, records, present=present)
    page = render_report(views, timeline, {}, ReportContext(
        title=title, generated_at=generated_at, live=live, concurrency=concurrency,
        budget=budget))
    ids = {p.id for p in planned}
    return StoreViews(
        metadata=b"".join(json_line(row) for row in metadata_rows(records.values(), ids)),
        results=b"".join(result_lines(views, timeline)),
        report=page.encode("utf-8"))


def stored_assets(stored: Mapping[str, int], record: JobRecord) -> frozenset[str]:
    """The asset ids of `record` whose objects are stored with their recorded size
    (`stored`: relative path -> size, `stored_videos`). An object is only ever put there
    verified, under a name no other job uses, so its listed size is the check a resume
    needs: one LIST per 1,000 videos instead of one HEAD per video."""
    return frozenset(a.asset_id for a in record.assets if stored.get(a.path) == a.bytes)


async def stored_videos(store: ObjectStore) -> dict[str, int]:
    """Relative path → size of every object under `PREFIX/videos/`."""
    found: list[StoredObject] = await store.list(store.location.key(VIDEOS_PREFIX))
    return {store.location.relative(o.key): o.size for o in found}


async def write_store_views(
    store: ObjectStore, *, records: Mapping[str, JobRecord],
    specs: Iterable[JobSpec | PlannedJob], events: Iterable[Event] = (),
    concurrency: int | None = None, budget: float | None = None, live: bool = False,
    clock: Clock = REAL_CLOCK,
) -> list[str]:
    """Render the batch's views and upload them under the store's prefix: metadata.jsonl,
    results.csv, report.html (in that order; each verified). Returns the keys written.
    `specs`: the manifest's jobs (or the plan); `events`: the ledger's, in order, for the
    timeline (none: an empty one). ObjectStoreError when the store fails."""
    planned = planned_jobs(specs)
    stored = await stored_videos(store)
    title = f"kling-batch report — {store.location}"
    views = await anyio.to_thread.run_sync(lambda: render_store_views(
        records=records, planned=planned, events=events, stored=stored, title=title,
        concurrency=concurrency, budget=budget, generated_at=clock.now_iso(), live=live))
    location = store.location
    written = [location.key(METADATA_NAME), location.key(RESULTS_NAME), location.key(REPORT_NAME)]
    await store.put_bytes(written[0], views.metadata, "application/x-ndjson")
    await store.put_bytes(written[1], views.results, "text/csv; charset=utf-8")
    await store.put_bytes(written[2], views.report, "text/html; charset=utf-8")
    return written
