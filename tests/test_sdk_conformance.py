"""The official scenario-sdk drives the simulator: every response must parse into its types.

If the simulator drifted from the wire protocol the SDK speaks, attribute access on the
parsed models below would fail or come back empty.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from scenario_sdk import AsyncScenario
from scenario_sdk.types import JobRetrieveResponse

from runner.simulator import Simulator, VideoSpec, encode_clip
from tests.helpers.media import png_bytes

TERMINAL = {"success", "failure", "canceled"}


@pytest.fixture
async def sdk(simulator_factory: Any, tmp_path: Path) -> Any:
    # Every other job-list page is empty but carries a token, as the real API may answer.
    async with simulator_factory(faults={"empty_page": 1.0}) as sim, AsyncScenario(
        api_key="sdk-key", api_secret="sdk-secret", base_url=sim.base_url, max_retries=0
    ) as client:
        yield sim, client


async def _upload_image(client: AsyncScenario) -> str:
    reply = await client.assets.upload(name="frame.png",
                                       image=base64.b64encode(png_bytes()).decode())
    assert reply.asset.id.startswith("asset_") and reply.asset.kind == "image"
    return reply.asset.id


async def _upload_video(client: AsyncScenario, tmp_path: Path) -> str:
    path = tmp_path / "driving.mp4"
    encode_clip(path, VideoSpec(seconds=3.0), "driving")
    data = path.read_bytes()
    created = await client.uploads.create(file_name="driving.mp4", content_type="video/mp4",
                                          file_size=len(data), parts=1, kind="video")
    assert created.upload.status == "pending" and created.upload.parts
    async with httpx.AsyncClient() as raw:  # part URLs take no credentials
        response = await raw.put(created.upload.parts[0].url, content=data)
        assert response.status_code == 200
    done = await client.uploads.trigger_action(created.upload.id, action="complete")
    assert done.upload.status in {"validating", "imported"}
    with anyio.fail_after(5):
        for _ in range(1000):  # polling is the protocol here: there is nothing to wait on
            upload = (await client.uploads.retrieve(created.upload.id)).upload
            if upload.status == "imported":
                break
            await anyio.sleep(0.01)
    assert upload.entity_id is not None
    return upload.entity_id


def _bodies(image: str, video: str) -> dict[str, dict[str, Any]]:
    return {
        "model_kling-v2-1-pro": {"prompt": "A knight in fog", "startImage": image,
                                 "duration": "5", "cfgScale": 0.5},
        "model_kling-v3-t2v-4k": {"prompt": "A city at dawn", "duration": "5",
                                  "aspectRatio": "16:9", "generateAudio": True},
        "model_kling-v2-6-motion-control": {"image": image, "video": video,
                                            "characterOrientation": "image", "mode": "pro"},
        "model_kling-o1-video-reference": {"prompt": "@Image1 dances", "video": video,
                                           "images": [image], "duration": "5"},
        "model_kling-v3-pro-motion-control": {"image": image, "video": video,
                                              "characterOrientation": "video"},
    }


async def _until_terminal(client: AsyncScenario, job_id: str) -> JobRetrieveResponse:
    with anyio.fail_after(5):
        while True:
            reply = await client.jobs.retrieve(job_id)
            if reply.job.status in TERMINAL:
                return reply
            assert 0 <= reply.job.progress <= 1
            await anyio.sleep(0.02)


async def test_the_official_sdk_runs_every_model(sdk: tuple[Simulator, AsyncScenario],
                                                 tmp_path: Path) -> None:
    sim, client = sdk
    image, video = await _upload_image(client), await _upload_video(client, tmp_path)
    job_ids = []
    for model_id, body in _bodies(image, video).items():
        model = await client.models.retrieve(model_id)
        assert model.model.id == model_id and model.model.inputs
        estimate = await client.generate.run_model(model_id, body=body, dry_run="true")
        assert estimate.creative_units_cost and estimate.cost_details
        reply = await client.generate.run_model(model_id, body=body)
        assert reply.job.job_type == "custom" and reply.job.metadata.input == body
        assert reply.creative_units_cost == estimate.creative_units_cost
        assert reply.cost_details is not None and reply.cost_details.custom_generation
        assert reply.job.billing is not None and reply.job.billing.cu_cost > 0
        job_ids.append(reply.job.job_id)
    for job_id in job_ids:
        done = (await _until_terminal(client, job_id)).job
        assert done.status == "success" and done.progress == 1
        assert done.status_history[0].status == "queued"
        assert done.metadata.asset_ids
        await _check_asset(client, done.metadata.asset_ids[0], done.job_id)
    assert sorted(await _list_all(client)) == sorted(job_ids)
    assert sim.stats.cdn_authorization_headers == []


async def _check_asset(client: AsyncScenario, asset_id: str, job_id: str) -> None:
    asset = (await client.assets.retrieve(asset_id)).asset
    assert asset.status == "success" and asset.kind == "video"
    assert asset.mime_type == "video/mp4" and asset.metadata.parent_job_id == job_id
    assert asset.properties.size > 0 and asset.properties.width == 320
    link = await client.assets.download.request(asset_id)
    assert link.mime_type == "video/mp4"
    async with httpx.AsyncClient() as raw:  # signed URLs take no credentials
        for url in (asset.url, link.url):
            response = await raw.get(url)
            assert response.status_code == 200
            assert len(response.content) == asset.properties.size


async def _list_all(client: AsyncScenario) -> list[str]:
    # The SDK's auto-pager stops at an empty page that still has a token
    # (docs/api.md §3.4), so walk the raw pages while nextPaginationToken is present.
    seen: list[str] = []
    token: str | None = None
    empty_pages = 0
    while True:
        page = await client.jobs.list(page_size=2, **({"pagination_token": token} if token else {}))
        empty_pages += not page.jobs
        seen += [job.job_id for job in page.jobs]
        token = page.next_pagination_token
        if not token:
            break
    assert empty_pages >= 1
    return seen


async def test_sdk_errors_map_to_its_exception_classes(
    sdk: tuple[Simulator, AsyncScenario],
) -> None:
    import scenario_sdk

    sim, client = sdk
    with pytest.raises(scenario_sdk.NotFoundError):
        await client.jobs.retrieve("job_missing")
    with pytest.raises(scenario_sdk.BadRequestError) as bad:
        await client.generate.run_model("model_kling-v2-1-pro", body={"prompt": "x"})
    assert "startImage" in str(bad.value)
    async with AsyncScenario(bearer_auth="", api_key="k", api_secret="", base_url=sim.base_url,
                             max_retries=0) as anonymous:
        with pytest.raises(scenario_sdk.AuthenticationError):
            await anonymous.jobs.retrieve("job_missing")
