"""What a run needs from a shared ledger, as the engine sees it (`runner.cluster` builds
one): where events go (fenced), a check right before a POST leaves, whether this runner
may list the account's jobs, and the work items as this runner claims them.

The engine runs a folder's batch without one; with one, it runs the same book, submitter,
follower and scheduler, fed by claims instead of the folder's whole list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from runner.batch.book import JobBook
from runner.batch.scheduler import WorkItem
from runner.ledger import Event


class Coordination(Protocol):
    """One runner's membership of a shared batch."""

    async def append(self, event: Event) -> None:
        """Write `event` durably if this runner still holds its job (FencedError if not)."""

    async def before_post(self, job: str) -> None:
        """FencedError unless this runner may still post `job`."""

    def before_send(self, job: str) -> None:
        """FencedError unless the POST of `job` may still leave now (right before each
        attempt's bytes go out, however long after `before_post`)."""

    async def may_list(self) -> bool:
        """Whether this runner is the account's lister (follows by job listings)."""

    def claims(
        self, book: JobBook, known_job_ids: set[str], note: Callable[[str], None]
    ) -> AsyncIterator[Sequence[WorkItem]]:
        """The work items of the jobs this runner claims, as it claims them, until the
        batch has no job left that this runner could do (it waits for the others' jobs,
        to take them over should their runner die). `known_job_ids` is the reconciler's
        set of claimed jobIds, kept up to date with the other runners'."""

    def ended(self, job: str, started: bool) -> None:
        """This runner's work on `job` ended (`started`: it did some)."""

    async def serve(self) -> None:
        """Heartbeats until cancelled; then hands back what this runner still holds."""

    async def final_events(self) -> list[Event]:
        """Every event of the batch, from the whole shared ledger (the exit code's and the
        views' source)."""
