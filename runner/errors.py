"""The one exception tree of kling-batch.

    KlingBatchError                 root; the CLI catches it and never shows a traceback
    ├── UsageError                  bad input or configuration (exit 2), nothing was sent
    │   ├── ManifestError           a manifest with problems; carries every Problem at once
    │   └── FolderError             the output folder cannot be written as a command starts
    │                               (read-only, no permission, full): nothing was sent
    ├── LockedError                 another runner holds the output folder (exit 2)
    ├── FencedError                 a shared batch's job was taken over by another runner:
    │                               this runner's write for it was refused (it drops the job)
    ├── HaltError                   the run stopped on purpose (exit 3), resumable
    │   ├── LedgerWriteError        the ledger could not be written (disk full): stop now
    │   │   └── SharedLedgerError   the shared ledger (PostgreSQL) stayed unreachable
    │   ├── LocalWriteError         a file of the folder could not be written during a run
    │   │                           (a video, a superseded move): the run halts
    │   └── ObjectStoreError        the object store refused or could not be reached, after
    │       │                       bounded retries: the run halts, resumable
    │       └── UploadVerificationError  a stored object is not the file that was sent
    │                               (size or checksum): it was removed; that one file fails
    └── ApiError                    the Scenario API answered badly, or not at all
        ├── TransientApiError       408, 409, 429, 5xx, resets, timeouts: worth retrying
        │   └── RateLimitedError    429 (or a slow-down hint): carries the server's delay
        ├── PermanentApiError       400, 404, 422 and other 4xx: retrying will not help
        ├── AuthError               401, 403: stop the whole run
        ├── CreditError             402 or a credit/quota message: stop the whole run
        └── OutcomeUnknownError     a generate POST was sent but its answer was lost: the job
                                    may exist and be billed, so it must be reconciled, never
                                    re-posted blindly

Outcomes of jobs are data (ledger records); only these errors, bugs and ledger I/O failures
propagate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.domain import Problem

EXIT_OK = 0
EXIT_JOBS_FAILED = 1
EXIT_USAGE = 2
EXIT_HALTED = 3
EXIT_INTERRUPTED = 130


class KlingBatchError(Exception):
    """Root of every error kling-batch raises on purpose."""

    exit_code: int = EXIT_USAGE


class UsageError(KlingBatchError):
    """Bad input or configuration: nothing was submitted."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class ManifestError(UsageError):
    """A manifest (or its schemas) has problems; `problems` lists every one of them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        super().__init__(f"{len(errors)} problem(s) in the manifest")


class FolderError(UsageError):
    """The output folder cannot be written when a command starts (read-only, no
    permission, no space): a one-line error, exit 2, nothing sent."""


class LockedError(KlingBatchError):
    """Another live runner holds the output folder."""

    exit_code = EXIT_USAGE


class HaltError(KlingBatchError):
    """The run halted on purpose (budget, auth/credit failure, failure threshold)."""

    exit_code = EXIT_HALTED


class LedgerWriteError(HaltError):
    """A ledger write failed: nothing may go on without a durable record. Resumable."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{message} — {hint}" if hint else message)


class SharedLedgerError(LedgerWriteError):
    """The shared ledger (PostgreSQL) stayed unreachable past the run's patience: the run
    halts (exit 3) with every durable record in place, and resumes with the same command."""


class FencedError(KlingBatchError):
    """This runner no longer owns the job it was about to record (its lease lapsed and
    another runner took the job over): the write was refused, the job is dropped here. Also
    raised for an intent that waited for a batch-wide place while this runner began to
    stop: nothing was written, the job is handed back."""

    exit_code = EXIT_HALTED


class LocalWriteError(HaltError):
    """A file of the output folder could not be written while a run was going (disk full,
    read-only, no permission); `needed` is the size of what was being written, in bytes,
    when known, `cause` the OSError. The run halts (exit 3) and resumes once the folder can
    be written."""

    def __init__(
        self, message: str, *, needed: int | None = None, cause: OSError | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.needed = needed
        self.cause = cause


class ObjectStoreError(HaltError):
    """The object store answered with an error, or not at all, after bounded retries; `key`
    is the object concerned, `status` the HTTP status when there was one."""

    def __init__(self, message: str, *, key: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.status = status


class UploadVerificationError(ObjectStoreError):
    """The object stored is not the file sent (size, sha256 or the store's own checksum
    differ), or the file changed on disk while it was sent; the object was removed."""


class ApiError(KlingBatchError):
    """The Scenario API answered with an error, or the transport failed."""

    exit_code = EXIT_HALTED

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: object = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.method = method
        self.url = url


class TransientApiError(ApiError):
    """A failure that may go away: 408, 409, 429, 5xx, connection resets, timeouts."""


class RateLimitedError(TransientApiError):
    """HTTP 429; `retry_after` is the server's delay in seconds when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class PermanentApiError(ApiError):
    """400, 404, 422 and other 4xx answers: the same request will fail again."""


class AuthError(ApiError):
    """401 or 403: the credentials are wrong or lack the right; stops the run."""


class CreditError(ApiError):
    """402 or a credit/quota message: no more money to spend; stops the run."""


class OutcomeUnknownError(ApiError):
    """A generate POST left the machine and its answer was lost (timeout, reset, 5xx).

    The job may exist and be billed. The caller records the request as unknown and
    reconciles it against `GET /v1/jobs` before anything is posted again.
    """
