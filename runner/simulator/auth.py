"""Who may call the API: HTTP Basic (key:secret) or Bearer, as the SDK sends them.

With no credentials configured any non-empty key and secret, or any non-empty token, is
accepted. Once `api_key`/`api_secret` or `bearer` is configured, only the configured scheme
and values are: a restricted simulator does not keep a side door open.
"""

from __future__ import annotations

import base64
import binascii

from runner.simulator.config import SimulatorConfig


def _basic_ok(value: str, config: SimulatorConfig) -> bool:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    key, separator, secret = decoded.partition(":")
    if not separator or not key or not secret:
        return False
    if config.api_key is None and config.api_secret is None:
        return config.bearer is None
    key_ok = config.api_key is None or key == config.api_key
    secret_ok = config.api_secret is None or secret == config.api_secret
    return key_ok and secret_ok


def _bearer_ok(value: str, config: SimulatorConfig) -> bool:
    token = value.strip()
    if not token:
        return False
    if config.bearer is None:
        return config.api_key is None and config.api_secret is None
    return token == config.bearer


def authorized(header: str | None, config: SimulatorConfig) -> bool:
    """Whether an `Authorization` header value grants access under `config`."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        return _basic_ok(value, config)
    if scheme.lower() == "bearer":
        return _bearer_ok(value, config)
    return False
