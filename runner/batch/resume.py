"""What to do with each manifest job given what the ledger knows: pure decisions.

Resume is the default: a job that succeeded and whose files verify is skipped; one with a
recorded jobId is polled again, never re-posted; one whose POST's fate is unknown is
reconciled against the API's job list first; a failed job is left alone unless the user asks
for `--retry-failed`; a job whose model or params changed since it was submitted is refused
unless the user asks for it to be redone.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.domain import JobState
from runner.ledger import JobRecord


class Action(enum.Enum):
    """The next step for one job."""

    SKIP = "skip"  # done: its files are there and verified
    DOWNLOAD = "download"  # succeeded remotely; some file is missing or did not verify
    POLL = "poll"  # has a jobId and no terminal state yet
    RECONCILE = "reconcile"  # an intent without jobId: look for the job before posting
    SUBMIT = "submit"  # never submitted (or a new attempt was asked for)
    HOLD = "hold"  # failed or canceled, and no retry was asked for
    CHANGED = "changed"  # model/params differ from what was submitted: refused


@dataclass(frozen=True, slots=True)
class Decision:
    """An action and the sentence `status` prints to explain it."""

    action: Action
    reason: str
    changed: tuple[str, ...] = ()


def changed_fields(
    model: str, params: Mapping[str, Any], record: JobRecord | None
) -> tuple[str, ...]:
    """The fields (`model`, `params.x`) that differ from the ledger's last intent."""
    if record is None or record.params is None:
        return ()
    diffs: list[str] = []
    if record.model is not None and record.model != model:
        diffs.append("model")
    old = record.params
    for key in sorted(set(old) | set(params)):
        if old.get(key) != params.get(key):
            diffs.append(f"params.{key}")
    return tuple(diffs)


def changed_inputs(
    current: Mapping[str, tuple[str, str]], record: JobRecord | None
) -> tuple[str, ...]:
    """The input files whose content changed since the last intent, as `params.x (new
    content of path)`: `current` maps a field to (path as written, sha256 now). A field whose
    path changed is already a changed param; a record from before 0.2 has no hashes."""
    if record is None:
        return ()
    found = []
    for item in record.inputs:
        now = current.get(item.field)
        if now is not None and now[0] == item.path and now[1] != item.sha256:
            found.append(f"{item.field} (new content of {item.path})")
    return tuple(found)


def decide(
    model: str,
    params: Mapping[str, Any],
    record: JobRecord | None,
    *,
    files_ok: bool,
    retry_failed: bool = False,
    redo: bool = False,
    changed_inputs: tuple[str, ...] = (),
) -> Decision:
    """The next action for a job. `files_ok`: its recorded files exist and verify;
    `changed_inputs`: its input files whose content changed (`changed_inputs()`)."""
    if record is None or (record.state is JobState.PENDING and not record.unresolved_intent):
        return Decision(Action.SUBMIT, "not submitted yet: will be submitted")
    changed = changed_fields(model, params, record) + changed_inputs
    if changed and not redo:
        return Decision(
            Action.CHANGED,
            f"changed since it was submitted ({', '.join(changed)}): refused until "
            "--redo-changed (or --redo ID)",
            changed,
        )
    if record.unresolved_intent:
        # Even a job the user wants redone first has its lost POST looked for: that POST may
        # have created (and billed) a job, which must be in the ledger before anything new.
        return Decision(
            Action.RECONCILE, "POST outcome unknown: will look for the job before posting",
            changed,
        )
    if changed:
        return Decision(Action.SUBMIT, "changed, and a redo was asked: new attempt", changed)
    return _decide_unchanged(record, files_ok=files_ok, retry_failed=retry_failed)


def _decide_unchanged(record: JobRecord, *, files_ok: bool, retry_failed: bool) -> Decision:
    state = record.state
    if state is JobState.SUCCEEDED:
        if record.all_downloaded and files_ok:
            return Decision(Action.SKIP, f"done: {len(record.assets)} file(s) verified")
        return Decision(Action.DOWNLOAD, "succeeded: will download its missing file(s)")
    if state in (JobState.SUBMITTED, JobState.RUNNING) or record.timed_out:
        return Decision(Action.POLL, f"in flight as {record.job_id}: will poll it again")
    what = f"lost by the API ({record.job_id})" if record.lost else state.value
    if retry_failed:
        return Decision(Action.SUBMIT, f"{what}: --retry-failed makes a new attempt")
    return Decision(Action.HOLD, f"{what}: not resubmitted (use --retry-failed to try again)")


# Failure texts that say "try again later" vs "this input will never pass". A content-policy
# rejection is never retried blindly: the same body would be refused (and maybe billed) again.
_POLICY_WORDS = ("permanent", "policy", "moderation", "nsfw", "safety", "prohibited",
                 "not allowed", "ip ")
_TRANSIENT_WORDS = ("temporar", "transient", "try again", "retry", "timeout", "timed out",
                    "capacity", "overload", "unavailable", "internal error")


def is_transient_failure(error: str | None, hint: str | None) -> bool:
    """True when a failed job's error/hint says the failure may not happen again."""
    text = f"{error or ''} {hint or ''}".lower()
    if any(word in text for word in _POLICY_WORDS):
        return False
    return any(word in text for word in _TRANSIENT_WORDS)
