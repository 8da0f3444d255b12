"""The output folder's files besides the ledger: the job plan, videos and metadata.jsonl.

- `plan.jsonl` — a snapshot of the manifest's expanded jobs (`id`, `model`, `params`), one
  per line, rewritten atomically at the start of every run. With the ledger it lets
  `status`, `report` and `cancel` speak of every job, including those never submitted.
- `videos/<id>.mp4`, or `<id>_<n>.mp4` (n from 1) when a job yields several assets.
- `metadata.jsonl` — one line per downloaded file, in the Hugging Face VideoFolder layout,
  with the inputs (path, sha256, asset id) that made it and `inManifest` (false for a job
  no longer in the manifest: its paid video stays). One row per file, never two.
- `superseded/<id>/attempt-<n>/<file>` — a video a redo replaced, kept (the ledger's
  `superseded` event says so before the file moves).
  It is a view of the ledger, rewritten atomically from it whenever a run ends (and when a
  run starts, so a folder left by a killed run is made whole by the next one).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.domain import JobSpec
from runner.jsonl import json_line, json_objects
from runner.ledger import JobRecord

PLAN_NAME = "plan.jsonl"
METADATA_NAME = "metadata.jsonl"
VIDEOS_DIR = "videos"
SUPERSEDED_DIR = "superseded"


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """A manifest job as the output folder remembers it."""

    id: str
    model: str
    params: Mapping[str, Any]


def video_relpath(job_id: str, index: int, count: int) -> str:
    """Where the `index`-th (0-based) of `count` assets of a job goes, relative to DIR."""
    name = f"{job_id}.mp4" if count == 1 else f"{job_id}_{index + 1}.mp4"
    return f"{VIDEOS_DIR}/{name}"


def superseded_relpath(job_id: str, attempt: int, path: str) -> str:
    """Where a video of attempt `attempt` of a job is kept once a redo replaces it (ids hold
    no `/`, so no two jobs share a folder)."""
    return f"{SUPERSEDED_DIR}/{job_id}/attempt-{attempt}/{Path(path).name}"


def move_file(source: Path, dest: Path) -> None:
    """Rename `source` to `dest` (same file system), durably: both folders fsynced."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, dest)
    fsync_dir(dest.parent)
    fsync_dir(source.parent)


def remove_stale_parts(directory: Path, names: Iterable[str]) -> int:
    """Delete the temporary files a killed run left: `.part` downloads under videos/ and
    the temp copies of `names` (files written atomically beside themselves). Only while
    holding the folder's lock: no other runner is writing them."""
    stale = [*(directory / VIDEOS_DIR).glob(".*.part-*")]
    for name in names:
        stale.extend(directory.glob(f".{name}.*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def complete_moves(directory: Path, records: Iterable[JobRecord]) -> int:
    """Finish the moves of superseded videos a killed run recorded but did not make (the
    ledger is written first); returns how many were finished."""
    done = 0
    for record in records:
        for kept in record.superseded:
            source, dest = directory / kept.previous, directory / kept.path
            if not dest.exists() and file_matches(source, kept.sha256, kept.bytes):
                move_file(source, dest)
                done += 1
    return done


def video_name_clashes(job_ids: Iterable[str]) -> list[str]:
    """Ids like `x_2` whose prefix `x` is also a job: `x`'s second video would be named
    `videos/x_2.mp4` too, so one paid video could overwrite the other."""
    ids = set(job_ids)
    clashes = []
    for job_id in sorted(ids):
        prefix, sep, number = job_id.rpartition("_")
        if sep and number.isdigit() and prefix in ids:
            clashes.append(job_id)
    return clashes


def write_atomically(path: Path, lines: Iterable[bytes]) -> None:
    """Write `lines` to a temp file beside `path`, fsync, rename over it, fsync the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes 0600 files; give the result the mode open() would (0666 - umask),
        # so a web server or a colleague can read the dataset.
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as fh:
            for line in lines:
                fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_plan(directory: Path, specs: Iterable[JobSpec]) -> None:
    """Snapshot the manifest's jobs into DIR/plan.jsonl."""
    lines = (
        json_line({"id": s.id, "model": s.model, "params": dict(s.params)}) for s in specs
    )
    write_atomically(directory / PLAN_NAME, lines)


def read_plan(directory: Path) -> Iterator[PlannedJob]:
    """The jobs of the last run's manifest, in manifest order (nothing if there is no plan)."""
    path = directory / PLAN_NAME
    if not path.exists():
        return
    with path.open("rb") as fh:
        for obj in json_objects(fh):
            yield PlannedJob(str(obj["id"]), str(obj["model"]), obj.get("params") or {})


def metadata_rows(
    records: Iterable[JobRecord], planned: Collection[str] | None = None
) -> Iterator[dict[str, Any]]:
    """One metadata.jsonl row per verified file, from the replayed ledger: `inManifest` says
    whether its job is still in the manifest (`planned`; None: all are). A file two records
    claim (a folder from before the clash checks) gets one row, the latest record's."""
    rows: dict[str, dict[str, Any]] = {}
    for rec in records:
        params = dict(rec.params or {})
        for asset in rec.assets:
            rows.pop(asset.path, None)
            rows[asset.path] = {
                "file_name": asset.path,
                "job": rec.id,
                "model": rec.model,
                "prompt": params.get("prompt"),
                "params": params,
                "jobId": rec.job_id,
                "assetId": asset.asset_id,
                "sha256": asset.sha256,
                "bytes": asset.bytes,
                # Which local files (by content) made this video: a dataset can tell.
                "inputs": [{"field": i.field, "path": i.path, "sha256": i.sha256,
                            "assetId": i.asset_id} for i in rec.inputs],
                "inManifest": planned is None or rec.id in planned,
            }
    yield from rows.values()


def write_metadata(
    directory: Path, records: Iterable[JobRecord], planned: Collection[str] | None = None
) -> None:
    """Rewrite DIR/metadata.jsonl from the ledger's records (`metadata_rows`)."""
    write_atomically(directory / METADATA_NAME,
                     (json_line(row) for row in metadata_rows(records, planned)))


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file, read in blocks (flat memory). Raises OSError."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_matches(path: Path, sha256: str, size: int) -> bool:
    """True when `path` exists with exactly `size` bytes and the given sha256."""
    try:
        return path.stat().st_size == size and file_sha256(path) == sha256
    except OSError:
        return False


def verified_assets(directory: Path, record: JobRecord) -> frozenset[str]:
    """The asset ids of a job whose recorded files are on disk and verify."""
    return frozenset(
        a.asset_id for a in record.assets if file_matches(directory / a.path, a.sha256, a.bytes)
    )
