"""What a WebDataset export holds, decided before anything is written: pure functions.

One sample per verified video of the ledger: `<key>.mp4` and `<key>.json`. The key is the
video's file name without `.mp4` (`<job id>` or `<job id>_<n>`); WebDataset splits a
member's name at its first dot into key and extension, and job ids may hold dots, so each
`.` of a key is spelled `%2E` (`%` is not allowed in job ids, so no two keys collide).
Shards hold whole samples, `shard_size` each, named `shard-000000.tar`, `shard-000001.tar`…

The JSON's `request` (the params as the manifest asked) is JSON *text*, the canonical
spelling: its keys differ from model to model, and a loader that infers one table from the
first samples — `datasets.load_dataset("webdataset")` looks at five — would silently drop
the fields of models it had not seen yet. As text, every sample has the same schema.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from runner.canonical import canonical_json
from runner.ledger import JobRecord

SHARD_PATTERN = "shard-{:06d}.tar"


@dataclass(frozen=True, slots=True)
class Sample:
    """One video and its record, as one WebDataset sample."""

    key: str
    path: str  # the video, relative to the output folder
    sha256: str
    bytes: int
    meta: dict[str, Any]  # the `<key>.json` member


def sample_key(path: str) -> str:
    """The sample key of a video at `path` (relative to DIR): its stem, dots spelled `%2E`."""
    name = posixpath.basename(path)
    stem = name[: -len(".mp4")] if name.lower().endswith(".mp4") else name
    return stem.replace("%", "%25").replace(".", "%2E")


def samples(records: Iterable[JobRecord]) -> Iterator[Sample]:
    """One sample per verified file, in ledger order; its JSON: the request as asked
    (`request`, JSON text), `model`, `jobId`, `assetId`, `sha256`, `bytes`, and the `cost`
    (CU) of the job that made it."""
    for rec in records:
        params = dict(rec.params or {})
        for asset in rec.assets:
            key = sample_key(asset.path)
            meta = {
                "key": key, "file_name": asset.path, "job": rec.id, "model": rec.model,
                "prompt": params.get("prompt"), "request": canonical_json(params),
                "jobId": rec.job_id, "assetId": asset.asset_id, "sha256": asset.sha256,
                "bytes": asset.bytes, "cost": rec.cost if rec.cost is not None else rec.total_cost,
            }  # fmt: skip
            yield Sample(key, asset.path, asset.sha256, asset.bytes, meta)


def shard_plan(items: Sequence[Sample], shard_size: int) -> list[list[Sample]]:
    """The samples cut into shards of `shard_size` (the last may hold fewer); whole
    samples only. ValueError for a size below 1."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    return [list(items[i : i + shard_size]) for i in range(0, len(items), shard_size)]


def shard_name(index: int) -> str:
    """The file name of the `index`-th shard (0-based)."""
    return SHARD_PATTERN.format(index)
