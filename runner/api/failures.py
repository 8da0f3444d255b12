"""What a failed API attempt means: which error class, whether to try again.

Pure functions over (status, body, headers) or a transport exception, so that every rule is
table-tested and `runner.api.client` only sequences I/O. The one rule that matters most for
money: a generate POST is retried only when it provably never left (a connection that
never opened); a 429 created nothing and is handed to the batch as backpressure. Any other
failure after the request left the machine makes its outcome unknown: the job may exist
and be billed, so it becomes `OutcomeUnknownError` and is reconciled by the caller, never
re-posted here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from runner.api.backoff import retry_hint_from_headers, should_retry
from runner.api.wire import error_message
from runner.errors import (
    ApiError,
    AuthError,
    CreditError,
    OutcomeUnknownError,
    PermanentApiError,
    RateLimitedError,
    TransientApiError,
)

# A 4xx whose message says the account is out of money is a credit problem: the API is not
# consistent about 402 vs 400/403 for "not enough creative units". Only precise phrases
# count, since 400/422 messages may echo the user's input ("a credit card ad").
_CREDIT_WORDS = re.compile(
    r"not enough (?:creative[ _-]?units?|credits?)|insufficient (?:creative[ _-]?units?|"
    r"credits?|funds|balance)|(?:credit|creative[ _-]?units?) (?:limit|balance) "
    r"(?:reached|exceeded|exhausted)|quota (?:reached|exceeded|exhausted)",
    re.I,
)

_CREDENTIALS_HINT = "check SCENARIO_SDK_API_KEY / SCENARIO_SDK_API_SECRET or SCENARIO_SDK_JWT"


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt: the error it maps to, plus what the retry decision needs.

    `sent` is False only when the request provably never reached the server (the connection
    could not be opened); `retry_hint` is the server's requested delay in seconds.
    """

    error: ApiError
    headers: Mapping[str, str] = field(default_factory=dict)
    sent: bool = True
    retry_hint: float | None = None


def failure_for_status(
    status: int, body: Any, headers: Mapping[str, str], *, method: str, url: str, now: datetime
) -> Failure:
    """Map a non-2xx answer to our error tree (see runner/errors.py), keeping its headers."""
    detail = error_message(body)
    message = f"{method} {url}: HTTP {status}" + (f": {detail}" if detail else "")
    fields: dict[str, Any] = {"status": status, "body": body, "method": method, "url": url}
    hint = retry_hint_from_headers(headers, now)
    error: ApiError
    if status == 401:
        error = AuthError(f"{message} — {_CREDENTIALS_HINT}", **fields)
    elif status == 402:
        error = CreditError(f"{message} — top up creative units and resume", **fields)
    elif status == 429:
        error = RateLimitedError(message, retry_after=hint, **fields)
    elif status in (408, 409) or status >= 500:
        error = TransientApiError(message, **fields)
    elif _CREDIT_WORDS.search(detail):
        error = CreditError(f"{message} — top up creative units and resume", **fields)
    elif status == 403:
        error = AuthError(f"{message} — {_CREDENTIALS_HINT}", **fields)
    else:
        error = PermanentApiError(message, **fields)
    return Failure(error=error, headers=headers, sent=True, retry_hint=hint)


def _never_sent(exc: BaseException) -> bool:
    # ClientConnectorError: no connection could be opened (refused, DNS, TLS handshake).
    # ConnectionTimeoutError: the connect phase timed out. In both cases not one byte of
    # the request left, so even a generate POST may be tried again.
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _describe(exc: BaseException) -> str:
    if _never_sent(exc):
        return "could not connect"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer was cut off"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "the connection was lost"
    return "transport error"


def failure_for_exception(exc: BaseException, *, method: str, url: str) -> Failure:
    """Map a transport exception (aiohttp.ClientError, TimeoutError) to a transient failure."""
    text = str(exc) or type(exc).__name__
    error = TransientApiError(f"{method} {url}: {_describe(exc)} ({text})", method=method, url=url)
    return Failure(error=error, sent=not _never_sent(exc))


def retry_allowed(failure: Failure, *, creates_job: bool) -> bool:
    """Whether this failed attempt may be tried again (attempt budget aside).

    For ordinary calls, the SDK's rules (`should_retry`). For a call that creates a job, only
    a connection that never opened. A 429 on a generate POST created nothing too, but it is
    backpressure (a rate limit or the plan's parallel-job cap): it is raised at once, with
    the server's delay, for the batch's admission to act on — retrying it here would hold
    the job's place and pause every other request of the run.
    """
    if not creates_job:
        return should_retry(failure.error.status, failure.headers)
    return not failure.sent


def final_error(failure: Failure, *, creates_job: bool) -> ApiError:
    """The error to raise once we stop trying.

    For a job-creating call, a transient failure after the request was sent (timeout, reset,
    408, 409, 5xx) means the job may exist: `OutcomeUnknownError`. A 429 and a refused
    connection created nothing and stay transient; 4xx answers keep their class.
    """
    error = failure.error
    if not creates_job or not failure.sent:
        return error
    if isinstance(error, RateLimitedError) or not isinstance(error, TransientApiError):
        return error
    return OutcomeUnknownError(
        f"{error.message} — the job may have been created and billed; reconcile it against "
        "the job list before posting again",
        status=error.status,
        body=error.body,
        method=error.method,
        url=error.url,
    )
