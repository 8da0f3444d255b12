"""A folder is one batch: one manifest, one API origin, one account — `DIR/batch.json`.

`run` records there what the folder's jobs belong to: the manifest (every absolute path and
content hash it has had: an edited manifest, or one moved elsewhere, is still the same
batch), the API origin (`simulator` for `--simulate`) and the account the credentials name.
A run that does not match is refused before anything is sent (`batch_refusal`):

- another API origin, always: jobIds of the simulator mean nothing to the real API and the
  other way round, and a simulator's test clips must never count as a real batch's videos;
- another account, unless `--continue-batch` (a rotated key of the same project);
- another manifest (neither its path nor its content seen here), unless `--continue-batch`.

A folder written before batch.json existed is adopted by its next run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runner.errors import UsageError
from runner.jsonl import json_line
from runner.outdir.files import write_atomically

BATCH_NAME = "batch.json"
SIMULATOR = "simulator"


@dataclass(frozen=True, slots=True)
class BatchIdentity:
    """What a run says about itself: its manifest, where it sends, as whom."""

    manifest: str  # absolute path
    manifest_sha256: str
    origin: str | None  # scheme://host[:port], "simulator", or None (not checked)
    account: str | None  # `runner.api.account_of`, or None when the credentials name none


@dataclass(frozen=True, slots=True)
class FolderBatch:
    """What `DIR/batch.json` says the folder's batch is."""

    manifests: tuple[str, ...]
    hashes: tuple[str, ...]
    origin: str | None
    accounts: tuple[str, ...]
    created: str

    def names(self, wanted: BatchIdentity) -> bool:
        """True when `wanted`'s manifest is this batch's (by path or by content)."""
        return wanted.manifest in self.manifests or wanted.manifest_sha256 in self.hashes


def _describe(origin: str | None) -> str:
    return "the built-in simulator (--simulate)" if origin == SIMULATOR else f"{origin}"


def _origin_refusal(folder: Path, recorded: str, wanted: str) -> UsageError:
    if recorded == SIMULATOR:
        return UsageError(
            f"{folder} holds a batch run against the built-in simulator (--simulate): its "
            f"videos are test clips, not results of {wanted}",
            hint="run the real batch into another folder (-o)")
    if wanted == SIMULATOR:
        return UsageError(
            f"{folder} holds a batch run against {recorded}: --simulate would poll its "
            "jobIds at the simulator, which never made them",
            hint="simulate into another folder (-o)")
    return UsageError(f"{folder} holds a batch run against {recorded}, not {wanted}: its "
                      "jobIds mean nothing there",
                      hint=f"pass --base-url {recorded}, or run into another folder (-o)")


def batch_refusal(
    folder: Path, recorded: FolderBatch, wanted: BatchIdentity, *, continue_batch: bool
) -> UsageError | None:
    """Why a run of `wanted` may not go into `folder` (its batch is `recorded`), or None."""
    if recorded.origin and wanted.origin and recorded.origin != wanted.origin:
        return _origin_refusal(folder, recorded.origin, wanted.origin)
    if continue_batch:
        return None
    if recorded.accounts and wanted.account and wanted.account not in recorded.accounts:
        return UsageError(
            f"{folder} holds a batch run with other credentials ({recorded.accounts[-1]}, "
            f"now {wanted.account}): its jobs would answer 404 to these",
            hint="use the batch's credentials; if this key belongs to the same project (a "
            "rotated key), pass --continue-batch")
    if not recorded.names(wanted):
        return UsageError(
            f"{folder} holds the batch of {recorded.manifests[-1]}, not of {wanted.manifest}: "
            "a folder is one batch",
            hint="run into another folder (-o), or pass --continue-batch if this manifest "
            "continues that batch")
    return None


def claimed(recorded: FolderBatch | None, wanted: BatchIdentity, now: str) -> FolderBatch:
    """The folder's batch once `wanted` has run into it (paths, hashes, accounts added)."""
    if recorded is None:
        return FolderBatch((wanted.manifest,), (wanted.manifest_sha256,), wanted.origin,
                           (wanted.account,) if wanted.account else (), now)
    return replace(
        recorded,
        manifests=_added(recorded.manifests, wanted.manifest),
        hashes=_added(recorded.hashes, wanted.manifest_sha256),
        origin=recorded.origin or wanted.origin,
        accounts=_added(recorded.accounts, wanted.account),
    )


def _added(values: tuple[str, ...], value: str | None) -> tuple[str, ...]:
    if not value or value in values:
        return values
    return (*values, value)


def read_batch(folder: Path) -> FolderBatch | None:
    """The folder's batch.json; None when there is none. UsageError when it is unreadable
    (it says what the folder's jobs belong to: a run must not guess)."""
    path = folder / BATCH_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return _from_json(raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{path} cannot be read ({exc})",
                         hint="restore it, or delete it to let the next run adopt the "
                         "folder") from None


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _from_json(raw: Any) -> FolderBatch:
    origin = raw["origin"]
    if origin is not None and not isinstance(origin, str):
        raise TypeError("origin is not text")
    return FolderBatch(_strings(raw["manifests"]), _strings(raw["manifestSha256"]), origin,
                       _strings(raw.get("accounts", [])), str(raw.get("created", "")))


def write_batch(folder: Path, batch: FolderBatch) -> None:
    """Replace DIR/batch.json atomically."""
    data = {"version": 1, "manifests": list(batch.manifests),
            "manifestSha256": list(batch.hashes), "origin": batch.origin,
            "accounts": list(batch.accounts), "created": batch.created}
    write_atomically(folder / BATCH_NAME, [json_line(data)])
