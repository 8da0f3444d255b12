"""The data that crosses module boundaries: frozen dataclasses and enums.

Dicts live only at the edges (YAML in, JSON over HTTP, JSONL out); everything a module hands
to another is one of these.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where something stands in a manifest (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or suspicious) with the input, with everything needed to fix it.

    `path` is the JSON path of the field inside the job (e.g. `params.duration`), or of the
    manifest node when no job is concerned.
    """

    message: str
    location: SourceLocation | None = None
    job: str | None = None
    model: str | None = None
    path: str | None = None
    hint: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = str(self.location) if self.location else "<manifest>"
        parts = [where]
        if self.job is not None:
            parts.append(f"job '{self.job}'" + (f" ({self.model})" if self.model else ""))
        head = " ".join(parts)
        field_ = f"{self.path}: " if self.path else ""
        tail = f" — {self.hint}" if self.hint else ""
        return f"{head}: {field_}{self.message}{tail}"


@dataclass(frozen=True, slots=True)
class LocalInput:
    """A local file one of a job's asset fields names: `field` is its JSON path
    (`params.startImage`), `pointer` the keys and indexes to it, `value` the path as
    written, `path` the file it names."""

    field: str
    pointer: tuple[str | int, ...]
    value: str
    path: Path


@dataclass(frozen=True, slots=True)
class Numbering:
    """How an expanded job's id was made: `<stem>-<number>` (zero-padded to `width`), and
    `-r<repeat>` past the first copy. A run may renumber a row to keep the id it was paid
    under when lines were inserted or deleted before it (`runner.batch.numbering`)."""

    stem: str
    number: int
    width: int
    repeat: int = 1

    def id_for(self, number: int) -> str:
        """The job's id were its row numbered `number`."""
        tail = f"-r{self.repeat}" if self.repeat > 1 else ""
        return f"{self.stem}-{number:0{self.width}d}{tail}"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One generation request of the manifest, defaults merged, ready to validate or send.

    `params` is the request body as the user wrote it: asset inputs may still be local file
    paths, relative to `base_dir` (the manifest's folder); `inputs` lists them. The content
    of each is part of what the job is: a changed file is a changed job.
    """

    id: str
    model: str
    params: Mapping[str, Any]
    location: SourceLocation
    base_dir: Path
    inputs: tuple[LocalInput, ...] = ()
    numbering: Numbering | None = None


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Run-level settings from the manifest's `settings:` block; CLI flags override them.

    None means "not set here" so that a caller can layer sources.
    """

    concurrency: int | None = None
    model_concurrency: Mapping[str, int] = field(default_factory=dict)
    submits_per_second: float | None = None
    download_concurrency: int | None = None
    job_timeout: float | None = None
    max_failures: str | None = None  # "N" or "N%"
    budget: float | None = None
    poll_mode: str | None = None  # "list" or "each"
    auto_retries: int | None = None
    settle: float | None = None
    confirm_above: float | None = None  # ask on a terminal before spending more CU
    notify_command: str | None = None  # run at the end with the summary on stdin
    notify_url: str | None = None  # POSTed the summary at the end


class RemoteStatus(enum.Enum):
    """A job's status as the API reports it (docs/api.md §3.2); UNKNOWN for anything new."""

    PENDING = "pending"
    QUEUED = "queued"
    WARMING_UP = "warming-up"
    IN_PROGRESS = "in-progress"
    FINALIZING = "finalizing"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELED = "canceled"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, raw: str) -> RemoteStatus:
        try:
            status = cls(raw)
        except ValueError:
            return cls.UNKNOWN
        return status

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({RemoteStatus.SUCCESS, RemoteStatus.FAILURE, RemoteStatus.CANCELED})


@dataclass(frozen=True, slots=True)
class RemoteJob:
    """A job as the API reports it. `raw_status` keeps the wire value when it is unknown."""

    job_id: str
    status: RemoteStatus
    raw_status: str
    progress: float
    asset_ids: tuple[str, ...] = ()
    error: str | None = None
    hint: str | None = None
    input: Mapping[str, Any] | None = None
    model_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    cu_cost: float | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """What a generate POST returned: the new job and what it was billed."""

    job: RemoteJob
    cost: float | None


@dataclass(frozen=True, slots=True)
class RemoteAsset:
    """An asset as `GET /v1/assets/{id}` reports it; `url` is signed and expires."""

    asset_id: str
    status: str
    url: str
    size: int | None = None
    mime_type: str | None = None
    kind: str | None = None


class JobState(enum.Enum):
    """A manifest job's local state, as `status --json` prints it."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
