"""How to reach the object store, from the AWS conventions and nothing else.

`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (a custom endpoint: MinIO, moto, Ceph …;
addressed path-style, `http://host/bucket/key`, since such servers rarely have a DNS name
per bucket), `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN` for
temporary credentials), `AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-east-1.

The keys are read from the environment given (the CLI passes `os.environ`), never from the
command line, and never from the Scenario API's variables: the two sets of credentials
live in two configs and two HTTP sessions, so neither can reach the other's server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from runner.errors import UsageError

DEFAULT_REGION = "us-east-1"
_CREDENTIALS_HINT = ("export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... (and "
                     "AWS_ENDPOINT_URL for a server other than AWS)")


@dataclass(frozen=True, slots=True)
class S3Config:
    """Endpoint, region and credentials of the object store (secrets never in `repr`)."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    endpoint_url: str | None = None
    region: str = DEFAULT_REGION

    @property
    def path_style(self) -> bool:
        """Path-style addressing (`endpoint/bucket/key`): for every custom endpoint."""
        return self.endpoint_url is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Config:
        """The config the AWS variables of `env` describe. UsageError when the credentials
        are missing (or half there) or the endpoint is not an http(s) URL."""
        key, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
        if not key or not secret:
            missing = " and ".join(n for n, v in (("AWS_ACCESS_KEY_ID", key),
                                                  ("AWS_SECRET_ACCESS_KEY", secret)) if not v)
            raise UsageError(f"the object store needs credentials: {missing} not set",
                             hint=_CREDENTIALS_HINT)
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        if endpoint is not None:
            parts = urlsplit(endpoint)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise UsageError(f"AWS_ENDPOINT_URL(_S3) {endpoint!r} is not an http(s) URL",
                                 hint="e.g. AWS_ENDPOINT_URL=http://127.0.0.1:9000")
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        return cls(access_key_id=key, secret_access_key=secret,
                   session_token=env.get("AWS_SESSION_TOKEN") or None,
                   endpoint_url=endpoint, region=region)
