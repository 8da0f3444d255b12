"""What a failed write means for the folder it was writing into: one line a person can act
on — which folder, why (full, read-only, no permission), and how much space is needed."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.errors import FolderError

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def human_size(count: float) -> str:
    """`1.5 MiB`, `120 B`: bytes as a person reads them."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def free_space(folder: Path) -> int | None:
    """Bytes free for us on the file system holding `folder` (or its nearest parent)."""
    for place in (folder, *folder.parents):
        try:
            return shutil.disk_usage(place).free
        except OSError:
            continue
    return None


def is_full(exc: OSError) -> bool:
    """True for a disk (or a quota) that cannot take more bytes."""
    return exc.errno in _FULL


def write_failure(exc: OSError, folder: Path, needed: int | None = None) -> str:
    """Why `folder` could not be written, e.g. "no space left on the disk holding /o
    (12.0 KiB free; the file being written needs 1.5 MiB)"."""
    if is_full(exc):
        free = free_space(folder)
        told = [f"{human_size(free)} free" if free is not None else "free space unknown"]
        if needed:
            told.append(f"the file being written needs {human_size(needed)}")
        return f"no space left on the disk holding {folder} ({'; '.join(told)})"
    if exc.errno == errno.EFBIG:
        size = f" ({human_size(needed)})" if needed else ""
        return f"a file in {folder}{size} is larger than this process may write (ulimit -f)"
    if exc.errno == errno.EROFS:
        return f"{folder} is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"no permission to write in {folder}{where}"
    return f"cannot write in {folder}: {exc.strerror or exc}"


def write_hint(exc: OSError) -> str:
    """What to do about a write failure."""
    if is_full(exc):
        return "free some space (or pass -o a folder on another disk) and run again"
    if exc.errno == errno.EFBIG:
        return "raise the file size limit (ulimit -f) and run again"
    return "make the folder writable, or pass -o another folder, and run again"


@contextmanager
def writing(folder: Path) -> Iterator[None]:
    """Turn a failed write into `folder` into a one-line FolderError (exit 2): for the
    steps of a command that write before anything is sent."""
    try:
        yield
    except OSError as exc:
        raise FolderError(write_failure(exc, folder), hint=write_hint(exc)) from None
