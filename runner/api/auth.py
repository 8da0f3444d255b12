"""Credentials for the Scenario API, and the guard that keeps them off other hosts.

The SDK's variables decide the scheme (scenario-api.md 1.2). The secret lives only in the
`Authorization` value, which no repr or str ever shows.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True, slots=True)
class Credentials:
    """The full `Authorization` header value ("Basic …" or "Bearer …"); never printed."""

    authorization: str

    def __repr__(self) -> str:
        scheme = self.authorization.split(" ", 1)[0]
        return f"Credentials(scheme={scheme!r}, secret=<hidden>)"

    __str__ = __repr__


def credentials_from_env(env: Mapping[str, str]) -> Credentials | None:
    """Credentials from the SDK's variables, or None when none are set.

    `SCENARIO_SDK_API_KEY` + `SCENARIO_SDK_API_SECRET` give HTTP Basic and win over
    `SCENARIO_SDK_JWT` (Bearer), as in the SDK. A key without a secret counts as unset.
    """
    key = env.get("SCENARIO_SDK_API_KEY", "").strip()
    secret = env.get("SCENARIO_SDK_API_SECRET", "").strip()
    if key and secret:
        token = base64.b64encode(f"{key}:{secret}".encode()).decode("ascii")
        return Credentials(f"Basic {token}")
    jwt = env.get("SCENARIO_SDK_JWT", "").strip()
    return Credentials(f"Bearer {jwt}") if jwt else None


def ensure_anonymous_session(session: aiohttp.ClientSession) -> None:
    """Refuse a session that would attach credentials by itself (to CDN or part URLs).

    Raises ValueError: that is a wiring bug, and it would leak the API secret to a host
    that is not the API.
    """
    if session.auth is not None or "Authorization" in session.headers:
        raise ValueError(
            "this aiohttp session adds an Authorization header to every request; give the "
            "runner a session without default credentials (the client adds them per request)"
        )
