"""Seeded, deterministic fault decisions, as pure functions.

No global random generator: each decision is a number in [0, 1) taken from
sha256(seed, decision name, stable key, attempt). The key names the thing the decision is
about (a request fingerprint, a job id, an asset id) and the attempt counts how often that
same thing was asked before. So the faults a client meets do not depend on the order in
which concurrent requests happen to arrive, and the same seed replays the same faults.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


def draw(seed: int, name: str, key: str, attempt: int = 0) -> float:
    """A uniform number in [0, 1), fixed by its four arguments."""
    material = f"{seed}\x1f{name}\x1f{key}\x1f{attempt}".encode()
    digest = hashlib.sha256(material).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fires(rates: Mapping[str, float], seed: int, name: str, key: str, attempt: int = 0) -> bool:
    """Whether fault `name` happens for (`key`, `attempt`) at its configured rate."""
    rate = rates.get(name, 0.0)
    return rate > 0.0 and draw(seed, name, key, attempt) < rate


def pick(seed: int, name: str, key: str, choices: int, attempt: int = 0) -> int:
    """A deterministic index in range(choices)."""
    return int(draw(seed, f"{name}:pick", key, attempt) * choices)


@dataclass(frozen=True, slots=True)
class HttpFault:
    """An injected failure: an HTTP answer, or (status None) a connection reset."""

    name: str
    status: int | None
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_reset(self) -> bool:
        """True when the connection is to be reset instead of answered."""
        return self.status is None


def rate_limited(name: str, seed: int, key: str, attempt: int, delay: float) -> HttpFault:
    """A 429 whose delay hint is either `retry-after` (seconds) or `retry-after-ms`."""
    if pick(seed, name, key, 2, attempt) == 0:
        headers = {"retry-after": f"{max(1, round(delay))}"}
    else:
        headers = {"retry-after-ms": f"{round(delay * 1000)}"}
    return HttpFault(name, 429, "Too many requests: slow down and retry later.", headers)


def _server_error(name: str, seed: int, key: str, attempt: int) -> HttpFault:
    status = (500, 502, 503)[pick(seed, name, key, 3, attempt)]
    # Half of them say explicitly that a retry is welcome; the others leave it to the client.
    headers = {"x-should-retry": "true"} if pick(seed, f"{name}:hdr", key, 2, attempt) else {}
    return HttpFault(name, status, "Internal server error, please retry.", headers)


def before_request(
    rates: Mapping[str, float], seed: int, key: str, attempt: int, retry_after: float
) -> HttpFault | None:
    """The fault (if any) that stops a request before it has any effect."""
    if fires(rates, seed, "reset_before_create", key, attempt):
        return HttpFault("reset_before_create", None)
    if fires(rates, seed, "rate_limit", key, attempt):
        return rate_limited("rate_limit", seed, key, attempt, retry_after)
    if fires(rates, seed, "server_error", key, attempt):
        return _server_error("server_error", seed, key, attempt)
    if fires(rates, seed, "server_error_no_retry", key, attempt):
        headers = {"x-should-retry": "false"}
        return HttpFault("server_error_no_retry", 503, "Service unavailable.", headers)
    if fires(rates, seed, "conflict", key, attempt):
        status = (408, 409)[pick(seed, "conflict", key, 2, attempt)]
        return HttpFault("conflict", status, "Request conflicted with another one, retry.")
    return None


def after_create(
    rates: Mapping[str, float], seed: int, key: str, attempt: int
) -> HttpFault | None:
    """The fault (if any) that hides a job that was already created: the duplicate hazard."""
    if fires(rates, seed, "reset_after_create", key, attempt):
        return HttpFault("reset_after_create", None)
    if fires(rates, seed, "error_after_create", key, attempt):
        return _server_error("error_after_create", seed, key, attempt)
    return None


class Outcome(Enum):
    """How a simulated job ends if nobody cancels it."""

    SUCCESS = "success"
    CONTENT_POLICY = "content-policy"
    TRANSIENT = "transient"


def job_outcome(rates: Mapping[str, float], seed: int, job_id: str) -> Outcome:
    """The fate of a job, fixed at creation from its id."""
    if fires(rates, seed, "job_failure", job_id):
        return Outcome.CONTENT_POLICY
    if fires(rates, seed, "transient_job_failure", job_id):
        return Outcome.TRANSIENT
    return Outcome.SUCCESS


def job_duration(seed: int, job_id: str, bounds: tuple[float, float]) -> float:
    """Seconds from creation to the terminal status, uniform within `bounds`."""
    low, high = bounds
    return low + (high - low) * draw(seed, "duration", job_id)


def asset_count(seed: int, job_id: str, bounds: tuple[int, int]) -> int:
    """How many videos a successful job yields, uniform within `bounds` (at least one)."""
    low, high = max(1, bounds[0]), max(1, bounds[0], bounds[1])
    return low + pick(seed, "assets", job_id, high - low + 1)
