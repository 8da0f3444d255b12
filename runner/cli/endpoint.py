"""Where the API is and who we are: from `--base-url` and the SDK's environment variables."""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path

from runner.api import DEFAULT_BASE_URL, Credentials, credentials_from_env
from runner.errors import UsageError


def api_endpoint(
    base_url_flag: str | None, env: Mapping[str, str] = os.environ
) -> tuple[str, Credentials]:
    """Base URL (flag, then $SCENARIO_BASE_URL, then the default) and credentials.

    Raises UsageError when no credentials are set: nothing is ever sent without them.
    """
    credentials = credentials_from_env(env)
    if credentials is None:
        raise UsageError(
            "no Scenario credentials: nothing was sent",
            hint="export SCENARIO_SDK_API_KEY and SCENARIO_SDK_API_SECRET (or "
            "SCENARIO_SDK_JWT); for `run`, --simulate uses the built-in simulator instead",
        )
    base_url = base_url_flag or env.get("SCENARIO_BASE_URL") or DEFAULT_BASE_URL
    return base_url.rstrip("/"), credentials


async def simulated_endpoint(
    stack: AsyncExitStack, *, seed: int = 0, profile: str = "none",
    state_file: Path | None = None, job_seconds: tuple[float, float] | None = None,
) -> tuple[str, Credentials]:
    """Start the built-in simulator on loopback ports for the life of `stack`; with
    `state_file`, it loads and keeps its jobs there (a resumed simulated run finds them)."""
    from runner.cli import output
    from runner.simulator import SimulatorConfig, start_simulator

    try:
        config = SimulatorConfig(seed=seed, profile=profile, state_file=state_file)
        if job_seconds is not None:
            config = dataclasses.replace(config, job_seconds=job_seconds)
    except ValueError as exc:
        raise UsageError(f"--sim-job-seconds: {exc}") from None
    sim = await stack.enter_async_context(start_simulator(config))
    token = base64.b64encode(b"simulated:simulated").decode()
    output.err(f"simulating the Scenario API at {sim.base_url} (no credentials, no network)")
    return sim.base_url, Credentials(f"Basic {token}")
