"""Videos into object storage: download into the spool, upload, verify, forget the file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from runner.domain import JobSpec
from runner.ledger import Event, JobRecord
from runner.objstore.spool import Spool
from runner.objstore.store import ObjectStore
from runner.objstore.views import write_store_views

if TYPE_CHECKING:
    from runner.api import DownloadedFile
    from runner.outdir import Fetch


class ObjectStoreDestination:
    """A `runner.outdir.Destination` under an object-store prefix: `place(rel, …)` takes room
    in the spool, downloads there, uploads to `PREFIX/rel` and verifies the stored object
    (`ObjectStore.upload_file`), and removes the spool file; it returns only once the
    object is verified, so the `downloaded` event that follows is true of the bucket."""

    def __init__(self, store: ObjectStore, spool: Spool, *, concurrency: int | None = None,
                 budget: float | None = None) -> None:
        self.store = store
        self.spool = spool
        self.concurrency = concurrency  # the run's asked limits, for the report's page
        self.budget = budget

    def describe(self) -> str:
        return str(self.store.location)

    async def place(self, rel: str, fetch: Fetch, size: int | None = None) -> DownloadedFile:
        async with self.spool.room(size, Path(rel).name) as path:
            got = await fetch(path)
            await self.store.upload_file(self.store.location.key(rel), got.path,
                                         size=got.bytes, sha256=got.sha256)
        return got

    async def holds(self, rel: str) -> bool:
        return await self.store.head(self.store.location.key(rel)) is not None

    async def move(self, rel: str, to: str) -> None:
        """Server-side copy, checked, then the original deleted (`ObjectStore.move`)."""
        await self.store.move(self.store.location.key(rel), self.store.location.key(to))

    async def publish(
        self, records: Mapping[str, JobRecord], specs: Iterable[JobSpec],
        events: Iterable[Event] = (),
    ) -> None:
        """metadata.jsonl, results.csv and report.html under the prefix
        (`write_store_views`)."""
        await write_store_views(self.store, records=records, specs=specs, events=events,
                                concurrency=self.concurrency, budget=self.budget)
