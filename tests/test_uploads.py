"""AssetUploader against an in-process API and a presigned-URL "store" on a second port: one
POST or one multipart upload per file, retried parts, refusals, and the asset-id cache (kept
apart per origin, kind and, against the simulator, per account)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web

from runner.api import (
    IMAGE_ASSET_LIMIT,
    MIN_PART_SIZE,
    PART_SIZE,
    AssetUploader,
    Credentials,
    ScenarioClient,
    cache_key,
    load_cache,
    part_ranges,
    part_size_for,
    uses_multipart,
)
from runner.errors import PermanentApiError, UsageError
from runner.simulator import SimulatorConfig, start_simulator
from tests.helpers.http import AUTH, FakeTime, Server, api_client, serve
from tests.helpers.media import png_bytes

MiB = 1024 * 1024


@dataclass
class FakeApi:
    """The asset and upload endpoints, recording what they were given."""

    store_url: str = ""
    images: list[dict[str, str]] = field(default_factory=list)
    uploads: dict[str, dict[str, object]] = field(default_factory=dict)
    polls_until_imported: int = 2
    fail_import: str | None = None
    put_faults: list[int] = field(default_factory=list)  # statuses answered before 200
    parts: dict[tuple[str, int], bytes] = field(default_factory=dict)
    part_headers: list[dict[str, str]] = field(default_factory=list)

    async def create_asset(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.images.append(body)
        return web.json_response({"asset": {"id": f"asset_img{len(self.images)}"}})

    async def create_upload(self, request: web.Request) -> web.Response:
        body = await request.json()
        upload_id = f"up_{len(self.uploads) + 1}"
        self.uploads[upload_id] = {"declared": body, "polls": 0, "completed": False}
        parts = [
            {
                "number": n,
                "url": f"{self.store_url}/parts/{upload_id}/{n}?X-Sig=a%2Fb",
                "expires": "x",
            }
            for n in range(1, body["parts"] + 1)
        ]
        return web.json_response({"upload": {"id": upload_id, "status": "pending", "parts": parts}})

    async def complete(self, request: web.Request) -> web.Response:
        upload = self.uploads[request.match_info["id"]]
        upload["completed"] = (await request.json()) == {"action": "complete"}
        return web.json_response({"upload": {"id": request.match_info["id"], "status": "complete"}})

    async def get_upload(self, request: web.Request) -> web.Response:
        upload_id = request.match_info["id"]
        upload = self.uploads[upload_id]
        upload["polls"] = int(str(upload["polls"])) + 1
        state: dict[str, object] = {"id": upload_id, "status": "validating"}
        if int(str(upload["polls"])) >= self.polls_until_imported:
            if self.fail_import:
                state = {"id": upload_id, "status": "failed", "errorMessage": self.fail_import}
            else:
                state = {"id": upload_id, "status": "imported", "entityId": f"asset_{upload_id}"}
        return web.json_response({"upload": state})

    async def put_part(self, request: web.Request) -> web.Response:
        self.part_headers.append(dict(request.headers))
        if self.put_faults:
            return web.Response(status=self.put_faults.pop(0))
        assert request.query["X-Sig"] == "a/b"  # the signature arrived unaltered
        key = (request.match_info["id"], int(request.match_info["n"]))
        self.parts[key] = await request.read()
        return web.Response(status=200)

    def assembled(self, upload_id: str) -> bytes:
        numbers = sorted(n for (u, n) in self.parts if u == upload_id)
        return b"".join(self.parts[(upload_id, n)] for n in numbers)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def with_uploader(
    session: aiohttp.ClientSession,
    tmp_path: Path,
    api: FakeApi,
    body: Callable[[Callable[[], AssetUploader], Server, Server], Awaitable[None]],
    fake_time: FakeTime | None = None,
) -> None:
    """Run `body(make_uploader, api_server, store_server)` with both servers up."""
    time = fake_time or FakeTime()
    routes = {
        ("POST", "/v1/assets"): api.create_asset,
        ("POST", "/v1/uploads"): api.create_upload,
        ("POST", "/v1/uploads/{id}/action"): api.complete,
        ("GET", "/v1/uploads/{id}"): api.get_upload,
    }
    async with (
        serve({("PUT", "/parts/{id}/{n}"): api.put_part}) as store,
        serve(routes) as api_server,
    ):
        api.store_url = store.url

        def make() -> AssetUploader:
            client = api_client(session, api_server.url, time)
            return AssetUploader(
                client, session, tmp_path / ".cache" / "assets.json"
            )

        await body(make, api_server, store)


def write(path: Path, size: int, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes((i * seed) % 251 for i in range(size)))
    return path


async def test_a_small_image_is_posted_once_and_cached(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    api = FakeApi()
    image = write(tmp_path / "in" / "knight.png", 3000)
    copy = tmp_path / "in" / "same-content.png"
    copy.write_bytes(image.read_bytes())

    async def body(make: Callable[[], AssetUploader], api_server: Server, store: Server) -> None:
        uploader = make()
        assert await uploader.asset_id_for(image, "image") == "asset_img1"
        assert await uploader.asset_id_for(copy, "image") == "asset_img1"  # same content
        assert await make().asset_id_for(image, "image") == "asset_img1"  # a re-run
        assert uploader.uploads == 1
        assert api_server.count("POST", "/v1/assets") == 1
        assert api_server.seen[0].headers["Authorization"] == AUTH

    await with_uploader(session, tmp_path, api, body)
    [sent] = api.images
    assert sent["name"] == "knight.png"
    assert sent["image"] == "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    cache = json.loads((tmp_path / ".cache" / "assets.json").read_text())
    [(key, entry)] = cache["assets"].items()
    assert key.endswith(" image sha256:" + hashlib.sha256(image.read_bytes()).hexdigest())
    assert entry == {"assetId": "asset_img1", "file": "knight.png", "bytes": 3000}


async def test_concurrent_requests_for_one_file_share_one_upload(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    api = FakeApi()
    video = write(tmp_path / "ref.mp4", 1000)
    results: list[str] = []

    async def body(make: Callable[[], AssetUploader], api_server: Server, store: Server) -> None:
        uploader = make()

        async def one() -> None:
            results.append(await uploader.asset_id_for(video, "video"))

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(one)
        assert api_server.count("POST", "/v1/uploads") == 1

    await with_uploader(session, tmp_path, api, body)
    assert results == ["asset_up_1"] * 10


async def test_a_video_goes_through_multipart_without_credentials_at_the_store(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    api = FakeApi(polls_until_imported=3)
    video = write(tmp_path / "ref.mp4", PART_SIZE + 3 * MiB + 5, seed=7)
    fake_time = FakeTime()

    async def body(make: Callable[[], AssetUploader], api_server: Server, store: Server) -> None:
        assert await make().asset_id_for(video, "video") == "asset_up_1"
        assert store.count("PUT") == 2
        assert all("Authorization" not in s.headers for s in store.seen)
        assert all(s.headers["Authorization"] == AUTH for s in api_server.seen)

    await with_uploader(session, tmp_path, api, body, fake_time)
    upload = api.uploads["up_1"]
    assert upload["declared"] == {
        "fileName": "ref.mp4",
        "contentType": "video/mp4",
        "fileSize": PART_SIZE + 3 * MiB + 5,
        "parts": 2,
        "kind": "video",
    }
    assert upload["completed"] is True
    assert api.assembled("up_1") == video.read_bytes()
    assert fake_time.sleeps == [0.5, 0.5]  # polled until imported


async def test_a_large_image_uses_multipart(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    api = FakeApi(polls_until_imported=1)
    image = write(tmp_path / "big.png", IMAGE_ASSET_LIMIT)

    async def body(make: Callable[[], AssetUploader], api_server: Server, store: Server) -> None:
        assert await make().asset_id_for(image, "image") == "asset_up_1"

    await with_uploader(session, tmp_path, api, body)
    assert api.images == []
    assert api.uploads["up_1"]["declared"]["kind"] == "image"  # type: ignore[index]
    assert api.assembled("up_1") == image.read_bytes()


async def test_a_failed_part_is_put_again(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    api = FakeApi(polls_until_imported=1, put_faults=[503, 500])
    video = write(tmp_path / "ref.mp4", 2000)
    fake_time = FakeTime()

    async def body(make: Callable[[], AssetUploader], api_server: Server, store: Server) -> None:
        assert await make().asset_id_for(video, "video") == "asset_up_1"
        assert store.count("PUT") == 3

    await with_uploader(session, tmp_path, api, body, fake_time)
    assert fake_time.sleeps == [0.5, 1.0]
    assert api.assembled("up_1") == video.read_bytes()


@pytest.mark.parametrize(
    ("api", "match"),
    [
        (FakeApi(fail_import="unsupported codec"), "unsupported codec"),
        (FakeApi(put_faults=[403]), "HTTP 403"),
    ],
)
async def test_refused_uploads_are_permanent_and_not_cached(
    session: aiohttp.ClientSession, tmp_path: Path, api: FakeApi, match: str
) -> None:
    video = write(tmp_path / "ref.mp4", 2000)

    async def body(make: Callable[[], AssetUploader], api_server: Server, store: Server) -> None:
        with pytest.raises(PermanentApiError, match=match):
            await make().asset_id_for(video, "video")

    await with_uploader(session, tmp_path, api, body)
    assert not (tmp_path / ".cache" / "assets.json").exists()


async def test_missing_and_empty_files_are_usage_errors(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    empty = write(tmp_path / "empty.png", 0)

    async def body(make: Callable[[], AssetUploader], api_server: Server, store: Server) -> None:
        uploader = make()
        with pytest.raises(UsageError, match="not found"):
            await uploader.asset_id_for(tmp_path / "nope.png", "image")
        with pytest.raises(UsageError, match="empty"):
            await uploader.asset_id_for(empty, "image")
        assert api_server.seen == []

    await with_uploader(session, tmp_path, FakeApi(), body)


async def test_an_unreadable_cache_is_ignored(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cache_file = tmp_path / ".cache" / "assets.json"
    cache_file.parent.mkdir()
    cache_file.write_text("{torn")
    image = write(tmp_path / "a.png", 100)

    async def body(make: Callable[[], AssetUploader], api_server: Server, store: Server) -> None:
        assert await make().asset_id_for(image, "image") == "asset_img1"

    await with_uploader(session, tmp_path, FakeApi(), body)
    assert len(load_cache(cache_file)) == 1


def test_the_cache_is_keyed_by_origin_and_kind() -> None:
    keys = {
        cache_key("http://127.0.0.1:1", "image", "ab"),
        cache_key("http://127.0.0.1:2", "image", "ab"),
        cache_key("http://127.0.0.1:1", "video", "ab"),
    }
    assert len(keys) == 3


async def test_two_accounts_on_one_api_never_share_cached_asset_ids(tmp_path: Path) -> None:
    image = tmp_path / "hero.png"
    image.write_bytes(png_bytes())
    cache = tmp_path / "assets.json"
    async with start_simulator(SimulatorConfig(job_seconds=(0.05, 0.1))) as sim, \
            aiohttp.ClientSession() as api, aiohttp.ClientSession() as cdn:
        ids = []
        for who in ("Basic YTpi", "Basic Yzpk", "Basic YTpi"):
            client = ScenarioClient(api, sim.base_url, Credentials(who))
            ids.append(await AssetUploader(client, cdn, cache).asset_id_for(image, "image"))
        uploads = sim.stats.requests_by_endpoint["POST /v1/assets"]
    assert ids[0] == ids[2] != ids[1]  # the first account's id is reused, not the other's
    assert uploads == 2


async def test_a_session_with_credentials_is_refused(tmp_path: Path) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as leaky:
        client = api_client(leaky, "http://127.0.0.1:9", FakeTime())
        with pytest.raises(ValueError, match="Authorization"):
            AssetUploader(client, leaky, tmp_path / "c.json")


@pytest.mark.parametrize(
    ("kind", "size", "multipart"),
    [
        ("image", 1, False),
        ("image", IMAGE_ASSET_LIMIT - 1, False),
        ("image", IMAGE_ASSET_LIMIT, True),
        ("video", 1, True),
        ("audio", 1, True),
    ],
)
def test_uses_multipart(kind: str, size: int, multipart: bool) -> None:
    assert uses_multipart(kind, size) is multipart


@pytest.mark.parametrize(
    ("size", "ranges"),
    [
        (1, [(0, 1)]),
        (PART_SIZE, [(0, PART_SIZE)]),
        (PART_SIZE + 1, [(0, PART_SIZE), (PART_SIZE, 1)]),
        (2 * PART_SIZE + 10, [(0, PART_SIZE), (PART_SIZE, PART_SIZE), (2 * PART_SIZE, 10)]),
    ],
)
def test_part_ranges(size: int, ranges: list[tuple[int, int]]) -> None:
    assert part_ranges(size, part_size_for(size)) == ranges


def test_parts_stay_within_the_store_limits() -> None:
    huge = 200 * 1024 * MiB  # 200 GiB
    size = part_size_for(huge)
    assert size >= MIN_PART_SIZE
    assert len(part_ranges(huge, size)) <= 10_000
