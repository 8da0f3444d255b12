"""The folder's views of a batch, written: report.html (and its posters), results.csv and
the dataset card README.md — by `report`, when a run ends, and every 30 s during a run.

Each file is rendered from the ledger and plan (pure views), then written atomically, so a
reader never sees half a page. The batch's provenance (provenance.json) is recorded by `run`
when it starts (`record_batch`). A README.md that kling-batch did not write is the user's:
it is left alone (and said so) rather than overwritten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path

import anyio

from runner import __version__
from runner.batch import PreparedRun
from runner.cli import output
from runner.cli.status import check_run_folder
from runner.clock import REAL_CLOCK, Clock
from runner.errors import KlingBatchError
from runner.ledger import Event, JobRecord, JsonlLedger, apply
from runner.outdir import (
    PLAN_NAME,
    BatchRecord,
    PlannedJob,
    ensure_posters,
    file_sha256,
    read_batch_record,
    read_plan,
    write_atomically,
    write_batch_record,
)
from runner.schemas import default_schema_dir
from runner.views import (
    CARD_MARK,
    CardContext,
    ReportContext,
    Timeline,
    job_views,
    render_dataset_card,
    render_report,
    result_lines,
    summarize,
    timeline_of,
)

REPORT_NAME = "report.html"
RESULTS_NAME = "results.csv"
CARD_NAME = "README.md"
REFRESH_SECONDS = 30.0
REFRESH_SHARE = 0.2  # of the run's time the refresh may take at most


def record_batch(prepared: PreparedRun, clock: Clock = REAL_CLOCK) -> None:
    """Write DIR/provenance.json for a run about to start (its plan.jsonl is written)."""
    manifest, options = prepared.manifest, prepared.options
    schema_dir = default_schema_dir()
    schemas = {}
    for model in sorted({spec.model for spec in manifest.jobs}):
        path = schema_dir / f"{model}.schema.json"
        if path.is_file():
            schemas[model] = file_sha256(path)
    write_batch_record(options.out_dir, BatchRecord(
        manifest=str(manifest.path.resolve()), manifest_sha256=file_sha256(manifest.path),
        plan_sha256=file_sha256(options.out_dir / PLAN_NAME), version=__version__,
        started=clock.now_iso(), schemas=schemas, concurrency=options.concurrency,
        budget=options.budget,
    ))  # fmt: skip


def _card_is_ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except FileNotFoundError:
        return True
    return CARD_MARK in head


def write_views(directory: Path, *, live: bool = False, clock: Clock = REAL_CLOCK) -> list[Path]:
    """Render and write the folder's report.html (making missing posters), results.csv and
    README.md; the paths written. UsageError when the folder holds no run."""
    check_run_folder(directory)
    records, timeline = replay_with_timeline(JsonlLedger(directory).read_events())
    return write_views_of(directory, read_plan(directory), records, timeline, live=live,
                          clock=clock)


def write_views_of(
    directory: Path, plan: Iterable[PlannedJob], records: Mapping[str, JobRecord],
    timeline: Timeline, *, live: bool = False, clock: Clock = REAL_CLOCK,
) -> list[Path]:
    """Write report.html, results.csv and README.md of a batch into `directory` from its
    plan, records and timeline (a folder's ledger, or a shared ledger's events)."""
    views = job_views(directory, plan, records)
    record = read_batch_record(directory)
    posters = ensure_posters(directory, [a for v in views for a in v.assets])
    now, name = clock.now_iso(), directory.resolve().name
    budget = record.budget if record else None
    page = render_report(views, timeline, posters, ReportContext(
        title=f"kling-batch report — {name}", generated_at=now, live=live,
        concurrency=record.concurrency if record else None, budget=budget,
        refresh=REFRESH_SECONDS,
    ))  # fmt: skip
    written = [directory / REPORT_NAME, directory / RESULTS_NAME]
    write_atomically(written[0], [page.encode("utf-8")])
    write_atomically(written[1], result_lines(views, timeline))
    card_path = directory / CARD_NAME
    if _card_is_ours(card_path):
        card = render_dataset_card(summarize(views, timeline, budget=budget),
                                   CardContext(name, record, timeline, now, __version__))
        write_atomically(card_path, [card.encode("utf-8")])
        written.append(card_path)
    elif not live:
        output.err(f"{card_path} was not written by kling-batch: left alone (no dataset card)")
    return written


def replay_with_timeline(events: Iterable[Event]) -> tuple[dict[str, JobRecord], Timeline]:
    """The job records and the run over time, from one read of the ledger (it may be
    large, and a running batch rewrites these views every 30 s)."""
    records: dict[str, JobRecord] = {}

    def replayed() -> Iterator[Event]:
        for event in events:
            records[event.job] = apply(records.get(event.job), event)
            yield event

    return records, timeline_of(replayed())


def write_final_views(directory: Path) -> None:
    """The views after a run ended; a failure to write them is said, never the run's end."""
    try:
        write_views(directory)
    except (OSError, KlingBatchError) as exc:
        output.err(f"could not write the report of {directory}: {exc}")


async def keep_views_fresh(
    directory: Path, *, interval: float = REFRESH_SECONDS,
    write: Callable[[Path], object] | None = None, clock: Clock = REAL_CLOCK,
) -> None:
    """Rewrite the views every `interval` seconds until cancelled, on a worker thread (a
    large batch's page takes a moment). A failure is said once and tried again later.

    The rendering is Python holding the GIL beside the run's event loop, so the pause after
    a write is at least `1 / REFRESH_SHARE` times what the write took: a batch so large
    that its page takes 10 s is refreshed every 50 s, and the run keeps most of the CPU."""
    writer = write or partial(write_views, live=True)
    said = False
    took = 0.0
    while True:
        await clock.sleep(max(interval, took / REFRESH_SHARE))
        started = clock.monotonic()
        try:
            await anyio.to_thread.run_sync(writer, directory)
        except (OSError, KlingBatchError) as exc:
            if not said:
                output.err(f"could not refresh the report of {directory}: {exc}")
                said = True
        finally:
            took = clock.monotonic() - started
