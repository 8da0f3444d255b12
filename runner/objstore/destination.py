"""Videos into object storage: download into the spool, upload, verify, forget the file.
`open_object_destination` builds the whole thing for a run from the location and the
environment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from runner.clock import REAL_CLOCK, Clock
from runner.domain import JobSpec
from runner.errors import FolderError
from runner.ledger import Event, JobRecord
from runner.objstore.config import S3Config
from runner.objstore.location import S3Location
from runner.objstore.spool import DEFAULT_CAPACITY, Spool, default_spool_dir
from runner.objstore.store import ObjectStore, UploadTuning, open_store
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


@asynccontextmanager
async def open_object_destination(
    location: S3Location, env: Mapping[str, str], *, concurrency: int | None = None,
    budget: float | None = None, spool_capacity: int = DEFAULT_CAPACITY,
    spool_dir: Path | None = None, tuning: UploadTuning | None = None,
    clock: Clock = REAL_CLOCK,
) -> AsyncIterator[ObjectStoreDestination]:
    """The destination of a run into `location`: the store configured from the AWS
    variables of `env`, its bucket checked, the spool opened (default:
    `default_spool_dir`). UsageError (nothing sent) for missing credentials, a bucket that
    does not exist or is refused; FolderError for a spool that cannot be created;
    ObjectStoreError for a store that cannot be reached."""
    config = S3Config.from_env(env)
    root = spool_dir or default_spool_dir(str(location), env)
    try:
        spool = Spool(root, spool_capacity).open()
    except OSError as exc:
        raise FolderError(f"the spool {root} cannot be created: {exc}",
                          hint="set XDG_CACHE_HOME to a writable folder") from exc
    async with open_store(config, location, tuning=tuning, clock=clock) as store:
        await store.check_bucket()
        yield ObjectStoreDestination(store, spool, concurrency=concurrency, budget=budget)


async def complete_store_moves(store: ObjectStore, records: Iterable[JobRecord]) -> int:
    """Finish the set-asides a killed run recorded (`superseded`) but did not make: where
    the superseded object is missing and the previous key still holds the recorded video
    (size and sha256 metadata), move it — before anything could overwrite it. Returns how
    many were finished. The store's twin of `runner.outdir.complete_moves`; call it before
    a run into the store starts its jobs."""
    done = 0
    location = store.location
    for record in records:
        for kept in record.superseded:
            if await store.head(location.key(kept.path)) is not None:
                continue
            source = await store.head(location.key(kept.previous))
            if source is not None and (source.size, source.sha256) == (kept.bytes, kept.sha256):
                await store.move(location.key(kept.previous), location.key(kept.path))
                done += 1
    return done
