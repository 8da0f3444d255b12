"""When to ask about a job again, and the loop that asks.

Kling jobs take from tens of seconds to many minutes. Polling fast at first notices quick
completions; backing off geometrically keeps the requests per job low for the long ones
(about 20 requests for a 5-minute job with the defaults). The statuses that end a job are a
closed set (`success`, `failure`, `canceled`); anything else — including a status this
version does not know — means "still running" until the job's deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from runner.domain import RemoteJob, RemoteStatus
from runner.errors import TransientApiError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Cadence (seconds) and the per-job deadline."""

    initial: float = 2.0
    factor: float = 1.5
    maximum: float = 15.0
    deadline: float = 3600.0


def next_poll_delay(policy: PollPolicy, polls_done: int) -> float:
    """Seconds to wait before the next poll, after `polls_done` polls of one job."""
    return min(policy.initial * policy.factor**polls_done, policy.maximum)


class PollTimeout(Exception):
    """The job had no terminal status within its deadline; `last` is what was seen."""

    def __init__(self, last: RemoteJob | None) -> None:
        super().__init__("no terminal status before the deadline")
        self.last = last


async def wait_terminal(
    get_job: Callable[[str], Awaitable[RemoteJob]],
    job_id: str,
    *,
    policy: PollPolicy,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    on_update: Callable[[RemoteJob], Awaitable[None]] | None = None,
    first_delay: float | None = None,
) -> RemoteJob:
    """Poll `job_id` until it is terminal; raises PollTimeout past the policy's deadline.

    `on_update` sees every answer (progress, the first "running"). Transient errors (after
    the client's own retries) are ridden out until the deadline; other errors propagate.
    """
    started = clock()
    last: RemoteJob | None = None
    polls = 0
    delay = policy.initial if first_delay is None else first_delay
    while True:
        if clock() - started + delay > policy.deadline:
            raise PollTimeout(last)
        await sleep(delay)
        polls += 1
        try:
            last = await get_job(job_id)
        except TransientApiError as exc:
            # The job is paid and running: an API outage delays following it, nothing more.
            log.warning("polling job %s failed (%s): trying again", job_id, exc)
            delay = next_poll_delay(policy, polls)
            continue
        if last.status is RemoteStatus.UNKNOWN:
            log.warning("job %s has an unknown status %r: still waiting", job_id, last.raw_status)
        if on_update is not None:
            await on_update(last)
        if last.status.terminal:
            return last
        delay = next_poll_delay(policy, polls)
