"""Failures as the client classifies them: the error class of each HTTP status and transport
exception, the server's delay on a 429, and which failures may be retried (a generate that
may have created a job never is) and what error each ends as."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from runner.api import (
    Failure,
    failure_for_exception,
    failure_for_status,
    final_error,
    retry_allowed,
)
from runner.errors import (
    ApiError,
    AuthError,
    CreditError,
    OutcomeUnknownError,
    PermanentApiError,
    RateLimitedError,
    TransientApiError,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind"),
    [
        (400, {"message": "prompt is required"}, {}, PermanentApiError),
        (404, {"message": "no such job"}, {}, PermanentApiError),
        (422, {"message": "duration must be a string"}, {}, PermanentApiError),
        (418, None, {}, PermanentApiError),
        (401, {"message": "bad key"}, {}, AuthError),
        (403, {"message": "forbidden"}, {}, AuthError),
        (402, {"message": "pay"}, {}, CreditError),
        (400, {"message": "Not enough creative units"}, {}, CreditError),
        (403, {"message": "Insufficient credits for this team"}, {}, CreditError),
        (422, {"message": "monthly quota exceeded"}, {}, CreditError),
        (429, {"message": "quota of requests per second"}, {}, RateLimitedError),
        (408, None, {}, TransientApiError),
        (409, None, {}, TransientApiError),
        (500, "oops", {}, TransientApiError),
        (503, {"message": "credit service down"}, {}, TransientApiError),
    ],
)
def test_failure_for_status(
    status: int, body: Any, headers: dict[str, str], kind: type[ApiError]
) -> None:
    failure = failure_for_status(status, body, headers, method="GET", url="/v1/x", now=NOW)
    assert type(failure.error) is kind
    assert failure.error.status == status
    assert failure.sent
    assert "GET /v1/x: HTTP" in failure.error.message


def test_a_429_carries_the_server_delay() -> None:
    failure = failure_for_status(
        429, None, {"retry-after-ms": "250"}, method="POST", url="/v1/g", now=NOW
    )
    assert isinstance(failure.error, RateLimitedError)
    assert failure.error.retry_after == 0.25
    assert failure.retry_hint == 0.25


def _os_error() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, OSError(111, "refused"))


@pytest.mark.parametrize(
    ("exc", "sent", "words"),
    [
        (_os_error(), False, "could not connect"),
        (aiohttp.ConnectionTimeoutError("connect"), False, "could not connect"),
        (aiohttp.SocketTimeoutError("read"), True, "no answer in time"),
        (TimeoutError(), True, "no answer in time"),
        (aiohttp.ServerDisconnectedError(), True, "connection was lost"),
        (aiohttp.ClientOSError(104, "reset"), True, "connection was lost"),
        (aiohttp.ClientPayloadError("short"), True, "cut off"),
        (aiohttp.ClientError("odd"), True, "transport error"),
    ],
)
def test_failure_for_exception(exc: BaseException, sent: bool, words: str) -> None:
    failure = failure_for_exception(exc, method="POST", url="/v1/g")
    assert type(failure.error) is TransientApiError
    assert failure.sent is sent
    assert words in failure.error.message


def _status(status: int, headers: dict[str, str] | None = None) -> Failure:
    return failure_for_status(status, None, headers or {}, method="POST", url="/g", now=NOW)


UNSENT = failure_for_exception(aiohttp.ConnectionTimeoutError(), method="POST", url="/g")
RESET = failure_for_exception(aiohttp.ServerDisconnectedError(), method="POST", url="/g")


@pytest.mark.parametrize(
    ("failure", "ordinary", "generate", "generate_final"),
    [
        (_status(500), True, False, OutcomeUnknownError),
        (_status(503, {"x-should-retry": "true"}), True, False, OutcomeUnknownError),
        (_status(408), True, False, OutcomeUnknownError),
        (_status(409), True, False, OutcomeUnknownError),
        (RESET, True, False, OutcomeUnknownError),
        (_status(429), True, False, RateLimitedError),  # backpressure: for the batch
        (_status(429, {"x-should-retry": "false"}), False, False, RateLimitedError),
        (UNSENT, True, True, TransientApiError),
        (_status(500, {"x-should-retry": "false"}), False, False, OutcomeUnknownError),
        (_status(400), False, False, PermanentApiError),
        (_status(422), False, False, PermanentApiError),
        (_status(401), False, False, AuthError),
        (_status(402), False, False, CreditError),
    ],
)
def test_retry_and_final_error_rules(
    failure: Failure, ordinary: bool, generate: bool, generate_final: type[ApiError]
) -> None:
    assert retry_allowed(failure, creates_job=False) is ordinary
    assert retry_allowed(failure, creates_job=True) is generate
    assert type(final_error(failure, creates_job=True)) is generate_final
    # Ordinary calls keep the error they got.
    assert final_error(failure, creates_job=False) is failure.error


def test_outcome_unknown_says_what_to_do() -> None:
    error = final_error(_status(502), creates_job=True)
    assert "reconcile" in error.message
    assert error.status == 502


@pytest.mark.parametrize(
    ("status", "message", "credit"),
    [
        (400, 'Invalid input: prompt "a credit card ad" is too long', False),
        (422, "quota of the prompt field: 2500 characters", False),
        (400, "Not enough creative units to run this generation", True),
        (403, "Insufficient credits", True),
        (402, "Payment required", True),
    ],
)
def test_only_precise_money_phrases_halt_as_credit_failures(
    status: int, message: str, credit: bool
) -> None:
    failure = failure_for_status(status, {"message": message}, {}, method="POST",
                                 url="generate/custom/m", now=datetime.now(UTC))
    assert isinstance(failure.error, CreditError) is credit
