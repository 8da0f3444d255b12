"""Stopping on purpose: drain, halts, and the failure limit — one object owns them.

`Control` is the only place that decides whether new submissions may start. Progress
reads it (a snapshot), never the other way round. A halted run drains (jobs already at the
API are still followed and downloaded) and exits 3; re-running it resumes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from runner.errors import AuthError, CreditError, UsageError
from runner.manifest import max_failures


class HaltReason(enum.Enum):
    """Why submissions stopped before the manifest was exhausted."""

    AUTH = "the API refused the credentials"
    CREDIT = "the account is out of credits or over quota"
    FAILURES = "too many jobs failed"
    BUDGET = "the next job would pass the budget"
    DISK = "the output folder could not be written"
    STORE = "the object store could not be written"
    INTERRUPTED = "interrupted"


def halt_reason_for(exc: BaseException) -> HaltReason | None:
    """The halt an API error calls for: bad credentials or no credit stop the batch."""
    if isinstance(exc, AuthError):
        return HaltReason.AUTH
    if isinstance(exc, CreditError):
        return HaltReason.CREDIT
    return None


@dataclass(frozen=True, slots=True)
class FailureLimit:
    """`--max-failures N` or `N%` (of the manifest's jobs), counted over the folder."""

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> FailureLimit:
        """'5' or '10%' (the `maxFailures` rules); raises UsageError otherwise. None: no
        limit."""
        if text is None:
            return cls()
        try:
            count, percent = max_failures(text)
        except ValueError:
            raise UsageError(
                f"--max-failures {text!r} is not a count or a percentage",
                hint="write e.g. --max-failures 10 or --max-failures 5%",
            ) from None
        return cls(count=count, percent=percent)

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        return f"{self.percent:g}%" if self.percent is not None else "none"

    def reached(self, failures: int, total: int) -> bool:
        """True once `failures` passes the limit for a run of `total` jobs."""
        if self.count is not None and failures >= self.count:
            return True
        return self.percent is not None and total > 0 and failures * 100 >= self.percent * total


class Control:
    """Whether new submissions may start: drained by a signal, halted on purpose.

    `note` receives one line for each halt and drain (the progress display shows them).
    Failures are counted over the folder, as the budget counts spend: `failed_before` jobs
    had failed in earlier runs (and are not retried now), and `count_failure` is called for
    each job that reaches `failed` during this run. Passing `limit` halts the run, so a
    "rerun until exit 0" loop stops paying once the folder has failed enough, however many
    runs it took.
    """

    def __init__(
        self,
        *,
        total: int = 0,
        limit: FailureLimit | None = None,
        note: Callable[[str], None] = lambda _message: None,
        failed_before: int = 0,
    ) -> None:
        self.total = total
        self.limit = limit or FailureLimit()
        self.failures = 0
        self.failed_before = failed_before
        self.draining = False
        self.halt: HaltReason | None = None
        self._note = note
        self._check_failures()

    @property
    def submissions_allowed(self) -> bool:
        return not self.draining and self.halt is None

    @property
    def ending(self) -> HaltReason | None:
        """How the run ends if it ends now: the halt, else INTERRUPTED after a drain."""
        return self.halt or (HaltReason.INTERRUPTED if self.draining else None)

    def drain(self) -> None:
        """No new submissions; jobs in flight are followed to the end."""
        self.draining = True

    def halt_for(self, reason: HaltReason, detail: str) -> None:
        """Halt (the first reason wins), with one note saying why."""
        if self.halt is None:
            self.halt = reason
            self._note(f"halting: {reason.value} ({detail})")

    def halt_on(self, exc: BaseException) -> bool:
        """Halt if `exc` calls for it (`halt_reason_for`); True when it did."""
        reason = halt_reason_for(exc)
        if reason is not None:
            self.halt_for(reason, str(exc))
        return reason is not None

    def count_failure(self) -> None:
        self.failures += 1
        self._check_failures()

    def _check_failures(self) -> None:
        failed = self.failed_before + self.failures
        if failed and self.limit.reached(failed, self.total):
            self.halt_for(HaltReason.FAILURES,
                          f"{failed} of {self.total} jobs have failed in this folder, "
                          f"{self.failures} of them in this run; the limit is {self.limit}")
