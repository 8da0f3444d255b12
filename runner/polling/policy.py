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
