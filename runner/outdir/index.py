"""The per-user index of batches: which folder each manifest was run into.

The default output folder (`output/<manifest name>/`) is relative to the current directory,
so the same manifest run from two places would make two folders and pay for every job twice.
Each run appends `{folder, manifest, sha256}` to `$XDG_STATE_HOME/kling-batch/batches.jsonl`
(`~/.local/state/...` by default), once per combination; a run into a new folder first
looks there for a folder that already holds this manifest (by absolute path or by content)
with submitted jobs, and is refused with where to resume (`--new-batch` starts a second
batch on purpose). The index only points: each folder's own batch.json is the truth, and
an entry whose folder is gone or holds another batch is ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.errors import UsageError
from runner.jsonl import json_line, json_objects
from runner.ledger import LEDGER_NAME, load_records
from runner.outdir.batch import BATCH_NAME, BatchIdentity, read_batch

INDEX_NAME = "batches.jsonl"


def default_index_path(env: Mapping[str, str]) -> Path | None:
    """`$XDG_STATE_HOME/kling-batch/batches.jsonl`, else under `~/.local/state`; None when
    neither variable says where home is."""
    state = env.get("XDG_STATE_HOME", "").strip()
    if state and Path(state).is_absolute():
        return Path(state) / "kling-batch" / INDEX_NAME
    home = env.get("HOME", "").strip()
    return Path(home) / ".local" / "state" / "kling-batch" / INDEX_NAME if home else None


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One batch the user ran: the folder, its manifest's absolute path and content hash."""

    folder: str
    manifest: str
    sha256: str


def read_index(path: Path) -> Iterator[IndexEntry]:
    """The entries of the index, oldest first (nothing when it is missing or unreadable:
    the index only helps, each folder's batch.json decides)."""
    try:
        with path.open("rb") as handle:
            for obj in json_objects(handle):
                values = [obj.get(k) for k in ("folder", "manifest", "sha256")]
                if all(isinstance(v, str) for v in values):
                    yield IndexEntry(*(str(v) for v in values))
    except OSError:
        return


def remember(path: Path, entry: IndexEntry) -> None:
    """Append `entry` unless the index already holds it. Raises OSError (the caller warns:
    a read-only home must not stop a batch)."""
    if entry in set(read_index(path)):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json_line({"folder": entry.folder, "manifest": entry.manifest, "sha256": entry.sha256})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one short O_APPEND write: concurrent runs do not interleave
    finally:
        os.close(fd)


def is_new_folder(folder: Path) -> bool:
    """True when `folder` holds no batch yet (no batch.json, no ledger)."""
    return not (folder / BATCH_NAME).exists() and not (folder / LEDGER_NAME).exists()


def _submitted_jobs(folder: Path) -> int:
    records = load_records(folder).values()
    return sum(1 for r in records if r.job_id or r.previous_job_ids or r.unresolved_intent)


def _same_api(origin: str | None, wanted: BatchIdentity) -> bool:
    # A batch against another origin (the simulator's test run of a manifest, a staging
    # API) paid nothing that a run against this one would pay again.
    return origin is None or wanted.origin is None or origin == wanted.origin


def run_elsewhere(index: Path, wanted: BatchIdentity, folder: Path) -> tuple[Path, int] | None:
    """The other folder (and how many of its jobs were submitted) that already holds the
    batch of `wanted`'s manifest against the same API, the most recent first; None when
    there is none."""
    entries = [e for e in read_index(index)
               if e.folder != str(folder)
               and (e.manifest == wanted.manifest or e.sha256 == wanted.manifest_sha256)]
    seen: set[str] = set()
    for entry in reversed(entries):
        if entry.folder in seen:
            continue
        seen.add(entry.folder)
        other = Path(entry.folder)
        try:
            batch = read_batch(other)
        except UsageError:
            continue
        if batch is None or not batch.names(wanted) or not _same_api(batch.origin, wanted):
            continue
        if count := _submitted_jobs(other):
            return other, count
    return None


def refuse_if_run_elsewhere(index: Path, wanted: BatchIdentity, folder: Path) -> None:
    """Raise UsageError (nothing sent, nothing written) when `wanted`'s manifest already
    has a folder with submitted jobs other than `folder`."""
    found = run_elsewhere(index, wanted, folder)
    if found is None:
        return
    other, count = found
    raise UsageError(
        f"{wanted.manifest} was already run into {other} ({count} job(s) submitted there); "
        f"a second folder would pay for them again",
        hint=f"resume there with -o {other}, or pass --new-batch to start another batch",
    )
