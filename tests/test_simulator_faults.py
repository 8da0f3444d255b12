"""Each fault kind over real HTTP, determinism per seed, limits and exact accounting."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import anyio
import pytest

from runner.simulator import Simulator, SimulatorConfig, request_fingerprint, start_simulator
from tests.helpers.simulator import SimClient

MODEL = "model_kling-v2-1-pro"
GENERATE = f"/generate/custom/{MODEL}"
Factory = Callable[..., Any]
ClientFor = Callable[[Simulator], Any]


def _body(image: str, prompt: str = "p") -> dict[str, Any]:
    return {"prompt": prompt, "startImage": image, "duration": "5"}


async def _post(client: Any, body: dict[str, Any]) -> tuple[int | str, Mapping[str, str], Any]:
    """A generate whose connection may be reset: the status, or "reset"."""
    try:
        return await client.call("POST", GENERATE, json=body)
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
        return "reset", {}, None


async def _image(sim: Simulator, client: Any) -> str:
    # Upload with faults switched off, then restore them: only the generate is under test.
    rates = sim.fault_rates
    sim.set_faults(**dict.fromkeys(rates, 0.0))
    image: str = await client.upload_image()
    sim.set_faults(**rates)
    return image


async def _listed_ids(client: Any) -> list[str]:
    _, _, body = await client.call("GET", "/jobs", params={"pageSize": "100"})
    return [job["jobId"] for job in body["jobs"]]


async def test_same_seed_same_faults(simulator_factory: Factory, client_for: ClientFor) -> None:
    async def outcomes(seed: int) -> list[int | str]:
        async with simulator_factory(seed=seed, profile="hostile",
                                     faults={"slow_response": 0.0}) as sim:
            client = client_for(sim)
            image = await _image(sim, client)
            return [(await _post(client, _body(image, f"p{i}")))[0] for i in range(40)]

    first, again, other = await outcomes(7), await outcomes(7), await outcomes(8)
    assert first == again
    assert first != other
    assert {200, "reset"} <= set(first) and any(isinstance(s, int) and s >= 500 for s in first)


async def test_concurrency_order_does_not_change_faults(simulator_factory: Factory,
                                                        client_for: ClientFor) -> None:
    async def faulted(order: list[int]) -> set[str]:
        async with simulator_factory(seed=1, faults={"server_error": 0.5}) as sim:
            client = client_for(sim)
            image = await _image(sim, client)
            results: dict[int, int | str] = {}

            async def one(i: int) -> None:
                results[i] = (await _post(client, _body(image, f"p{i}")))[0]

            async with anyio.create_task_group() as group:
                for i in order:
                    group.start_soon(one, i)
            return {f"p{i}" for i, status in results.items() if status != 200}

    forward = await faulted(list(range(20)))
    assert forward == await faulted(list(range(19, -1, -1)))
    assert 0 < len(forward) < 20


@pytest.mark.parametrize(
    ("fault", "statuses", "header"),
    [("rate_limit", {429}, None), ("server_error", {500, 502, 503}, None),
     ("server_error_no_retry", {503}, "false"), ("conflict", {408, 409}, None)],
)
async def test_request_faults_create_nothing(simulator_factory: Factory, client_for: ClientFor,
                                             fault: str, statuses: set[int],
                                             header: str | None) -> None:
    async with simulator_factory(faults={fault: 1.0}) as sim:
        client = client_for(sim)
        image = await _image(sim, client)
        replies = [await _post(client, _body(image, f"p{i}")) for i in range(12)]
        assert {status for status, _, _ in replies} <= statuses
        assert all("message" in body for _, _, body in replies)
        if header is not None:
            assert all(h.get("x-should-retry") == header for _, h, _ in replies)
        if fault == "rate_limit":
            assert all("retry-after" in h or "retry-after-ms" in h for _, h, _ in replies)
        sim.set_faults(**{fault: 0.0})
        assert sim.stats.state.created_jobs == 0 and await _listed_ids(client) == []
        assert sim.stats.faults_injected[fault] == 12


async def test_error_after_create_leaves_a_listed_job(simulator_factory: Factory,
                                                      client_for: ClientFor) -> None:
    async with simulator_factory(faults={"error_after_create": 1.0}) as sim:
        client = client_for(sim)
        image = await _image(sim, client)
        body = _body(image)
        status, _, _ = await _post(client, body)
        assert status in {500, 502, 503}
        [listed] = await _listed(client)
        assert listed["metadata"]["input"] == body
        assert sim.stats.submissions_by_fingerprint[request_fingerprint(MODEL, body)] == 1


async def _listed(client: Any) -> list[dict[str, Any]]:
    _, _, body = await client.call("GET", "/jobs")
    return list(body["jobs"])


@pytest.mark.parametrize(("fault", "created"),
                         [("reset_before_create", 0), ("reset_after_create", 1)])
async def test_connection_resets(simulator_factory: Factory, client_for: ClientFor,
                                 fault: str, created: int) -> None:
    async with simulator_factory(faults={fault: 1.0}) as sim:
        client = client_for(sim)
        image = await _image(sim, client)
        status, _, _ = await _post(client, _body(image))
        assert status == "reset"
        assert sim.stats.state.created_jobs == created
        sim.set_faults(**{fault: 0.0})
        assert len(await _listed(client)) == created


async def test_slow_responses(simulator_factory: Factory, client_for: ClientFor) -> None:
    async with simulator_factory(faults={"slow_response": 1.0}, slow_seconds=0.3) as sim:
        client = client_for(sim)
        started = time.monotonic()
        status, _, _ = await client.call("GET", "/jobs")
        assert status == 200 and time.monotonic() - started >= 0.3


@pytest.mark.parametrize(("fault", "word"),
                         [("job_failure", "permanent"), ("transient_job_failure", "temporary")])
async def test_job_failures_explain_themselves(simulator_factory: Factory, client_for: ClientFor,
                                              fault: str, word: str) -> None:
    async with simulator_factory(faults={fault: 1.0}) as sim:
        client = client_for(sim)
        image = await _image(sim, client)
        _, _, body = await _post(client, _body(image))
        job = await client.wait_job(body["job"]["jobId"])
        assert job["status"] == "failure" and "assetIds" not in job["metadata"]
        assert job["metadata"]["error"] and word in job["metadata"]["hint"]


async def test_truncated_download_then_a_full_one(simulator_factory: Factory,
                                                  client_for: ClientFor) -> None:
    async with simulator_factory(faults={"truncated_download": 1.0}) as sim:
        client = client_for(sim)
        image = await _image(sim, client)
        _, _, body = await _post(client, _body(image))
        job = await client.wait_job(body["job"]["jobId"])
        _, _, asset = await client.call("GET", f"/assets/{job['metadata']['assetIds'][0]}")
        with pytest.raises(aiohttp.ClientPayloadError):
            async with client.session.get(asset["asset"]["url"]) as response:
                await response.read()
        sim.set_faults(truncated_download=0.0)
        async with client.session.get(asset["asset"]["url"]) as response:
            assert len(await response.read()) == asset["asset"]["properties"]["size"]


async def test_expired_urls_can_be_refreshed(simulator_factory: Factory,
                                             client_for: ClientFor) -> None:
    async with simulator_factory(faults={"expired_url": 1.0}) as sim:
        client = client_for(sim)
        image = await _image(sim, client)
        _, _, body = await _post(client, _body(image))
        job = await client.wait_job(body["job"]["jobId"])
        path = f"/assets/{job['metadata']['assetIds'][0]}"
        _, _, stale = await client.call("GET", path)
        async with client.session.get(stale["asset"]["url"]) as response:
            assert response.status == 403
        sim.set_faults(expired_url=0.0)
        _, _, fresh = await client.call("GET", path)
        async with client.session.get(fresh["asset"]["url"]) as response:
            assert response.status == 200


async def test_credit_exhaustion(simulator_factory: Factory, client_for: ClientFor) -> None:
    async with simulator_factory(credit_limit=2) as sim:
        client = client_for(sim)
        image = await client.upload_image()
        statuses = [(await _post(client, _body(image, f"p{i}")))[:3:2] for i in range(3)]
        assert [s for s, _ in statuses] == [200, 200, 402]
        assert "Not enough creative units" in statuses[2][1]["message"]


async def test_parallel_cap_answers_429_and_creates_nothing() -> None:
    now = [0.0]
    config = SimulatorConfig(max_parallel_jobs=2, job_seconds=(10, 10))
    async with start_simulator(config, clock=lambda: now[0]) as sim, \
            aiohttp.ClientSession() as session:
        client = SimClient(session, sim)
        image = await client.upload_image()
        first = [await _post(client, _body(image, f"p{i}")) for i in range(3)]
        assert [s for s, _, _ in first] == [200, 200, 429]
        _, headers, body = first[2]
        # The error shape of every other answer, and both delay hints the SDK reads.
        assert body == {"message": "Too many custom jobs in progress for this account: "
                                   "wait for some to finish."}
        assert (headers["retry-after"], headers["retry-after-ms"]) == ("1", "500")
        assert sim.stats.jobs_in_flight == 2 and sim.stats.state.created_jobs == 2
        assert sim.stats.creative_units_charged == 200 and sim.stats.cap_refusals == 1
        assert sim.stats.faults_injected == {}
        now[0] = 11.0
        assert (await _post(client, _body(image, "p2")))[0] == 200
        assert sim.stats.max_jobs_in_flight == 2 and sim.stats.cap_refusals == 1
        assert sim.stats.to_json()["capRefusals"] == 1


async def test_cap_refusal_hints_follow_retry_after_seconds() -> None:
    config = SimulatorConfig(max_parallel_jobs=1, job_seconds=(10, 10), retry_after_seconds=2.25)
    async with start_simulator(config, clock=lambda: 0.0) as sim, \
            aiohttp.ClientSession() as session:
        client = SimClient(session, sim)
        image = await client.upload_image()
        replies = [await _post(client, _body(image, f"p{i}")) for i in range(3)]
        assert [status for status, _, _ in replies] == [200, 429, 429]
        assert (replies[1][1]["retry-after"], replies[1][1]["retry-after-ms"]) == ("3", "2250")
        assert sim.stats.cap_refusals == 2 and len(sim.stats.jobs) == 1


@pytest.mark.parametrize(("fault", "statuses"),
                         [("rate_limit", {429}), ("server_error", {500, 502, 503})])
async def test_get_bulk_meets_the_request_faults(simulator_factory: Factory,
                                                 client_for: ClientFor, fault: str,
                                                 statuses: set[int]) -> None:
    async with simulator_factory() as sim:
        client = client_for(sim)
        image = await client.upload_image()
        sim.set_faults(**{fault: 1.0})
        status, _, body = await client.call("POST", "/assets/get-bulk",
                                            json={"assetIds": [image]})
        assert status in statuses and "message" in body
        assert sim.stats.faults_injected[fault] == 1
        sim.set_faults(**{fault: 0.0})
        status, _, body = await client.call("POST", "/assets/get-bulk",
                                            json={"assetIds": [image]})
        assert status == 200 and [a["id"] for a in body["assets"]] == [image]
        assert sim.stats.requests_by_endpoint["POST /v1/assets/get-bulk"] == 2


async def test_cancel_refused_fault(simulator_factory: Factory, client_for: ClientFor) -> None:
    async with simulator_factory(faults={"cancel_refused": 1.0}, job_seconds=(30, 30)) as sim:
        client = client_for(sim)
        image = await client.upload_image()
        _, _, body = await _post(client, _body(image))
        status, _, reply = await client.call("POST", f"/jobs/{body['job']['jobId']}/action",
                                             json={"action": "cancel"})
        assert status == 400 and "inference" in reply["message"]


async def test_accounting_of_a_known_workload(simulator: Simulator, sim_client: Any) -> None:
    image = await sim_client.upload_image()
    bodies = [_body(image, "a"), _body(image, "b"), _body(image, "a")]
    ids = [(await _post(sim_client, body))[2]["job"]["jobId"] for body in bodies]
    for job_id in ids:
        await sim_client.wait_job(job_id)
    stats = simulator.stats
    assert stats.submissions_by_fingerprint == {
        request_fingerprint(MODEL, bodies[0]): 2, request_fingerprint(MODEL, bodies[1]): 1}
    assert stats.requests_by_endpoint["POST /v1/generate/custom/{modelId}"] == 3
    assert stats.requests_by_endpoint["POST /v1/assets"] == 1
    assert stats.max_jobs_in_flight == 3 and stats.jobs_in_flight == 0
    assert [job.status for job in stats.jobs] == ["success"] * 3
    assert [job.job_id for job in stats.jobs] == ids
    assert stats.creative_units_charged == 300
    assert len(set(ids)) == 3
