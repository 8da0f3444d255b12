"""`run --events FILE` (or `-` for stdout): one JSON object per job transition, as it happens.

Each line is the ledger's line for the event (`ts`, `job`, `event` and the event's own
fields: `error`, `hint`, `status`, `assetId`, `path`, `sha256`, `bytes`, `cost`, …, spelled
as in `ledger.jsonl`), without the request's bulk (`body`, `params`, `inputs`,
`fingerprint`), plus what the job is after it: `state` (one of `status --json`'s six),
`previous` (its state before), and where known `jobId`, `model` and `attempt`. Lines are
written and flushed the moment the run's job book records the event (after it is durable
in the ledger), so a reader never sees a transition the ledger does not hold.

The stream is a view, never a part of the batch: a sink that fails (a full disk, a reader
that went away) is said once on stderr and the run goes on without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

from runner.cli import output
from runner.errors import UsageError
from runner.ledger import Event, JobRecord, to_line

_BULK = ("body", "params", "inputs", "fingerprint")


def transition_line(old: JobRecord | None, new: JobRecord, event: Event) -> dict[str, Any]:
    """The stream's object for one transition (see the module's docstring)."""
    line = {k: v for k, v in to_line(event).items() if k not in _BULK}
    line["state"] = new.state.value
    line["previous"] = old.state.value if old is not None else "pending"
    if new.job_id is not None:
        line.setdefault("jobId", new.job_id)
    if new.model is not None:
        line.setdefault("model", new.model)
    if new.attempt:
        line.setdefault("attempt", new.attempt)
    return line


class EventStream:
    """Writes transitions to a file (appending) or to stdout; a book observer."""

    def __init__(self, target: str) -> None:
        self._name = "stdout" if target == "-" else target
        self._owned = target != "-"
        if self._owned:
            try:
                # Open for the run's whole length; `close` (on the run's exit stack) ends it.
                self._sink: IO[str] | None = Path(target).open(  # noqa: SIM115
                    "a", encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"--events {target}: cannot write it "
                                 f"({exc.strerror or exc})") from None
        else:
            self._sink = sys.stdout

    def observe(self, old: JobRecord | None, new: JobRecord, event: Event) -> None:
        if self._sink is None:
            return
        try:
            self._sink.write(json.dumps(transition_line(old, new, event),
                                        ensure_ascii=False, separators=(",", ":")) + "\n")
            self._sink.flush()
        except (OSError, ValueError) as exc:
            output.err(f"warning: the event stream ({self._name}) stopped: {exc}; the run "
                       "goes on, the ledger has every event")
            self._sink = None

    def close(self) -> None:
        if self._owned and self._sink is not None:
            self._sink.close()
        self._sink = None
