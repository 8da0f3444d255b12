"""Sending one API request: headers, credentials on the API origin only, retries, pacing.

`ApiTransport.call` is the single road to the Scenario API. It is the one place that adds
the `Authorization` header, and it checks the URL's origin first (aiohttp itself drops the
header when a redirect leaves the origin). The retry decisions are the pure functions of
runner/api/failures.py and runner/api/backoff.py; this module only sequences the I/O around them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from runner import __version__
from runner.api.auth import Credentials
from runner.api.backoff import Pacer, RetryPolicy, next_retry_delay
from runner.api.failures import (
    Failure,
    failure_for_exception,
    failure_for_status,
    final_error,
    retry_allowed,
)
from runner.clock import Clock

log = logging.getLogger("runner.api.client")

USER_AGENT = f"kling-batch/{__version__}"


def encode_json(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as the SDK sends it; NaN and infinities are refused (ValueError)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode_body(raw: bytes) -> Any:
    """Parsed JSON, or the text when the body is not JSON (error pages), or None if empty."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True, slots=True)
class Answer:
    """A 2xx answer: its status (200, 269…) and decoded body."""

    status: int
    headers: Mapping[str, str]
    payload: Any


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """What varies per run: backoff policy, shared pause, injected clock/random, timeouts (s)."""

    policy: RetryPolicy
    pacer: Pacer
    clock: Clock
    random: Callable[[], float]
    request_timeout: float
    connect_timeout: float


class ApiTransport:
    """Sends requests to one API base URL with credentials, retries and run-wide pacing."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        credentials: Credentials,
        settings: TransportSettings,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self.origin = URL(self._base).origin()
        self._credentials = credentials
        self._s = settings
        # sock_connect rather than connect: waiting for a free pooled connection is not a
        # network fault, and callers own overall deadlines.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout, sock_read=settings.request_timeout
        )

    def url(self, path: str, query: Mapping[str, str] | None = None) -> URL:
        """base + "/" + path (already percent-encoded) + query, commas left literal.

        See docs/api.md §1.1.
        """
        tail = f"?{urlencode(query, safe=',')}" if query else ""
        return URL(f"{self._base}/{path}{tail}", encoded=True)

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        creates_job: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> Answer:
        """Send until a 2xx answer, retrying as runner/api/failures.py allows; raise its error.

        `creates_job` marks a request that spends money: it is retried only when it
        provably created nothing, and otherwise raises OutcomeUnknownError. `before_send`
        runs right before each attempt goes out, after any pacing wait; what it raises
        stops the call (nothing of that attempt was sent).
        """
        url = self.url(path, query)
        data = encode_json(body) if body is not None else None
        attempts = max(1, self._s.policy.max_attempts)
        for attempt in range(1, attempts + 1):
            await self._wait_for_pacer()
            if before_send is not None:
                before_send()
            outcome = await self._attempt(method, url, data)
            if isinstance(outcome, Answer):
                return outcome
            if attempt == attempts or not retry_allowed(outcome, creates_job=creates_job):
                raise final_error(outcome, creates_job=creates_job)
            await self._back_off(outcome, retries_taken=attempt - 1, attempts=attempts)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(self, method: str, url: URL, data: bytes | None) -> Answer | Failure:
        where = url.path_qs
        try:
            answer = await self._exchange(method, url, data)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return failure_for_exception(exc, method=method, url=where)
        if 200 <= answer.status < 300:
            return answer
        return failure_for_status(
            answer.status,
            answer.payload,
            answer.headers,
            method=method,
            url=where,
            now=self._s.clock.wall(),
        )

    async def _exchange(self, method: str, url: URL, data: bytes | None) -> Answer:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if url.origin() == self.origin:
            headers["Authorization"] = self._credentials.authorization
        async with self._session.request(
            method, url, data=data, headers=headers, timeout=self._timeout
        ) as response:
            raw = await response.read()
            return Answer(response.status, response.headers, decode_body(raw))

    async def _back_off(self, failure: Failure, *, retries_taken: int, attempts: int) -> None:
        delay = next_retry_delay(
            self._s.policy, retries_taken, failure.retry_hint, self._s.random()
        )
        log.info(
            "retrying in %.2f s (attempt %d of %d): %s",
            delay,
            retries_taken + 2,
            attempts,
            failure.error.message,
        )
        if failure.error.status == 429:
            # The API asked the whole client to slow down: every request (this one included,
            # at the top of its next attempt) waits out the same pause.
            self._s.pacer.pause_for(delay)
        else:
            await self._s.clock.sleep(delay)

    async def _wait_for_pacer(self) -> None:
        # Loop because another 429 may extend the pause while we sleep. Bounded, so that an
        # injected sleep which does not advance the pacer's clock cannot spin forever.
        for _ in range(max(1, self._s.policy.max_attempts)):
            delay = self._s.pacer.delay_now()
            if delay <= 0:
                return
            await self._s.clock.sleep(delay)
