"""Backoff maths, retry decisions and the run-wide pause: pure functions and one small state.

The numbers follow the official SDK (docs/api.md §5.2, §5.3) so that we behave like the
client Scenario tests against: `min(0.5 * 2**n, 8) * (1 - 0.25 * r)` seconds, with a server
hint (`retry-after-ms`, `retry-after`) used instead when it lies in (0, 60] seconds.

Nothing here sleeps or sends; `runner.api.client` sequences the I/O around these decisions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

# Statuses the SDK retries whatever the method (docs/api.md §5.2); >= 500 is added in code.
_RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently one request is retried.

    `max_attempts` counts the first try. Delays are in seconds. `jitter` is the largest
    fraction taken off a computed delay (the SDK's jitter only ever shortens it).
    `max_server_delay` is the longest server hint we obey; longer hints are ignored, as the
    SDK does, so that one odd header cannot stall a run for hours.
    """

    max_attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    max_server_delay: float = 60.0


def next_retry_delay(
    policy: RetryPolicy, retries_taken: int, server_hint: float | None, random_value: float
) -> float:
    """Seconds to wait before the retry that follows `retries_taken` earlier retries.

    `random_value` is in [0, 1) (inject `random.random()`); `server_hint` is what
    `retry_hint_from_headers` found, used only when 0 < hint <= policy.max_server_delay.
    """
    if server_hint is not None and 0 < server_hint <= policy.max_server_delay:
        return server_hint
    base = min(policy.initial_delay * 2.0 ** max(retries_taken, 0), policy.max_delay)
    return base * (1.0 - policy.jitter * random_value)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # aiohttp hands us a case-insensitive multidict; tests and plain dicts may not be.
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def retry_hint_from_headers(headers: Mapping[str, str], now: datetime) -> float | None:
    """The server's requested delay in seconds, or None when it gave none we can read.

    Checked in the SDK's order: `retry-after-ms` (float milliseconds), `retry-after` as float
    seconds, then `retry-after` as an HTTP-date (relative to `now`, which must be aware).
    The value is returned as given (possibly <= 0 or huge): `next_retry_delay` judges it.
    """
    millis = _header(headers, "retry-after-ms")
    if millis is not None and (value := _float_or_none(millis.strip())) is not None:
        return value / 1000.0
    after = _header(headers, "retry-after")
    if after is None:
        return None
    if (seconds := _float_or_none(after.strip())) is not None:
        return seconds
    try:
        when = parsedate_to_datetime(after)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return (when - now).total_seconds()


def should_retry(status: int | None, headers: Mapping[str, str]) -> bool:
    """Whether a failed attempt may be tried again, by the SDK's rules (docs/api.md §5.2).

    `status` None means a transport failure (no answer): retried. An explicit
    `x-should-retry: true|false` header overrides the status rule.
    """
    explicit = _header(headers, "x-should-retry")
    if explicit is not None:
        if explicit.strip().lower() == "true":
            return True
        if explicit.strip().lower() == "false":
            return False
    if status is None:
        return True
    return status in _RETRYABLE_STATUSES or status >= 500


class Pacer:
    """A run-wide pause: when the API says "slow down", every request waits it out.

    One 429 with a delay pauses all requests of the run until the pause ends, so that a burst
    of 429s (one per worker) does not turn into a burst of retries. Pauses only ever extend.
    Pure state over an injectable monotonic clock; the client does the waiting.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = float("-inf")

    def pause_for(self, seconds: float) -> None:
        """Hold every request for `seconds` from now (a shorter pause never cuts a longer one)."""
        if seconds > 0:
            self._until = max(self._until, self._clock() + seconds)

    def delay_now(self) -> float:
        """Seconds left before requests may go out again; 0.0 when there is no pause."""
        return max(0.0, self._until - self._clock())
