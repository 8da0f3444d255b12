"""The folder a run claims: a folder is one batch (one manifest, one API origin, one
account), and a manifest already run elsewhere gets no silent second folder; before anything
is sent the folder's own files are made whole (`refresh_folder`).

`runner.outdir` keeps the records (the folder's batch.json, the per-user index of batches);
this module applies them to one run's options before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runner.clock import REAL_CLOCK
from runner.domain import JobSpec
from runner.ledger import JobRecord
from runner.manifest import Manifest
from runner.outdir import (
    BATCH_NAME,
    METADATA_NAME,
    PLAN_NAME,
    PROVENANCE_NAME,
    BatchIdentity,
    FolderBatch,
    IndexEntry,
    batch_refusal,
    claimed,
    complete_moves,
    is_new_folder,
    read_batch,
    refuse_if_run_elsewhere,
    remember,
    remove_stale_parts,
    write_batch,
    write_metadata,
    write_plan,
    writing,
)

if TYPE_CHECKING:
    from runner.batch.engine import RunOptions


def batch_identity(manifest: Manifest, options: RunOptions) -> BatchIdentity:
    """What this run says the folder's batch is (manifest, API origin, account)."""
    return BatchIdentity(str(manifest.path.resolve()), manifest.sha256, options.origin,
                         options.account)


def check_not_run_elsewhere(options: RunOptions, wanted: BatchIdentity) -> None:
    """UsageError when the run would start a new folder for a manifest whose batch is in
    another folder (unless --new-batch); reads only."""
    if options.batch_index is not None and not options.new_batch and is_new_folder(
            options.out_dir):
        refuse_if_run_elsewhere(options.batch_index, wanted, options.out_dir)


def claim_folder(options: RunOptions, wanted: BatchIdentity) -> FolderBatch:
    """The folder's batch once this run joins it; UsageError when it is another batch."""
    recorded = read_batch(options.out_dir)
    if recorded is not None:
        refusal = batch_refusal(options.out_dir, recorded, wanted,
                                continue_batch=options.continue_batch)
        if refusal is not None:
            raise refusal
    return claimed(recorded, wanted, REAL_CLOCK.now_iso())


def remember_batch(options: RunOptions, wanted: BatchIdentity) -> tuple[str, ...]:
    """Add the folder to the per-user index; a warning (not an error) when it cannot be."""
    if options.batch_index is None:
        return ()
    entry = IndexEntry(str(options.out_dir), wanted.manifest, wanted.manifest_sha256)
    try:
        remember(options.batch_index, entry)
    except OSError as exc:
        return (f"the index of batches ({options.batch_index}) could not be written: "
                f"{exc.strerror or exc}; a run of this manifest from elsewhere will not be "
                "told about this folder",)
    return ()


def refresh_folder(
    out_dir: Path, batch: FolderBatch, specs: Sequence[JobSpec],
    records: Mapping[str, JobRecord],
) -> tuple[str, ...]:
    """Before anything is sent, under the lock: no temp file a killed run left, the batch
    record, the plan, the superseded moves finished, metadata.jsonl whole. Raises
    FolderError (one line, exit 2) when the folder cannot be written. Notes to show."""
    with writing(out_dir):
        removed = remove_stale_parts(out_dir, (PLAN_NAME, METADATA_NAME, BATCH_NAME,
                                               PROVENANCE_NAME))
        write_batch(out_dir, batch)
        write_plan(out_dir, specs)
        complete_moves(out_dir, records.values())
        write_metadata(out_dir, records.values(), {spec.id for spec in specs})
    return (f"removed {removed} partial file(s) an interrupted run left",) if removed else ()
