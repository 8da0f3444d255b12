"""Time, as one injected thing: a monotonic clock, the wall clock, and sleep.

Durations (deadlines, backoff, rates) use `monotonic`; instants that leave the process (the
ledger's `ts`, the API's `createdAfter`/`updatedAfter`) use `wall`. Only the CLI builds a
real `Clock`; tests pass a fake one whose sleep advances both. The ISO 8601 spelling the
ledger and the API share is written here once: UTC, milliseconds, a `Z`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio


def _wall_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Clock:
    """The three faces of time a run uses; the defaults are the real ones."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = _wall_now
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep)

    def now_iso(self) -> str:
        """The wall clock's now, as the ledger writes it."""
        return format_iso(self.wall())


REAL_CLOCK = Clock()


def format_iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a `Z`: `2026-12-01T07:46:53.123Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """ISO 8601 with a `Z` or an offset (the API mixes precisions); naive means UTC."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
