"""Every simulator endpoint over real HTTP, fault-free: shapes, lifecycle, validation, CDN."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import av

from runner.simulator import Simulator, SimulatorConfig, start_simulator
from tests.helpers.simulator import SimClient

GENERATE = "/generate/custom/model_kling-v2-1-pro"


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _job_for(client: Any, prompt: str = "a knight") -> dict[str, Any]:
    image = await client.upload_image()
    status, _, body = await client.call(
        "POST", GENERATE, json={"prompt": prompt, "startImage": image, "duration": "5"})
    assert status == 200, body
    return dict(body)


async def test_generate_returns_a_queued_job_with_billing(sim_client: Any) -> None:
    body = await _job_for(sim_client)
    job = body["job"]
    assert job["jobType"] == "custom" and job["status"] == "queued" and job["progress"] == 0
    assert job["metadata"]["input"]["prompt"] == "a knight"
    assert job["statusHistory"][0]["status"] == "queued"
    assert job["createdAt"].endswith("Z") and len(job["createdAt"]) == 24
    assert body["creativeUnitsCost"] == 100 == job["billing"]["cuCost"]
    assert body["costDetails"] == {"custom-generation": 100}


async def test_lifecycle_follows_the_injected_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    config = SimulatorConfig(job_seconds=(10.0, 10.0), work_dir=tmp_path)
    async with start_simulator(config, clock=clock) as sim, aiohttp.ClientSession() as session:
        client = SimClient(session, sim)
        job_id = (await _job_for(client))["job"]["jobId"]
        seen = []
        for step in (0, 1.5, 3, 6, 9, 11):
            clock.now = 1000.0 + step
            _, _, body = await client.call("GET", f"/jobs/{job_id}")
            seen.append((body["job"]["status"], body["job"]["progress"]))
        assert seen == [("queued", 0.0), ("warming-up", 0.0), ("in-progress", 0.075),
                        ("in-progress", 0.525), ("finalizing", 0.9333), ("success", 1.0)]
        assert sim.stats.jobs_in_flight == 0 and sim.stats.max_jobs_in_flight == 1


async def test_success_exposes_a_playable_h264_video(sim_client: Any) -> None:
    job = await sim_client.wait_job((await _job_for(sim_client))["job"]["jobId"])
    assert job["status"] == "success"
    [asset_id] = job["metadata"]["assetIds"]
    status, _, body = await sim_client.call("GET", f"/assets/{asset_id}")
    asset = body["asset"]
    assert status == 200 and asset["status"] == "success" and asset["kind"] == "video"
    assert asset["mimeType"] == "video/mp4" and asset["properties"]["width"] == 320
    assert not asset["url"].startswith(sim_client.sim.base_url)
    async with sim_client.session.get(asset["url"]) as response:
        data = await response.read()
        assert response.headers["Content-Length"] == str(len(data)) == str(
            asset["properties"]["size"])
    assert data.find(b"moov") < data.find(b"mdat")  # index first: browsers start at once
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(video=0))
    assert (frames[0].width, frames[0].height, frames[0].format.name) == (320, 180, "yuv420p")
    assert len(frames) == 24
    assert sim_client.sim.stats.bytes_served == len(data)


async def test_each_job_gets_a_different_video(sim_client: Any) -> None:
    digests = set()
    for prompt in ("one", "two"):
        job = await sim_client.wait_job((await _job_for(sim_client, prompt))["job"]["jobId"])
        _, _, link = await sim_client.call(
            "POST", f"/assets/{job['metadata']['assetIds'][0]}/download", json={})
        assert link["mimeType"] == "video/mp4"
        async with sim_client.session.get(link["url"]) as response:
            digests.add(await response.read())
    assert len(digests) == 2


async def test_auth_is_required_everywhere(sim_client: Any) -> None:
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"k:").decode()}):
        status, _, body = await sim_client.call("GET", "/jobs", headers=headers)
        assert status == 401 and "message" in body
    status, _, _ = await sim_client.call("GET", "/jobs", headers={"Authorization": "Bearer t"})
    assert status == 200


async def test_validation_errors_name_the_field(sim_client: Any) -> None:
    image = await sim_client.upload_image()
    cases: list[tuple[str, Any, int, str]] = [
        (GENERATE, {"prompt": "x", "startImage": image, "duration": 5}, 400, "duration"),
        (GENERATE, {"prompt": "x"}, 400, "startImage"),
        (GENERATE, {"prompt": "x", "startImage": "asset_missing"}, 400, "asset_missing"),
        (GENERATE, {"prompt": "x", "startImage": "images/a.png"}, 400, "not an asset id"),
        ("/generate/custom/model_nope", {"prompt": "x"}, 404, "model_nope"),
        ("/jobs/job_nope", None, 404, "job_nope"),
        ("/assets/asset_nope", None, 404, "asset_nope"),
        ("/nowhere", None, 404, "Not Found"),
    ]
    for path, body, expected, words in cases:
        method = "POST" if body is not None else "GET"
        status, _, reply = await sim_client.call(method, path, json=body)
        assert status == expected and words in reply["message"], (path, reply)
    assert sim_client.sim.stats.state.created_jobs == 0


async def test_dry_run_prices_without_creating(sim_client: Any) -> None:
    image = await sim_client.upload_image()
    body = {"prompt": "x", "startImage": image, "duration": "10"}
    for mode in ("true", "api"):
        status, _, reply = await sim_client.call(
            "POST", GENERATE, json=body, params={"dryRun": mode})
        assert status == 269 and reply == {
            "creativeUnitsCost": 200, "creativeUnitsDiscount": 0,
            "costDetails": {"custom-generation": 200}}
    assert sim_client.sim.stats.dry_runs == 2 and not sim_client.sim.stats.jobs


async def test_listing_filters_and_pages(simulator_factory: Callable[..., Any],
                                         client_for: Callable[[Simulator], Any]) -> None:
    async with simulator_factory(faults={"empty_page": 0.5}, seed=4) as sim:
        client = client_for(sim)
        created = [(await _job_for(client, f"p{i}"))["job"]["jobId"] for i in range(5)]
        seen, token, empties = [], None, 0
        while True:
            params = {"pageSize": "2", **({"paginationToken": token} if token else {})}
            status, _, page = await client.call("GET", "/jobs", params=params)
            assert status == 200
            empties += not page["jobs"]
            seen += [job["jobId"] for job in page["jobs"]]
            token = page.get("nextPaginationToken")
            if token is None:
                break
        assert seen == created[::-1] and empties >= 1
        await client.wait_job(created[-1])
        _, _, done = await client.call("GET", "/jobs", params={"types": "custom,workflow",
                                                               "status": "success"})
        assert created[-1] in [job["jobId"] for job in done["jobs"]]
        _, _, none = await client.call("GET", "/jobs", params={"type": "workflow"})
        assert none["jobs"] == [] and "nextPaginationToken" not in none
        status, _, bad = await client.call("GET", "/jobs", params={"pageSize": "101"})
        assert status == 400 and "pageSize" in bad["message"]


async def test_cancel_rules(simulator_factory: Callable[..., Any],
                            client_for: Callable[[Simulator], Any]) -> None:
    async with simulator_factory(job_seconds=(30, 30)) as sim:
        client = client_for(sim)
        job_id = (await _job_for(client))["job"]["jobId"]
        status, _, body = await client.call("POST", f"/jobs/{job_id}/action",
                                            json={"action": "cancel"})
        assert status == 200 and body["job"]["status"] == "canceled"
        assert body["job"]["statusHistory"][-1]["status"] == "canceled"
        status, _, body = await client.call("POST", f"/jobs/{job_id}/action",
                                            json={"action": "cancel"})
        assert status == 400 and "canceled" in body["message"]
        assert sim.stats.jobs_in_flight == 0
    async with simulator_factory(job_seconds=(30, 30), cancel_custom_jobs=False) as sim:
        client = client_for(sim)
        job_id = (await _job_for(client))["job"]["jobId"]
        status, _, body = await client.call("POST", f"/jobs/{job_id}/action",
                                            json={"action": "cancel"})
        assert status == 400 and "only cancel on inference jobs" in body["message"]


async def test_multipart_upload_flow(sim_client: Any, tmp_path: Path) -> None:
    from runner.simulator import VideoSpec, encode_clip

    source = tmp_path / "ref.mp4"
    encode_clip(source, VideoSpec(seconds=3.0), "driving")
    asset_id = await sim_client.upload_video(source.read_bytes(), parts=3)
    _, _, body = await sim_client.call("GET", f"/assets/{asset_id}")
    asset = body["asset"]
    assert asset["kind"] == "video" and asset["source"] == "uploaded-video"
    assert asset["properties"]["duration"] == 3.0
    async with sim_client.session.get(asset["url"]) as response:
        assert await response.read() == source.read_bytes()
    # The driving video's length prices a motion-control job.
    image = await sim_client.upload_image()
    status, _, cost = await sim_client.call(
        "POST", "/generate/custom/model_kling-v3-pro-motion-control",
        json={"image": image, "video": asset_id}, params={"dryRun": "true"})
    assert status == 269 and cost["creativeUnitsCost"] == 120
    assert sim_client.sim.stats.cdn_authorization_headers == []


async def test_upload_refuses_a_complete_with_missing_parts(sim_client: Any) -> None:
    declared = {"fileName": "a.mp4", "contentType": "video/mp4", "fileSize": 10, "parts": 2,
                "kind": "video"}
    _, _, body = await sim_client.call("POST", "/uploads", json=declared)
    upload_id = body["upload"]["id"]
    assert body["upload"]["status"] == "pending" and len(body["upload"]["parts"]) == 2
    status, _, body = await sim_client.call("POST", f"/uploads/{upload_id}/action",
                                            json={"action": "complete"})
    assert status == 400 and "[1, 2]" in body["message"]


async def test_cdn_refuses_bad_or_expired_urls_and_records_auth(tmp_path: Path) -> None:
    clock = FakeClock()
    config = SimulatorConfig(job_seconds=(0, 0), url_ttl_seconds=60, work_dir=tmp_path)
    async with start_simulator(config, clock=clock) as sim, aiohttp.ClientSession() as session:
        client = SimClient(session, sim)
        job = await client.wait_job((await _job_for(client))["job"]["jobId"])
        _, _, body = await client.call("GET", f"/assets/{job['metadata']['assetIds'][0]}")
        url = body["asset"]["url"]
        async with session.get(url, headers={"Authorization": "Basic leak"}) as response:
            assert response.status == 200
        async with session.get(url.replace("signature=", "signature=0")) as response:
            assert response.status == 403
        clock.now += 61
        async with session.get(url) as response:
            assert response.status == 403 and "expired" in (await response.json())["message"]
        assert sim.stats.cdn_authorization_headers == ["Basic leak"]


async def test_model_description_and_stats_endpoint(sim_client: Any) -> None:
    status, _, body = await sim_client.call("GET", "/models/model_kling-v2-1-pro")
    inputs = {entry["name"]: entry for entry in body["model"]["inputs"]}
    assert status == 200 and body["model"]["id"] == "model_kling-v2-1-pro"
    assert inputs["startImage"]["type"] == "file" and inputs["startImage"]["kind"] == "image"
    assert inputs["startImage"]["required"] == {"always": True}
    assert inputs["duration"]["allowedValues"] == ["5", "10"]
    await _job_for(sim_client)
    async with sim_client.session.get(sim_client.sim.base_url[:-3] + "/_sim/stats") as response:
        stats = json.loads(await response.text())
    assert stats["jobsCreated"] == 1 and stats["requestsByEndpoint"][
        "POST /v1/generate/custom/{modelId}"] == 1
    assert "GET /_sim/stats" not in stats["requestsByEndpoint"]


async def test_unknown_schema_dir_model_is_404(tmp_path: Path,
                                               simulator_factory: Callable[..., Any],
                                               client_for: Callable[[Simulator], Any]) -> None:
    (tmp_path / "model_tiny.schema.json").write_text(json.dumps({
        "type": "object", "properties": {"prompt": {"type": "string"}},
        "required": ["prompt"], "additionalProperties": False}))
    async with simulator_factory(schema_dir=tmp_path) as sim:
        client = client_for(sim)
        status, _, _ = await client.call("POST", "/generate/custom/model_tiny",
                                         json={"prompt": "x"})
        assert status == 200
        status, _, _ = await client.call("POST", GENERATE, json={"prompt": "x"})
        assert status == 404


async def _succeeded_asset(client: Any, prompt: str) -> str:
    job = await client.wait_job((await _job_for(client, prompt))["job"]["jobId"])
    return str(job["metadata"]["assetIds"][0])


async def test_get_bulk_answers_each_asset_as_get_does(sim_client: Any) -> None:
    first, second = [await _succeeded_asset(sim_client, p) for p in ("one", "two")]
    running = (await _job_for(sim_client, "three"))["job"]["jobId"]
    _, _, job = await sim_client.call("GET", f"/jobs/{running}")
    assert job["job"]["status"] != "success"
    hidden = sim_client.sim.stats.state.jobs[running].asset_ids[0]
    ids = [second, "asset_unknown", first, second, hidden]
    status, _, body = await sim_client.call(
        "POST", "/assets/get-bulk", json={"assetIds": ids},
        params={"projectId": "proj_x", "originalAssets": "true"})
    assert status == 200 and list(body) == ["assets"]
    # Unknown ids and outputs of unfinished jobs are left out; each asset comes once.
    assert [asset["id"] for asset in body["assets"]] == [second, first]
    for asset in body["assets"]:
        _, _, single = await sim_client.call("GET", f"/assets/{asset['id']}")
        assert {**asset, "url": ""} == {**single["asset"], "url": ""}
        async with sim_client.session.get(asset["url"]) as response:
            assert response.status == 200
            assert len(await response.read()) == asset["properties"]["size"]
    counted = sim_client.sim.stats.requests_by_endpoint
    assert counted["POST /v1/assets/get-bulk"] == 1 and counted["GET /v1/assets/{assetId}"] == 2


async def test_get_bulk_refuses_bad_id_lists(sim_client: Any) -> None:
    cases: list[tuple[Any, str]] = [
        ({"assetIds": [f"asset_{i}" for i in range(201)]}, "1 to 200 asset ids, got 201"),
        ({"assetIds": []}, "1 to 200 asset ids, got 0"),
        ({}, "assetIds is required"),
        ({"assetIds": "asset_x"}, "assetIds is required"),
        ({"assetIds": [1, 2]}, "assetIds is required"),
    ]
    for body, words in cases:
        status, _, reply = await sim_client.call("POST", "/assets/get-bulk", json=body)
        assert status == 400 and words in reply["message"], (body, reply)
    status, _, reply = await sim_client.call(
        "POST", "/assets/get-bulk", json={"assetIds": [f"asset_{i}" for i in range(200)]})
    assert status == 200 and reply == {"assets": []}


async def test_team_limits_report_the_parallel_cap(simulator_factory: Callable[..., Any],
                                                   client_for: Callable[[Simulator], Any]) -> None:
    for cap, expected in ((8, 8), (None, 1000)):
        async with simulator_factory(max_parallel_jobs=cap) as sim:
            status, _, body = await client_for(sim).call("GET", "/teams/team_anything/limits")
            assert status == 200
            assert set(body) == {"limits", "values", "period", "plan", "oneShotCreativeUnits"}
            assert body["limits"]["parallelCustomJobs"] == expected
            assert body["oneShotCreativeUnits"] == [] and body["period"]["start"].endswith("Z")
            assert body["period"]["start"] < body["period"]["end"]
    async with simulator_factory(team_limits_readable=False) as sim:
        status, _, body = await client_for(sim).call("GET", "/teams/team_x/limits")
        assert status == 403 and "limits" in body["message"]
        assert sim.stats.requests_by_endpoint["GET /v1/teams/{teamId}/limits"] == 1


async def test_stats_record_each_jobs_start_and_end(tmp_path: Path) -> None:
    clock = FakeClock()
    config = SimulatorConfig(job_seconds=(10.0, 10.0), work_dir=tmp_path)
    async with start_simulator(config, clock=clock) as sim, aiohttp.ClientSession() as session:
        client = SimClient(session, sim)
        await client.upload_image()
        clock.now += 2.5
        await _job_for(client, "late")
        [job] = sim.stats.jobs
        assert (job.started, job.ended, job.seconds) == (2.5, 12.5, 10.0)
        async with session.get(sim.base_url[:-3] + "/_sim/stats") as response:
            stats = await response.json()
        assert stats["jobs"][0]["started"] == 2.5 and stats["jobs"][0]["ended"] == 12.5
        assert stats["capRefusals"] == 0
