"""Writing WebDataset shards: tar files of whole samples, each appearing atomically.

A shard is written to a temporary file beside its final name, fsynced and renamed, so a
reader (or a crash) never meets half a shard. Each video is hashed while it is copied in:
a file that no longer matches the ledger's sha256 stops the export (UsageError, nothing of
that shard left behind) — a damaged dataset is not exported as if it were whole. Shards
of an earlier, larger export into the same folder are removed at the end, so OUT holds
exactly this export. Tar members are reproducible: mode 0644, owner 0, mtime 0, PAX.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from runner.errors import UsageError
from runner.export.samples import Sample, shard_name, shard_plan
from runner.outdir import fsync_dir

_SHARD_FILE = re.compile(r"^shard-(\d{6})\.tar$")


@dataclass(frozen=True, slots=True)
class Exported:
    """What an export wrote."""

    shards: tuple[Path, ...]
    samples: int
    bytes: int


class _HashingReader:
    """Reads a file for tarfile while hashing what it hands over."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.digest.update(data)
        return data


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


def _add_sample(tar: tarfile.TarFile, directory: Path, sample: Sample) -> None:
    video = directory / sample.path
    try:
        size = video.stat().st_size
        with video.open("rb") as raw:
            if size != sample.bytes:
                raise ValueError(f"{size} bytes, the ledger says {sample.bytes}")
            reader = _HashingReader(raw)
            tar.addfile(_member(f"{sample.key}.mp4", size), reader)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{video} cannot be exported: {exc}",
                         hint="run the batch again to download it anew") from exc  # fmt: skip
    if reader.digest.hexdigest() != sample.sha256:
        raise UsageError(f"{video} does not match its sha256 in the ledger",
                         hint="run the batch again to download it anew")  # fmt: skip
    meta = json.dumps(sample.meta, ensure_ascii=False, sort_keys=True).encode("utf-8")
    tar.addfile(_member(f"{sample.key}.json", len(meta)), io.BytesIO(meta))


def _write_shard(directory: Path, items: Sequence[Sample], target: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for sample in items:
                    _add_sample(tar, directory, sample)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale(out: Path, count: int) -> None:
    for path in out.iterdir():
        match = _SHARD_FILE.match(path.name)
        if match and int(match.group(1)) >= count:
            path.unlink()


def write_shards(
    directory: Path, items: Sequence[Sample], out: Path, shard_size: int
) -> Exported:
    """Write `items` (videos under `directory`) as tar shards into `out` (made if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    shards = []
    for index, shard in enumerate(shard_plan(items, shard_size)):
        target = out / shard_name(index)
        _write_shard(directory, shard, target)
        shards.append(target)
    _remove_stale(out, len(shards))
    fsync_dir(out)
    return Exported(tuple(shards), len(items), sum(s.bytes for s in items))
