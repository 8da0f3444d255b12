"""The simulator's bulk asset lookup, team limits and cap refusal, read by the official SDK.

The SDK runs with `_strict_response_validation=True`, so every required field of its
response types must be present with the right type: the shapes are checked, not assumed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import scenario_sdk
from scenario_sdk import AsyncScenario
from scenario_sdk.types import AssetGetBulkResponse, TeamRetrieveLimitsResponse

from runner.simulator import Simulator

BODY = {"prompt": "A city at dawn", "duration": "5"}
MODEL = "model_kling-v3-t2v-4k"


@pytest.fixture
async def capped(simulator_factory: Any) -> AsyncIterator[tuple[Simulator, AsyncScenario]]:
    async with simulator_factory(max_parallel_jobs=1, job_seconds=(0.3, 0.3)) as sim, \
            AsyncScenario(api_key="k", api_secret="s", base_url=sim.base_url, max_retries=0,
                          _strict_response_validation=True) as client:
        yield sim, client


async def _finished_asset(client: AsyncScenario, prompt: str) -> str:
    reply = await client.generate.run_model(MODEL, body={**BODY, "prompt": prompt})
    with anyio.fail_after(5):
        while True:
            job = (await client.jobs.retrieve(reply.job.job_id)).job
            if job.status == "success" and job.metadata.asset_ids:
                return job.metadata.asset_ids[0]
            await anyio.sleep(0.02)


async def test_the_sdk_parses_get_bulk(capped: tuple[Simulator, AsyncScenario]) -> None:
    sim, client = capped
    ids = [await _finished_asset(client, prompt) for prompt in ("one", "two")]
    bulk = await client.assets.get_bulk(asset_ids=[*ids, "asset_unknown"],
                                        original_assets=True, project_id="proj_simulator")
    assert isinstance(bulk, AssetGetBulkResponse)
    assert [asset.id for asset in bulk.assets] == ids
    for asset in bulk.assets:
        single = (await client.assets.retrieve(asset.id)).asset
        assert asset.model_dump(exclude={"url"}) == single.model_dump(exclude={"url"})
        assert asset.kind == "video" and asset.url.startswith(sim.cdn_url)
    with pytest.raises(scenario_sdk.BadRequestError):
        await client.assets.get_bulk(asset_ids=[f"asset_{i}" for i in range(201)])


async def test_the_sdk_parses_team_limits(capped: tuple[Simulator, AsyncScenario]) -> None:
    _, client = capped
    limits = await client.teams.retrieve_limits("team_whatever")
    assert isinstance(limits, TeamRetrieveLimitsResponse)
    assert limits.limits.parallel_custom_jobs == 1 and limits.plan == "cu-pro"
    assert limits.values.creative_units == 0 and limits.one_shot_creative_units == []


async def test_a_cap_refusal_is_the_sdks_rate_limit_error(
    capped: tuple[Simulator, AsyncScenario],
) -> None:
    sim, client = capped
    await client.generate.run_model(MODEL, body=BODY)
    with pytest.raises(scenario_sdk.RateLimitError) as refused:
        await client.generate.run_model(MODEL, body={**BODY, "prompt": "second"})
    assert refused.value.status_code == 429
    assert refused.value.body == {"message": "Too many custom jobs in progress for this "
                                             "account: wait for some to finish."}
    assert refused.value.response.headers["retry-after-ms"] == "500"
    assert sim.stats.cap_refusals == 1 and len(sim.stats.jobs) == 1
    # The SDK's own retries honour retry-after-ms: 0.5 s later the place is free again.
    retrying = client.with_options(max_retries=2)
    reply = await retrying.generate.run_model(MODEL, body={**BODY, "prompt": "third"})
    assert reply.job.status == "queued" and len(sim.stats.jobs) == 2
