"""`--poll-mode each`: one job followed by its own GETs, backing off (`policy.py`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from runner.clock import Clock
from runner.domain import RemoteJob, RemoteStatus
from runner.errors import PermanentApiError, TransientApiError
from runner.polling.policy import NotFound, PollPolicy, PollTimeout, is_not_found, next_poll_delay

log = logging.getLogger(__name__)


async def wait_terminal(
    get_job: Callable[[str], Awaitable[RemoteJob]],
    job_id: str,
    *,
    policy: PollPolicy,
    clock: Clock,
    on_update: Callable[[RemoteJob], Awaitable[None]] | None = None,
    first_delay: float | None = None,
) -> RemoteJob:
    """Poll `job_id` until it is terminal; raises PollTimeout past the policy's deadline.

    `on_update` sees every answer (progress, the first "running"). Transient errors (after
    the client's own retries) are ridden out until the deadline; a 404 until the policy's
    `lost_grace`, then JobGone; other errors propagate.
    """
    started = clock.monotonic()
    last: RemoteJob | None = None
    missing = NotFound(policy.lost_grace)
    polls = 0
    delay = policy.initial if first_delay is None else first_delay
    while True:
        if clock.monotonic() - started + delay > policy.deadline:
            raise PollTimeout(last)
        await clock.sleep(delay)
        polls += 1
        delay = next_poll_delay(policy, polls)
        try:
            last = await get_job(job_id)
        except TransientApiError as exc:
            # The job is paid and running: an API outage delays following it, nothing more.
            log.warning("polling job %s failed (%s): trying again", job_id, exc)
            continue
        except PermanentApiError as exc:
            if not is_not_found(exc):
                raise
            if (gone := missing.gone(job_id, clock.monotonic())) is not None:
                raise gone from exc
            continue
        missing.answered()
        if last.status is RemoteStatus.UNKNOWN:
            log.warning("job %s has an unknown status %r: still waiting", job_id, last.raw_status)
        if on_update is not None:
            await on_update(last)
        if last.status.terminal:
            return last
