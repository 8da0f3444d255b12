"""The output folder besides the ledger: the one-runner lock (`lock`), the files a run
leaves there — plan.jsonl, the videos and metadata.jsonl, each written atomically (`files`)
— what batch the folder holds (`batch`: one manifest, one API origin) and the per-user
index of batches (`index`)."""

from runner.outdir.batch import (
    BATCH_NAME,
    SIMULATOR,
    BatchIdentity,
    FolderBatch,
    batch_refusal,
    claimed,
    read_batch,
    write_batch,
)
from runner.outdir.files import (
    METADATA_NAME,
    PLAN_NAME,
    PlannedJob,
    file_matches,
    file_sha256,
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
from runner.outdir.index import (
    INDEX_NAME,
    IndexEntry,
    default_index_path,
    is_new_folder,
    read_index,
    refuse_if_run_elsewhere,
    remember,
    run_elsewhere,
)
from runner.outdir.lock import LOCK_NAME, LockInfo, hold_lock, read_lock

__all__ = [
    "BATCH_NAME",
    "INDEX_NAME",
    "LOCK_NAME",
    "METADATA_NAME",
    "PLAN_NAME",
    "SIMULATOR",
    "BatchIdentity",
    "FolderBatch",
    "IndexEntry",
    "LockInfo",
    "PlannedJob",
    "batch_refusal",
    "claimed",
    "default_index_path",
    "file_matches",
    "file_sha256",
    "fsync_dir",
    "hold_lock",
    "is_new_folder",
    "metadata_rows",
    "read_batch",
    "read_index",
    "read_lock",
    "read_plan",
    "refuse_if_run_elsewhere",
    "remember",
    "run_elsewhere",
    "verified_assets",
    "video_name_clashes",
    "video_relpath",
    "write_atomically",
    "write_batch",
    "write_metadata",
    "write_plan",
]
