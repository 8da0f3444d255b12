"""Where `run`, `plan --estimate` and `cancel` send requests, and with which credentials."""

from __future__ import annotations

import base64

import pytest

from runner.api import DEFAULT_BASE_URL
from runner.cli.endpoint import api_endpoint
from runner.errors import UsageError

BASIC = {"SCENARIO_SDK_API_KEY": "k", "SCENARIO_SDK_API_SECRET": "s"}


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        ("http://flag.test/v1/", {**BASIC, "SCENARIO_BASE_URL": "http://env.test/v1"},
         "http://flag.test/v1"),
        (None, {**BASIC, "SCENARIO_BASE_URL": "http://env.test/v1"}, "http://env.test/v1"),
        (None, BASIC, DEFAULT_BASE_URL),
    ],
    ids=["flag-over-env", "env-over-default", "default"],
)
def test_base_url_precedence(flag: str | None, env: dict[str, str], expected: str) -> None:
    assert api_endpoint(flag, env)[0] == expected


def test_basic_wins_over_bearer_like_the_sdk() -> None:
    _, creds = api_endpoint(None, {**BASIC, "SCENARIO_SDK_JWT": "jwt"})
    assert creds.authorization == "Basic " + base64.b64encode(b"k:s").decode()
    _, bearer = api_endpoint(None, {"SCENARIO_SDK_JWT": "jwt"})
    assert bearer.authorization == "Bearer jwt"
    assert "jwt" not in repr(bearer)
    assert base64.b64encode(b"k:s").decode() not in repr(creds)  # never printed


def test_no_credentials_is_a_usage_error_naming_the_variables() -> None:
    with pytest.raises(UsageError) as err:
        api_endpoint(None, {"SCENARIO_BASE_URL": "http://env.test/v1"})
    assert "SCENARIO_SDK_API_KEY" in str(err.value) and "--simulate" in str(err.value)
