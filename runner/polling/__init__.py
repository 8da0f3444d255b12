"""Following jobs to a terminal status: the policy (mode, cadence, deadline) and the two
ways `--poll-mode` names — `each` (one GET per job) and `list` (one listing per interval)."""

from runner.polling.each import wait_terminal
from runner.polling.listing import ListWatcher, next_cursor
from runner.polling.policy import PollMode, PollPolicy, PollTimeout, next_poll_delay

__all__ = [
    "ListWatcher",
    "PollMode",
    "PollPolicy",
    "PollTimeout",
    "next_cursor",
    "next_poll_delay",
    "wait_terminal",
]
