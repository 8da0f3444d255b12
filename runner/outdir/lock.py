"""One runner per output folder: an advisory lock on `DIR/.lock`.

The lock is an `flock` on the file, so the kernel releases it the moment its holder dies,
however it dies (SIGKILL, power loss of a network mount aside). The file also carries the
holder's pid, host and start time, for the message a second runner prints. A file whose lock
is not held is stale — left by a killed process — and is simply taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from runner.clock import REAL_CLOCK
from runner.errors import LockedError
from runner.outdir.space import writing

LOCK_NAME = ".lock"


@dataclass(frozen=True, slots=True)
class LockInfo:
    """What a lock file says about its holder; `stale` when no live process holds it."""

    pid: int | None
    host: str | None
    started: str | None
    stale: bool


def _describe(raw: str) -> tuple[int | None, str | None, str | None]:
    try:
        data = json.loads(raw)
        return int(data["pid"]), str(data["host"]), str(data["started"])
    except (ValueError, KeyError, TypeError):
        return None, None, None


@contextmanager
def hold_lock(directory: Path) -> Iterator[LockInfo | None]:
    """Hold the folder's lock for the block; yields the stale lock taken over, if any.

    Raises LockedError (exit 2) when another live runner holds it, FolderError (exit 2)
    when the lock file cannot be written (a read-only folder).
    """
    path = directory / LOCK_NAME
    with writing(directory):  # a read-only folder: one line, exit 2
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        previous = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, host, started = _describe(previous)
            raise LockedError(
                f"{directory} is in use by another kling-batch run (pid {pid} on {host}, "
                f"since {started}); wait for it to finish, or stop it, then run again"
            ) from None
        pid, host, started = _describe(previous)
        taken = LockInfo(pid, host, started, stale=True) if previous.strip() else None
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": REAL_CLOCK.now_iso()}
        with writing(directory):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(mine).encode(), 0)
            os.fsync(fd)
        try:
            yield taken
        finally:
            with contextlib.suppress(OSError):  # never hide how the run ended
                os.ftruncate(fd, 0)  # an empty file says "released cleanly"
    finally:
        os.close(fd)


def read_lock(directory: Path) -> LockInfo | None:
    """Who holds the folder, without taking it (None when nobody ever did or it is free)."""
    path = directory / LOCK_NAME
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        if not raw.strip():
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return LockInfo(*_describe(raw), stale=False)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return LockInfo(*_describe(raw), stale=True)
    finally:
        os.close(fd)
