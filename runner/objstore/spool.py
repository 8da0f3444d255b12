"""The local spool: where videos wait between their download and their upload, bounded.

A batch writing to object storage may produce more bytes than the machine's disk holds, so
a download first takes room in the spool (`room`): it waits while the files in the spool
plus its own would pass `capacity` bytes, then downloads into a fresh path there; the file
is removed when the block ends (uploaded and verified, or failed), and its room given back.
A file larger than the whole spool waits for an empty spool and then goes alone.

The spool of a location is `$XDG_CACHE_HOME/kling-batch/spool/<hash of the location>/`
(`~/.cache/…` without XDG_CACHE_HOME), one sub-folder per runner process, so two runners
of one batch on one machine never delete each other's files. A runner removes the folders
of processes that are gone (a killed run's leftovers) when it opens the spool.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

DEFAULT_CAPACITY = 4 * 1024 * 1024 * 1024  # bytes
DEFAULT_RESERVATION = 256 * 1024 * 1024  # room taken for a file of unknown size


def default_spool_dir(location: str, env: Mapping[str, str]) -> Path:
    """The spool of the batch at `location` (its `str()`), under the user's cache dir."""
    cache = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    digest = hashlib.sha256(location.encode("utf-8")).hexdigest()[:16]
    return Path(cache) / "kling-batch" / "spool" / digest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    """A bounded folder of files in transit (one per runner process under `root`)."""

    def __init__(self, root: Path, capacity: int = DEFAULT_CAPACITY, *,
                 default_reservation: int = DEFAULT_RESERVATION) -> None:
        if capacity <= 0:
            raise ValueError("the spool's capacity must be positive")
        self.root = root
        self.capacity = capacity
        self.default_reservation = min(default_reservation, capacity)
        self.directory = root / str(os.getpid())
        self._used = 0
        self._changed = anyio.Condition()

    def open(self) -> Spool:
        """Create this process's folder, remove those of processes that are gone. OSError
        when the cache dir cannot be written."""
        self.root.mkdir(parents=True, exist_ok=True)
        for child in self.root.iterdir():
            if child.name.isdigit() and child != self.directory and not _alive(int(child.name)):
                shutil.rmtree(child, ignore_errors=True)
        shutil.rmtree(self.directory, ignore_errors=True)  # a reused pid's leftovers
        self.directory.mkdir(parents=True)
        return self

    @property
    def used(self) -> int:
        """Bytes reserved by files in transit now."""
        return self._used

    def files(self) -> list[Path]:
        """The files in this process's spool folder now."""
        return sorted(p for p in self.directory.iterdir() if p.is_file())

    @asynccontextmanager
    async def room(self, size: int | None, name: str = "file") -> AsyncIterator[Path]:
        """Wait for room for `size` bytes (None: `default_reservation`), then yield a fresh
        path in the spool named after `name`; the file (and any temp file beside it
        that starts with its name) is removed after the block and the room given back."""
        need = min(size if size is not None else self.default_reservation, self.capacity)
        async with self._changed:
            while self._used and self._used + need > self.capacity:
                await self._changed.wait()
            self._used += need
        path = self.directory / f"{secrets.token_hex(6)}-{Path(name).name}"
        try:
            yield path
        finally:
            for leftover in [path, *self.directory.glob(f".{path.name}.*")]:
                leftover.unlink(missing_ok=True)
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    self._used -= need
                    self._changed.notify_all()
