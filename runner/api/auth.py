"""Credentials for the Scenario API, and the guard that keeps them off other hosts.

The SDK's variables decide the scheme (docs/api.md §1.2). The secret lives only in the
`Authorization` value, which no repr or str ever shows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL


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


def api_origin(base_url: str) -> str:
    """scheme://host[:port] of an API base URL: what a batch's jobIds belong to."""
    return str(URL(base_url).origin())


def account_of(credentials: Credentials) -> str | None:
    """A one-way tag of the account the credentials name, or None when they name none.

    Basic credentials name an API key (keys are project-scoped); a JWT may name its subject
    (`sub`). The tag is a short SHA-256 of that name, so it can be stored and compared
    without keeping the key. Jobs made under one account are 404 under another.
    """
    scheme, _, value = credentials.authorization.partition(" ")
    name: str | None = None
    if scheme == "Basic":
        try:
            name = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            name = None
        name = f"key:{name}" if name else None
    elif scheme == "Bearer":
        name = _jwt_subject(value)
    return None if not name else f"{name.partition(':')[0]}-" + hashlib.sha256(
        name.encode()).hexdigest()[:16]


def _jwt_subject(token: str) -> str | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return f"sub:{subject}" if isinstance(subject, str) and subject else None
