"""download_asset against an in-process API plus a "CDN" on a second port.

The CDN handlers produce the exact faults: a body cut off mid-stream, a 403 for an expired
signature, a wrong length. Every test also checks that no partial file is left behind.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web

from runner.api import DownloadedFile, download_asset, part_path, size_problem
from runner.errors import PermanentApiError, TransientApiError
from tests.helpers.http import AUTH, FakeTime, Server, api_client, serve

DATA = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: several writer blocks


@dataclass
class Cdn:
    """What the CDN does, per request: a list of behaviours, the last one repeating."""

    behaviours: list[str] = field(default_factory=lambda: ["ok"])
    body: bytes = DATA
    calls: int = 0
    signature: int = 0  # every GET /assets signs anew; only the newest URL is accepted

    async def handle(self, request: web.Request) -> web.StreamResponse:
        behaviour = self.behaviours[min(self.calls, len(self.behaviours) - 1)]
        self.calls += 1
        if behaviour == "expired" or request.query.get("sig") != str(self.signature):
            raise web.HTTPForbidden(text="Request has expired")
        if behaviour == "short-honest":  # a consistent but too small file
            return web.Response(body=self.body[:-10])
        response = web.StreamResponse(headers={"Content-Length": str(len(self.body))})
        await response.prepare(request)
        if behaviour == "truncate":
            await response.write(self.body[: len(self.body) // 2])
            assert request.transport is not None
            request.transport.abort()
            return response
        if behaviour == "stall":
            await response.write(self.body[:1000])
            await asyncio.sleep(30)
        await response.write(self.body)
        await response.write_eof()
        return response


@dataclass
class Api:
    cdn_url: str = ""
    statuses: list[str] = field(default_factory=lambda: ["success"])
    size: int | None = len(DATA)
    gets: int = 0
    cdn: Cdn | None = None

    async def get_asset(self, request: web.Request) -> web.Response:
        status = self.statuses[min(self.gets, len(self.statuses) - 1)]
        self.gets += 1
        assert self.cdn is not None
        self.cdn.signature = self.gets
        asset = {
            "id": request.match_info["id"],
            "status": status,
            "kind": "video",
            "mimeType": "video/mp4",
            "url": f"{self.cdn_url}/files/v.mp4?sig={self.gets}",
            "properties": {"size": self.size} if self.size is not None else {},
        }
        return web.json_response({"asset": asset})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def run_download(
    session: aiohttp.ClientSession,
    tmp_path: Path,
    cdn: Cdn,
    api: Api | None = None,
    *,
    attempts: int = 5,
) -> tuple[FakeTime, Server, Server, Path, DownloadedFile | Exception]:
    api = api or Api()
    api.cdn = cdn
    fake_time = FakeTime()
    dest = tmp_path / "videos" / "job.mp4"
    async with (
        serve({("GET", "/files/v.mp4"): cdn.handle}) as cdn_server,
        serve({("GET", "/v1/assets/{id}"): api.get_asset}) as api_server,
    ):
        api.cdn_url = cdn_server.url
        client = api_client(session, api_server.url, fake_time)
        result: DownloadedFile | Exception
        try:
            result = await download_asset(
                client, session, "asset_v", dest, attempts=attempts
            )
        except Exception as exc:
            result = exc
    return fake_time, api_server, cdn_server, dest, result


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.rglob(".*part-*"))


async def test_a_download_is_verified_and_placed(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    api = Api(statuses=["pending", "pending", "success"])
    fake_time, api_server, cdn_server, dest, result = await run_download(
        session, tmp_path, Cdn(), api
    )
    assert isinstance(result, DownloadedFile), result
    assert dest.read_bytes() == DATA
    assert result == DownloadedFile(dest, hashlib.sha256(DATA).hexdigest(), len(DATA))
    assert fake_time.sleeps == [1.0, 1.0]  # waited while the asset was pending
    assert all(s.headers["Authorization"] == AUTH for s in api_server.seen)
    assert [s.headers.get("Authorization") for s in cdn_server.seen] == [None]
    assert leftovers(tmp_path) == []


async def test_a_truncated_body_is_retried(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    cdn = Cdn(behaviours=["truncate", "ok"])
    fake_time, _, _, dest, result = await run_download(session, tmp_path, cdn)
    assert not isinstance(result, Exception), result
    assert dest.read_bytes() == DATA
    assert cdn.calls == 2
    assert fake_time.sleeps == [0.5]
    assert leftovers(tmp_path) == []


async def test_an_expired_url_is_refreshed_at_once(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cdn = Cdn(behaviours=["expired", "ok"])
    fake_time, api_server, _, dest, result = await run_download(session, tmp_path, cdn)
    assert not isinstance(result, Exception), result
    assert dest.read_bytes() == DATA
    assert api_server.count("GET") == 2  # a fresh URL for the second attempt
    assert fake_time.sleeps == []


async def test_a_body_that_never_completes_fails_transiently_and_leaves_nothing(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cdn = Cdn(behaviours=["truncate"])
    fake_time, _, _, dest, result = await run_download(session, tmp_path, cdn, attempts=3)
    assert isinstance(result, TransientApiError)
    assert "failed 3 times" in str(result)
    assert fake_time.sleeps == [0.5, 1.0]
    assert not dest.exists()
    assert leftovers(tmp_path) == []


async def test_a_cdn_that_always_refuses_is_permanent(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    _, _, _, dest, result = await run_download(
        session, tmp_path, Cdn(behaviours=["expired"]), attempts=3
    )
    assert isinstance(result, PermanentApiError)
    assert result.status == 403
    assert not dest.exists()


async def test_a_size_that_disagrees_with_the_asset_is_rejected(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cdn = Cdn(behaviours=["short-honest"])
    _, _, _, dest, result = await run_download(session, tmp_path, cdn, attempts=2)
    assert isinstance(result, TransientApiError)
    assert "properties.size" in str(result)
    assert not dest.exists()
    assert leftovers(tmp_path) == []


async def test_a_longer_body_than_announced_is_cut_short(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    api = Api(size=1000)  # the asset says 1000 bytes; the CDN sends 3 MiB
    _, _, _, dest, result = await run_download(session, tmp_path, Cdn(), api, attempts=1)
    assert isinstance(result, TransientApiError)
    assert not dest.exists()
    assert leftovers(tmp_path) == []


async def test_without_a_known_size_the_body_is_trusted(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    _, _, _, dest, result = await run_download(session, tmp_path, Cdn(), Api(size=None))
    assert not isinstance(result, Exception), result
    assert dest.read_bytes() == DATA


async def test_an_asset_in_error_is_permanent(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    _, _, cdn_server, _, result = await run_download(
        session, tmp_path, Cdn(), Api(statuses=["error"])
    )
    assert isinstance(result, PermanentApiError)
    assert cdn_server.seen == []


async def test_cancellation_mid_stream_leaves_no_partial_file(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    api = Api()
    cdn = Cdn(behaviours=["stall"])
    api.cdn = cdn
    dest = tmp_path / "job.mp4"
    async with (
        serve({("GET", "/files/v.mp4"): cdn.handle}) as cdn_server,
        serve({("GET", "/v1/assets/{id}"): api.get_asset}) as api_server,
    ):
        api.cdn_url = cdn_server.url
        client = api_client(session, api_server.url, FakeTime())
        with anyio.move_on_after(0.5) as scope:
            await download_asset(client, session, "asset_v", dest)
    assert scope.cancelled_caught
    assert not dest.exists()
    assert leftovers(tmp_path) == []


async def test_a_session_with_credentials_is_refused(tmp_path: Path) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as leaky:
        client = api_client(leaky, "http://127.0.0.1:9", FakeTime())
        with pytest.raises(ValueError, match="Authorization"):
            await download_asset(client, leaky, "asset_v", tmp_path / "x.mp4")


@pytest.mark.parametrize(
    ("received", "length", "size", "problem"),
    [
        (10, 10, 10, None),
        (10, None, None, None),
        (10, None, 10, None),
        (5, 10, 10, "Content-Length said 10"),
        (10, 10, 12, "properties.size is 12"),
    ],
)
def test_size_problem(
    received: int, length: int | None, size: int | None, problem: str | None
) -> None:
    found = size_problem(received, length, size)
    assert found == problem if problem is None else problem in (found or "")


def test_part_files_are_hidden_siblings_with_unique_names(tmp_path: Path) -> None:
    dest = tmp_path / "videos" / "a.mp4"
    first, second = part_path(dest), part_path(dest)
    assert first.parent == dest.parent
    assert first.name.startswith(".a.mp4.part-")
    assert first != second
