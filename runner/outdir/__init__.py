"""The output folder besides the ledger: the one-runner lock (`lock`) and the files a run
leaves there — plan.jsonl, the videos and metadata.jsonl, each written atomically (`files`)."""

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

__all__ = [
    "LOCK_NAME",
    "METADATA_NAME",
    "PLAN_NAME",
    "LockInfo",
    "PlannedJob",
    "file_matches",
    "fsync_dir",
    "hold_lock",
    "metadata_rows",
    "read_lock",
    "read_plan",
    "verified_assets",
    "video_name_clashes",
    "video_relpath",
    "write_atomically",
    "write_metadata",
    "write_plan",
]
