"""Failure paths of the engine found in review: each test names the scenario it guards.

Pure parts are tested with fakes; the run-level ones through the CLI against the simulator.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from engine_helpers import background_simulator, ledger_events, run_cli, t2v_jobs, write_manifest

from runner.canonical import canonical_json
from runner.clock import Clock
from runner.domain import RemoteJob, RemoteStatus
from runner.errors import AuthError, LedgerWriteError, TransientApiError
from runner.ledger import Intended, LedgerWriter
from runner.ledger.journal import encode_event
from runner.polling import ListWatcher, PollPolicy, wait_terminal
from runner.reconcile import Intent, Reconciler, ambiguous_intents, match_intents
from tests._http import FakeTime

pytestmark = pytest.mark.usefixtures("api_credentials")

BODY = canonical_json({"image": "asset_a", "video": "asset_v"})


def job(job_id: str, status: str = "success", body: str = BODY) -> RemoteJob:
    return RemoteJob(job_id, RemoteStatus.parse(status), status, 1.0, input=json.loads(body),
                     created_at="2030-01-01T00:00:01Z", updated_at="2030-01-01T00:00:02Z")


# -- one body, two models: the API's job does not say its model ---------------------------


def test_intents_of_two_models_with_one_body_adopt_nothing() -> None:
    intents = [Intent("v26", "model_kling-v2-6-motion-control", BODY, "2030-01-01T00:00:00Z"),
               Intent("v3", "model_kling-v3-pro-motion-control", BODY, "2030-01-01T00:00:00Z")]
    assert {i.job for i in ambiguous_intents(intents)} == {"v26", "v3"}
    assert match_intents(intents, [job("job_1")], set()) == {}


async def test_posts_of_one_body_for_two_models_are_never_in_the_air_together() -> None:
    async def no_jobs(_: str) -> AsyncIterator[RemoteJob]:
        return
        yield  # pragma: no cover

    rec = Reconciler(no_jobs, claimed=set(), settle=0, clock=FakeTime().as_clock())
    order: list[str] = []
    a_holds, release_a = anyio.Event(), anyio.Event()

    async def model_a() -> None:
        # The same model twice: repeats may fly together.
        async with rec.holding(BODY, "model_a"), rec.holding(BODY, "model_a"):
            a_holds.set()
            await release_a.wait()
            order.append("a ends")

    async def model_b() -> None:
        await a_holds.wait()
        async with rec.holding(BODY, "model_b"):
            order.append("b began")

    async with anyio.create_task_group() as tg:
        tg.start_soon(model_a)
        tg.start_soon(model_b)
        await a_holds.wait()
        await anyio.sleep(0.05)  # model_b is waiting for the body by now
        release_a.set()
    assert order == ["a ends", "b began"]


# -- outages and failures that must not end or hang a run ----------------------------------


async def test_polling_rides_out_transient_errors_until_the_deadline() -> None:
    answers: list[RemoteJob | Exception] = [TransientApiError("503"), TransientApiError("503"),
                                            job("job_1")]
    time = FakeTime()

    async def get_job(_: str) -> RemoteJob:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    final = await wait_terminal(get_job, "job_1", policy=PollPolicy(1, 2, 4, 100),
                                clock=time.as_clock())
    assert final.status is RemoteStatus.SUCCESS and answers == []


async def test_watcher_passes_an_auth_failure_to_every_waiting_job() -> None:
    async def listing(_: str) -> AsyncIterator[RemoteJob]:
        raise AuthError("401 Unauthorized", status=401)
        yield  # pragma: no cover

    async def get_job(job_id: str) -> RemoteJob:
        return job(job_id, "in-progress")

    watcher = ListWatcher(listing, get_job, clock=Clock(monotonic=anyio.current_time),
                          interval=0.01)
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run)
        with pytest.raises(AuthError):
            await watcher.wait("job_1", deadline=5)
        tg.cancel_scope.cancel()


class FullDisk:
    async def append_many(self, events: list[dict[str, Any]]) -> None:
        raise OSError(28, "No space left on device")

    def read_events(self) -> Any:
        return iter(())


async def test_a_failed_ledger_write_raises_instead_of_hanging() -> None:
    writer = LedgerWriter(FullDisk())
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            with pytest.raises(LedgerWriteError, match="No space left"):
                await writer.append(Intended(job="a", attempt=1))
            with pytest.raises(LedgerWriteError):
                await writer.append(Intended(job="a", attempt=1))
            writer.close()


# -- through the CLI ------------------------------------------------------------------------


def test_resume_reposts_lost_intents_within_the_concurrency_limit(tmp_path: Path) -> None:
    jobs = t2v_jobs(8)
    manifest = write_manifest(tmp_path, jobs)
    out = tmp_path / "out"
    out.mkdir()
    # A crashed run left eight intents whose POSTs never reached the API.
    # (Stamped in the future, as another machine's clock might: the wait stays bounded.)
    lines = [encode_event(Intended(job=j["id"], ts="2030-01-01T00:00:00.000Z", attempt=1,
                                   model=j["model"], params=j["params"], body=j["params"],
                                   fingerprint="f"))
             for j in jobs]
    (out / "ledger.jsonl").write_bytes(b"".join(lines))
    with background_simulator(job_seconds=(0.2, 0.3)) as sim:
        assert run_cli(manifest, out, sim, "--concurrency", "2") == 0
        assert sim.stats.max_jobs_in_flight <= 2
        assert set(sim.stats.submissions_by_fingerprint.values()) == {1}
    attempts = [e["attempt"] for e in ledger_events(out) if e["event"] == "submitted"]
    assert attempts == [2] * 8


def test_wrong_credentials_with_a_budget_halt_with_exit_3(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    with background_simulator(api_key="right", api_secret="right") as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--budget", "1000") == 3
        assert sim.stats.jobs == []


def test_an_empty_asset_file_fails_its_job_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    bad = {"id": "bad", "model": "model_kling-v2-1-pro",
           "params": {"prompt": "x", "startImage": "empty.png"}}
    manifest = write_manifest(tmp_path, [bad, *t2v_jobs(2)])
    out = tmp_path / "out"
    with background_simulator() as sim:
        code = run_cli(manifest, out, sim)
    err = capsys.readouterr().err
    if code == 2:  # the manifest check caught it first: also fine, nothing was sent
        assert "empty.png" in err and sim.stats.jobs == []
        return
    assert code == 1 and "Traceback" not in err
    rejected = [e for e in ledger_events(out) if e["event"] == "rejected"]
    assert [e["job"] for e in rejected] == ["bad"] and "empty" in rejected[0]["error"]
    assert len(list((out / "videos").glob("*.mp4"))) == 2


def test_job_ids_whose_videos_would_share_names_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = t2v_jobs(2)
    jobs[0]["id"], jobs[1]["id"] = "x", "x_2"
    manifest = write_manifest(tmp_path, jobs)
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim) == 2
        assert sum(sim.stats.requests_by_endpoint.values()) == 0
    assert "x_2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("status", "message", "credit"),
    [
        (400, 'Invalid input: prompt "a credit card ad" is too long', False),
        (422, "quota of the prompt field: 2500 characters", False),
        (400, "Not enough creative units to run this generation", True),
        (403, "Insufficient credits", True),
        (402, "Payment required", True),
    ],
)
def test_only_precise_money_phrases_halt_as_credit_failures(
    status: int, message: str, credit: bool
) -> None:
    from datetime import UTC, datetime

    from runner.api.failures import failure_for_status
    from runner.errors import CreditError

    failure = failure_for_status(status, {"message": message}, {}, method="POST",
                                 url="generate/custom/m", now=datetime.now(UTC))
    assert isinstance(failure.error, CreditError) is credit


def test_attempt_numbers_never_repeat_across_reposts_and_retries(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(4))
    out = tmp_path / "out"
    faults = {"transient_job_failure": 1.0, "reset_before_create": 0.5}
    with background_simulator(seed=5, faults=faults) as sim:
        assert run_cli(manifest, out, sim, "--auto-retries", "2") == 1
    intents: dict[str, list[int]] = {}
    for event in ledger_events(out):
        if event["event"] == "intent":
            intents.setdefault(event["job"], []).append(event["attempt"])
    for attempts in intents.values():
        assert attempts == sorted(set(attempts)), attempts  # strictly increasing


async def test_two_accounts_on_one_api_never_share_cached_asset_ids(tmp_path: Path) -> None:
    import aiohttp

    from runner.api.client import Credentials, ScenarioClient
    from runner.api.uploads import AssetUploader
    from runner.simulator import SimulatorConfig, start_simulator

    image = tmp_path / "hero.png"
    from conftest import png_bytes

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
