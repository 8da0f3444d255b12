"""How a batch follows its jobs: the mode, the cadence and the per-job deadline.

Kling jobs take from tens of seconds to many minutes. Polling fast at first notices quick
completions; backing off geometrically keeps the requests per job low for the long ones
(about 20 requests for a 5-minute job with the defaults). The statuses that end a job are a
closed set (`success`, `failure`, `canceled`); anything else — including a status this
version does not know — means "still running" until the job's deadline.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from runner.domain import RemoteJob
from runner.errors import PermanentApiError


class PollMode(enum.Enum):
    """`--poll-mode`: one listing per interval for the whole batch, or one GET per job."""

    LIST = "list"
    EACH = "each"


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Cadence (seconds), the per-job deadline, and how long a job the API answers 404
    for is given before it is called lost (`lost_grace`, seconds)."""

    initial: float = 2.0
    factor: float = 1.5
    maximum: float = 15.0
    deadline: float = 3600.0
    lost_grace: float = 120.0


def next_poll_delay(policy: PollPolicy, polls_done: int) -> float:
    """Seconds to wait before the next poll, after `polls_done` polls of one job."""
    return min(policy.initial * policy.factor**polls_done, policy.maximum)


class PollTimeout(Exception):
    """The job had no terminal status within its deadline; `last` is what was seen."""

    def __init__(self, last: RemoteJob | None) -> None:
        super().__init__("no terminal status before the deadline")
        self.last = last


class JobGone(Exception):
    """The API kept answering 404 for the job for longer than the grace: it does not know it
    (it was never created under these credentials, or the API dropped it)."""

    def __init__(self, job_id: str, seconds: float) -> None:
        super().__init__(f"the API has answered 404 for job {job_id} for {seconds:.0f} s")
        self.job_id = job_id
        self.seconds = seconds


def is_not_found(exc: BaseException) -> bool:
    """True for the API's 404 (after the client's own retries, which skip it)."""
    return isinstance(exc, PermanentApiError) and exc.status == 404


@dataclass(slots=True)
class NotFound:
    """A job's run of 404 answers: since when (monotonic seconds), None while it answers.

    A 404 right after creation can be the API's own lag, so one answer is not enough: the
    job is gone only once the 404s have lasted `grace` seconds with no answer between.
    """

    grace: float
    since: float | None = None

    def answered(self) -> None:
        self.since = None

    def gone(self, job_id: str, now: float) -> JobGone | None:
        """Record a 404 at `now`; the JobGone to raise once the grace has passed."""
        if self.since is None:
            self.since = now
        missing = now - self.since
        return JobGone(job_id, missing) if missing >= self.grace else None
