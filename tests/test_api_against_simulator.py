"""The client, uploader and downloader against the in-process simulator (real HTTP).

The simulator counts at the server: how many generate POSTs each request body caused, and
whether any Authorization header reached its CDN.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest

from runner.api import (
    AssetUploader,
    Pacer,
    RetryPolicy,
    ScenarioClient,
    credentials_from_env,
    download_asset,
)
from runner.clock import Clock
from runner.domain import RemoteJob, RemoteStatus
from runner.errors import OutcomeUnknownError, RateLimitedError
from runner.simulator import Simulator, request_fingerprint
from tests.helpers.media import png_bytes
from tests.helpers.simulator import SimulatorFactory


async def no_sleep(seconds: float) -> None:
    # Retries against the simulator need no real waiting; one checkpoint keeps it fair.
    await anyio.lowlevel.checkpoint()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def client_for(session: aiohttp.ClientSession, sim: Simulator, **kwargs: Any) -> ScenarioClient:
    credentials = credentials_from_env(sim.credentials_env())
    assert credentials is not None
    kwargs.setdefault("clock", Clock(sleep=no_sleep))
    kwargs.setdefault("pacer", Pacer())
    return ScenarioClient(session, sim.base_url, credentials, **kwargs)


async def wait_terminal(client: ScenarioClient, job_id: str) -> RemoteJob:
    with anyio.fail_after(10):
        # Polling is the behaviour under test: the API offers nothing to wait on.
        while not (job := await client.get_job(job_id)).status.terminal:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return job


async def test_image_upload_generate_poll_and_download(
    simulator: Simulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    client = client_for(session, simulator)
    image = tmp_path / "knight.png"
    image.write_bytes(png_bytes())
    uploader = AssetUploader(client, session, tmp_path / ".cache" / "assets.json")
    asset_id = await uploader.asset_id_for(image, "image")
    assert asset_id.startswith("asset_")
    assert await uploader.asset_id_for(image, "image") == asset_id  # cached

    body = {"prompt": "A knight walks through fog", "startImage": asset_id, "duration": "5"}
    submission = await client.generate("model_kling-v2-1-pro", body)
    job = await wait_terminal(client, submission.job.job_id)
    assert job.status is RemoteStatus.SUCCESS
    assert job.input == body
    assert job.asset_ids

    dest = tmp_path / "videos" / "knight.mp4"
    downloaded = await download_asset(client, session, job.asset_ids[0], dest)
    data = dest.read_bytes()
    assert downloaded.bytes == len(data) > 0
    assert downloaded.sha256 == hashlib.sha256(data).hexdigest()
    assert simulator.stats.cdn_requests >= 1
    assert simulator.stats.cdn_authorization_headers == []


async def test_video_multipart_upload_feeds_a_motion_control_job(
    simulator: Simulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    client = client_for(session, simulator)
    uploader = AssetUploader(client, session, tmp_path / "assets.json")
    video = tmp_path / "dance.mp4"
    video.write_bytes(bytes(range(256)) * 50_000)  # ~12 MiB: two parts
    image = tmp_path / "hero.png"
    image.write_bytes(png_bytes(shade=30))
    video_id = await uploader.asset_id_for(video, "video")
    image_id = await uploader.asset_id_for(image, "image")
    asset = await client.get_asset(video_id)
    assert asset.size == video.stat().st_size
    body = {"image": image_id, "video": video_id, "characterOrientation": "image"}
    submission = await client.generate("model_kling-v2-6-motion-control", body)
    assert (await wait_terminal(client, submission.job.job_id)).status.terminal
    assert simulator.stats.cdn_authorization_headers == []


@pytest.mark.parametrize("fault", ["error_after_create", "reset_after_create"])
async def test_a_generate_that_created_a_job_is_never_posted_again(
    simulator_factory: SimulatorFactory, session: aiohttp.ClientSession, fault: str
) -> None:
    body = {"prompt": "A lighthouse at dusk", "duration": "5"}
    model = "model_kling-v3-t2v-4k"
    async with simulator_factory(faults={fault: 1.0}) as sim:
        client = client_for(session, sim)
        with pytest.raises(OutcomeUnknownError):
            await client.generate(model, body)
        fingerprint = request_fingerprint(model, body)
        assert sim.stats.generate_attempts_by_fingerprint[fingerprint] == 1
        assert sim.stats.submissions_by_fingerprint[fingerprint] == 1
        # The job does exist: reconciliation finds it by its input.
        found = [job async for job in client.list_jobs() if job.input == body]
        assert len(found) == 1


async def test_a_rate_limited_generate_creates_nothing_and_says_so(
    simulator_factory: SimulatorFactory, session: aiohttp.ClientSession
) -> None:
    body = {"prompt": "A red kite", "duration": "5"}
    model = "model_kling-v3-t2v-4k"
    async with simulator_factory(faults={"rate_limit": 1.0}, seed=5) as sim:
        client = client_for(session, sim, policy=RetryPolicy(max_attempts=20))
        with pytest.raises(RateLimitedError):
            await client.generate(model, body)
        assert sim.stats.faults_injected["rate_limit"] == 1  # one POST, not retried here
        assert sim.stats.submissions_by_fingerprint[request_fingerprint(model, body)] == 0


async def test_a_reset_is_an_unknown_outcome_even_before_creation(
    simulator_factory: SimulatorFactory, session: aiohttp.ClientSession
) -> None:
    # A reset before creation looks, to a client, exactly like one after it: the outcome
    # is honestly unknown, so the POST is not repeated (reconciliation will find nothing).
    body = {"prompt": "A red kite", "duration": "5"}
    model = "model_kling-v3-t2v-4k"
    async with simulator_factory(faults={"reset_before_create": 1.0}) as sim:
        client = client_for(session, sim)
        with pytest.raises(OutcomeUnknownError):
            await client.generate(model, body)
        assert sim.stats.requests_by_endpoint["POST /v1/generate/custom/{modelId}"] == 1
        assert sim.stats.submissions_by_fingerprint[request_fingerprint(model, body)] == 0


async def test_downloads_survive_truncation_and_expired_urls(
    simulator_factory: SimulatorFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with simulator_factory(seed=7) as sim:
        client = client_for(session, sim)
        submission = await client.generate("model_kling-v3-t2v-4k", {"prompt": "Rain on glass"})
        job = await wait_terminal(client, submission.job.job_id)
        clean = tmp_path / "clean.mp4"
        reference = await download_asset(client, session, job.asset_ids[0], clean)
        sim.set_faults(truncated_download=0.5, expired_url=0.5)
        for n in range(4):
            dest = tmp_path / f"faulty-{n}.mp4"
            got = await download_asset(
                client, session, job.asset_ids[0], dest, attempts=20
            )
            assert (got.sha256, got.bytes) == (reference.sha256, reference.bytes)
        injected = sim.stats.faults_injected
        assert injected["truncated_download"] + injected["expired_url"] > 0
        assert sim.stats.cdn_authorization_headers == []
    assert part_files(tmp_path) == []


def part_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name)


async def test_listing_walks_through_empty_pages(
    simulator_factory: SimulatorFactory, session: aiohttp.ClientSession
) -> None:
    async with simulator_factory(seed=2) as sim:
        client = client_for(session, sim)
        created = set()
        for n in range(5):
            submission = await client.generate("model_kling-v3-t2v-4k", {"prompt": f"shot {n}"})
            created.add(submission.job.job_id)
        sim.set_faults(empty_page=0.6)
        listed = {job.job_id async for job in client.list_jobs(page_size=2)}
        assert created <= listed
        assert sim.stats.faults_injected["empty_page"] > 0


async def test_estimate_asks_the_dry_run(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    client = client_for(session, simulator)
    cost = await client.estimate("model_kling-v3-t2v-4k", {"prompt": "x", "duration": "5"})
    assert cost > 0
    assert simulator.stats.dry_runs == 1
    assert simulator.stats.state.created_jobs == 0
