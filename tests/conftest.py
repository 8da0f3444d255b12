"""Shared fixtures: the in-process Scenario API simulator on real loopback ports.

`simulator` is a fast, fault-free simulator (jobs finish in 0.05-0.2 s);
`simulator_factory(**config)` starts one with any `SimulatorConfig` fields (same fast
defaults); `sim_client` is a tiny authenticated aiohttp helper for talking to it raw.
Only fixtures live here; what they are built from is in `tests/helpers/`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import pytest

from runner.simulator import Simulator, SimulatorConfig, start_simulator
from tests.helpers.postgres import fresh_database, url_form
from tests.helpers.s3 import MotoServer, start_moto
from tests.helpers.simulator import FAST_CONFIG, SimClient, SimulatorFactory


@pytest.fixture(autouse=True)
def own_batch_index(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own per-user index of batches (`$XDG_STATE_HOME`), so no test
    reads or writes the user's, nor another test's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    """A fast, fault-free simulator on free loopback ports."""
    async with start_simulator(SimulatorConfig(**FAST_CONFIG)) as sim:
        yield sim


@pytest.fixture
def simulator_factory() -> SimulatorFactory:
    """`async with simulator_factory(seed=3, faults={...}) as sim:` — fast defaults apply."""

    def make(**overrides: Any) -> AbstractAsyncContextManager[Simulator]:
        return start_simulator(SimulatorConfig(**{**FAST_CONFIG, **overrides}))

    return make


@pytest.fixture
async def sim_client(simulator: Simulator) -> AsyncIterator[SimClient]:
    """A raw client for the `simulator` fixture."""
    async with aiohttp.ClientSession() as session:
        yield SimClient(session, simulator)


@pytest.fixture
async def sim_session() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp session, closed after the test."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client_for(sim_session: aiohttp.ClientSession) -> Callable[[Simulator], SimClient]:
    """`client_for(sim)`: a raw client for a simulator made with `simulator_factory`."""

    def make(sim: Simulator) -> SimClient:
        return SimClient(sim_session, sim)

    return make


@pytest.fixture
def api_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Basic credentials in the SDK's variables, and no Bearer token or base URL set."""
    monkeypatch.setenv("SCENARIO_SDK_API_KEY", "test-key")
    monkeypatch.setenv("SCENARIO_SDK_API_SECRET", "test-secret")
    monkeypatch.delenv("SCENARIO_SDK_JWT", raising=False)
    monkeypatch.delenv("SCENARIO_BASE_URL", raising=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the real server, as a postgresql:// URL
    (tests/helpers/postgres.py: fails under CI when unreachable, skips loudly elsewhere)."""
    with fresh_database() as conninfo:
        yield url_form(conninfo)
@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's S3 server in a subprocess, shared by the session (tests take their own
    bucket: `moto.new_bucket()`)."""
    with start_moto(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server
