"""Credentials: read from the SDK's environment variables as the SDK reads them, and never
shown in a repr or a message."""

from __future__ import annotations

import pytest

from runner.api import Credentials, credentials_from_env


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"SCENARIO_SDK_API_KEY": "k", "SCENARIO_SDK_API_SECRET": "s"}, "Basic azpz"),
        ({"SCENARIO_SDK_JWT": "tok"}, "Bearer tok"),
        (
            {"SCENARIO_SDK_API_KEY": "k", "SCENARIO_SDK_API_SECRET": "s", "SCENARIO_SDK_JWT": "t"},
            "Basic azpz",  # Basic wins, as in the SDK
        ),
        ({"SCENARIO_SDK_API_KEY": "k"}, None),  # half a pair is no credential
        ({"SCENARIO_SDK_API_KEY": "k", "SCENARIO_SDK_JWT": "t"}, "Bearer t"),
        ({"SCENARIO_SDK_JWT": "  "}, None),
    ],
)
def test_credentials_from_env(env: dict[str, str], expected: str | None) -> None:
    credentials = credentials_from_env(env)
    if expected is None:
        assert credentials is None
    else:
        assert credentials == Credentials(expected)


def test_credentials_never_show_the_secret() -> None:
    credentials = Credentials("Bearer super-secret-token")
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert "super-secret" not in text
        assert "Bearer" in text
