"""Where a run's videos go once downloaded and verified: a `Destination`.

The follower hands each video to its destination with a `fetch` that downloads it,
verified, to a path it is given; the destination returns only once the file is where it
belongs, verified there — and only then does the follower record the `downloaded` event,
whose `path` (`videos/<id>.mp4`) is relative to the destination's root (the folder, or
the prefix of an object-store location). `LocalFolder` is the output folder itself: the
download lands in place, nothing more. The object store's destination is
`runner.objstore.ObjectStoreDestination`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio

from runner.domain import JobSpec
from runner.errors import LocalWriteError
from runner.ledger import Event, JobRecord
from runner.outdir.files import move_file
from runner.outdir.space import write_failure

if TYPE_CHECKING:
    from runner.api import DownloadedFile

Fetch = Callable[[Path], Awaitable["DownloadedFile"]]


class Destination(Protocol):
    """Where verified videos are placed; `place` raises what `fetch` raises (ApiError,
    LocalWriteError) and the destination's own errors (ObjectStoreError)."""

    def describe(self) -> str:
        """The destination as a user names it (a folder path, `s3://bucket/prefix`)."""

    async def place(self, rel: str, fetch: Fetch, size: int | None = None) -> DownloadedFile:
        """Download with `fetch` and put the file at `rel` (relative to the destination's
        root), verified; `size` is the expected size in bytes when known."""

    async def holds(self, rel: str) -> bool:
        """True when a file is at `rel` now."""

    async def move(self, rel: str, to: str) -> None:
        """Move the file at `rel` to `to` (a superseded video set aside), durably; raises
        LocalWriteError (a folder) or ObjectStoreError (a store) when it cannot."""

    async def publish(
        self, records: Mapping[str, JobRecord], specs: Iterable[JobSpec],
        events: Iterable[Event] = (),
    ) -> None:
        """Write the batch's views where its videos are, when the batch ends (the folder's
        are written by the CLI: nothing to do there)."""


class LocalFolder:
    """The output folder: the download lands at `root / rel`, atomically, verified."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    async def place(self, rel: str, fetch: Fetch, size: int | None = None) -> DownloadedFile:
        return await fetch(self.root / rel)

    async def holds(self, rel: str) -> bool:
        return await anyio.Path(self.root / rel).is_file()

    async def move(self, rel: str, to: str) -> None:
        try:
            await anyio.to_thread.run_sync(move_file, self.root / rel, self.root / to)
        except OSError as exc:  # the next run finishes the move the ledger recorded
            raise LocalWriteError(write_failure(exc, self.root)) from exc

    async def publish(
        self, records: Mapping[str, JobRecord], specs: Iterable[JobSpec],
        events: Iterable[Event] = (),
    ) -> None:
        return None  # the CLI writes the folder's views (runner.cli.refresh)
