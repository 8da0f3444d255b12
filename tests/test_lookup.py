"""Asset lookups of jobs that finish together share one `POST /v1/assets/get-bulk`; a URL
refreshed after it expired comes from get-bulk too."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import anyio
import pytest

from runner.api import AssetLookup, Credentials, ScenarioClient, download_asset
from runner.clock import Clock
from runner.errors import PermanentApiError
from runner.simulator import Simulator
from tests.helpers.runs import background_simulator, run_cli, t2v_jobs, write_manifest
from tests.helpers.simulator import SimulatorFactory

BODY = {"prompt": "A lighthouse at dusk", "duration": "5"}
MODEL = "model_kling-v3-t2v-4k"
BULK = "POST /v1/assets/get-bulk"
ONE = "GET /v1/assets/{assetId}"


async def no_sleep(_: float) -> None:
    await anyio.lowlevel.checkpoint()


def client(session: aiohttp.ClientSession, sim: Simulator) -> ScenarioClient:
    return ScenarioClient(session, sim.base_url, Credentials("Bearer lookups"),
                          clock=Clock(sleep=no_sleep))


async def finished_assets(api: ScenarioClient, count: int) -> list[str]:
    ids: list[str] = []
    for index in range(count):
        job = (await api.generate(MODEL, {**BODY, "prompt": f"shot {index}"})).job
        with anyio.fail_after(10):
            while not (job := await api.get_job(job.job_id)).status.terminal:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        ids.extend(job.asset_ids)
    return ids


async def test_lookups_made_together_share_one_bulk_request(
    simulator_factory: SimulatorFactory,
) -> None:
    async with simulator_factory() as sim, aiohttp.ClientSession() as session:
        api = client(session, sim)
        ids = await finished_assets(api, 5)
        lookup = AssetLookup(api)
        found: dict[str, str] = {}

        async def look(asset_id: str) -> None:
            found[asset_id] = (await lookup(asset_id)).url

        async with anyio.create_task_group() as tg:
            tg.start_soon(lookup.run)
            async with anyio.create_task_group() as lookups:
                for asset_id in ids:
                    lookups.start_soon(look, asset_id)
            tg.cancel_scope.cancel()
        assert set(found) == set(ids) and all(found.values())
        assert lookup.requests == 1
        assert sim.stats.requests_by_endpoint[BULK] == 1
        assert sim.stats.requests_by_endpoint.get(ONE, 0) == 0


async def test_an_unknown_asset_is_a_permanent_error_for_that_lookup_only(
    simulator_factory: SimulatorFactory,
) -> None:
    async with simulator_factory() as sim, aiohttp.ClientSession() as session:
        api = client(session, sim)
        (real,) = await finished_assets(api, 1)
        lookup = AssetLookup(api)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lookup.run)
            with pytest.raises(PermanentApiError, match="asset_nope"):
                await lookup("asset_nope")
            assert (await lookup(real)).asset_id == real
            tg.cancel_scope.cancel()


async def test_an_expired_url_is_refreshed_through_the_bulk_lookup(
    simulator_factory: SimulatorFactory, tmp_path: Path
) -> None:
    async with simulator_factory(faults={"expired_url": 0.3}, seed=3) as sim, \
            aiohttp.ClientSession() as session, aiohttp.ClientSession() as cdn:
        api = client(session, sim)
        ids = await finished_assets(api, 6)
        lookup = AssetLookup(api, linger=0.0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lookup.run)
            for index, asset_id in enumerate(ids):
                await download_asset(api, cdn, asset_id, tmp_path / f"{index}.mp4",
                                     lookup=lookup)
            tg.cancel_scope.cancel()
        assert sim.stats.faults_injected["expired_url"] > 0  # some URLs had to be refreshed
        assert sim.stats.requests_by_endpoint[BULK] > len(ids)  # the refreshes went there too
        assert sim.stats.requests_by_endpoint.get(ONE, 0) == 0


@pytest.mark.usefixtures("api_credentials")
def test_a_run_asks_for_no_asset_one_by_one(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(12))
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--concurrency", "12") == 0
        by_endpoint = sim.stats.requests_by_endpoint
        assert by_endpoint.get(ONE, 0) == 0
        assert 1 <= by_endpoint[BULK] < 12
        assert by_endpoint.get("GET /v1/jobs/{jobId}", 0) == 0  # the listing said it all
