"""Shared fixtures: the in-process Scenario API simulator on real loopback ports.

`simulator` is a fast, fault-free simulator (jobs finish in 0.05-0.2 s);
`simulator_factory(**config)` starts one with any `SimulatorConfig` fields (same fast
defaults); `sim_client` is a tiny authenticated aiohttp helper for talking to it raw.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import anyio
import pytest

from runner.simulator import Simulator, SimulatorConfig, start_simulator

FAST_CONFIG: dict[str, Any] = {"job_seconds": (0.05, 0.2), "upload_validation_seconds": 0.01}
TERMINAL = {"success", "failure", "canceled"}


def png_bytes(width: int = 64, height: int = 48, shade: int = 128) -> bytes:
    """A small valid grey PNG, made without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


class SimClient:
    """Raw HTTP against a simulator, with Basic auth on the API and none on the CDN."""

    def __init__(self, session: aiohttp.ClientSession, simulator: Simulator) -> None:
        self.session = session
        self.sim = simulator
        token = base64.b64encode(b"test-key:test-secret").decode()
        self.auth = {"Authorization": f"Basic {token}"}

    async def call(
        self, method: str, path: str, *, json: Any = None, params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], Any]:
        """(status, headers, decoded JSON body or None) of one API request."""
        url = f"{self.sim.base_url}{path}"
        async with self.session.request(
            method, url, json=json, params=params,
            headers=self.auth if headers is None else headers,
        ) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, response.headers.copy(), body

    async def upload_image(self, name: str = "frame.png") -> str:
        """Upload a small PNG through POST /v1/assets; returns the asset id."""
        image = base64.b64encode(png_bytes()).decode()
        status, _, body = await self.call("POST", "/assets", json={"name": name, "image": image})
        assert status == 200, body
        return str(body["asset"]["id"])

    async def upload_video(self, data: bytes, parts: int = 2, name: str = "ref.mp4") -> str:
        """Upload `data` as a video through the multipart flow; returns the asset id."""
        declared = {"fileName": name, "contentType": "video/mp4", "fileSize": len(data),
                    "parts": parts, "kind": "video"}
        status, _, body = await self.call("POST", "/uploads", json=declared)
        assert status == 200, body
        upload = body["upload"]
        size = -(-len(data) // parts)
        for part in upload["parts"]:
            start = (part["number"] - 1) * size
            async with self.session.put(part["url"], data=data[start:start + size]) as reply:
                assert reply.status == 200
        path = f"/uploads/{upload['id']}"
        status, _, body = await self.call("POST", f"{path}/action", json={"action": "complete"})
        assert status == 200, body
        with anyio.fail_after(5):
            while body["upload"]["status"] != "imported":
                await anyio.sleep(0.01)
                _, _, body = await self.call("GET", path)
        return str(body["upload"]["entityId"])

    async def wait_job(self, job_id: str, within: float = 5.0) -> dict[str, Any]:
        """Poll a job until it is terminal; returns the job object."""
        with anyio.fail_after(within):
            while True:
                status, _, body = await self.call("GET", f"/jobs/{job_id}")
                assert status == 200, body
                if body["job"]["status"] in TERMINAL:
                    return dict(body["job"])
                await anyio.sleep(0.02)


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    """A fast, fault-free simulator on free loopback ports."""
    async with start_simulator(SimulatorConfig(**FAST_CONFIG)) as sim:
        yield sim


SimulatorFactory = Callable[..., AbstractAsyncContextManager[Simulator]]


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
