"""The output folder besides the ledger: the one-runner lock (`lock`), the files a run
leaves there — plan.jsonl, the videos and metadata.jsonl, each written atomically (`files`)
— the batch's provenance (`provenance`: batch.json) and the report's posters (`posters`)."""

from runner.outdir.files import (
    METADATA_NAME,
    PLAN_NAME,
    PlannedJob,
    file_matches,
    fsync_dir,
    metadata_rows,
    read_plan,
    verified_assets,
    video_name_clashes,
    video_relpath,
    write_atomically,
    write_metadata,
    write_plan,
)
from runner.outdir.lock import LOCK_NAME, LockInfo, hold_lock, read_lock
from runner.outdir.posters import POSTERS_DIR, ensure_posters, poster_jpeg, poster_relpath
from runner.outdir.provenance import (
    BATCH_NAME,
    BatchRecord,
    file_sha256,
    read_batch_record,
    write_batch_record,
)

__all__ = [
    "BATCH_NAME",
    "LOCK_NAME",
    "METADATA_NAME",
    "PLAN_NAME",
    "POSTERS_DIR",
    "BatchRecord",
    "LockInfo",
    "PlannedJob",
    "ensure_posters",
    "file_matches",
    "file_sha256",
    "fsync_dir",
    "hold_lock",
    "metadata_rows",
    "poster_jpeg",
    "poster_relpath",
    "read_batch_record",
    "read_lock",
    "read_plan",
    "verified_assets",
    "video_name_clashes",
    "video_relpath",
    "write_atomically",
    "write_batch_record",
    "write_metadata",
    "write_plan",
]
