"""Following jobs to a terminal status: the policy (mode, cadence, deadline) and the two
ways `--poll-mode` names — `each` (one GET per job) and `list` (one listing per interval)."""

from runner.polling.cadence import (
    CadencePolicy,
    Durations,
    InFlight,
    next_listing_delay,
)
from runner.polling.each import wait_terminal
from runner.polling.listing import ListWatcher, next_cursor, server_seconds
from runner.polling.policy import (
    JobGone,
    NotFound,
    PollMode,
    PollPolicy,
    PollTimeout,
    is_not_found,
    next_poll_delay,
)

__all__ = [
    "CadencePolicy",
    "Durations",
    "InFlight",
    "JobGone",
    "ListWatcher",
    "NotFound",
    "PollMode",
    "PollPolicy",
    "PollTimeout",
    "is_not_found",
    "next_cursor",
    "next_listing_delay",
    "next_poll_delay",
    "server_seconds",
    "wait_terminal",
]
