"""The simulator as the tests use it: fast settings and a raw HTTP client.

`FAST_CONFIG` makes jobs finish in 0.05-0.2 s; `SimulatorFactory` is the type of the
`simulator_factory` fixture; `SimClient` talks to a running simulator
over real HTTP, with the API's Basic auth and none on the CDN.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import anyio

from runner.simulator import Simulator
from tests.helpers.media import png_bytes

FAST_CONFIG: dict[str, Any] = {"job_seconds": (0.05, 0.2), "upload_validation_seconds": 0.01}
TERMINAL = {"success", "failure", "canceled"}

# What the `simulator_factory` fixture is: `async with simulator_factory(**config) as sim:`.
SimulatorFactory = Callable[..., AbstractAsyncContextManager[Simulator]]


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
