"""A run whose videos go to object storage, on one machine: the engine with its JSONL
ledger in a temp folder and an `ObjectStoreDestination`, against the built-in simulator and
moto's real S3 server. Every video lands in the bucket verified before its `downloaded`
event; a video the store mangles is not recorded; a store that keeps failing halts the run;
and neither set of credentials ever reaches the other server (counted at recording
proxies in front of both)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from yarl import URL

from runner.api import RetryPolicy, credentials_from_env
from runner.batch import (
    Endpoint,
    HaltReason,
    RunResult,
    default_options,
    live_state,
    prepare_run,
    run_batch,
)
from runner.clock import REAL_CLOCK
from runner.errors import EXIT_HALTED, EXIT_JOBS_FAILED, EXIT_OK
from runner.ledger import Downloaded, DownloadFailed, JsonlLedger, Superseded
from runner.manifest import load_manifest
from runner.objstore import (
    ObjectStoreDestination,
    S3Config,
    S3Location,
    Spool,
    UploadTuning,
    open_store,
    stored_assets,
    stored_videos,
)
from runner.schemas import SchemaRegistry
from runner.simulator import Simulator
from tests.helpers.faultproxy import Fault, FaultProxy, FaultRule, start_fault_proxy
from tests.helpers.runs import t2v_jobs, write_manifest
from tests.helpers.s3 import TEST_KEY_ID, TEST_SECRET, MotoServer

FAST_RETRY = UploadTuning(retry=RetryPolicy(max_attempts=3, initial_delay=0.01,
                                            max_delay=0.02))


@dataclass
class Proxies:
    api: FaultProxy  # in front of the simulator's API
    s3: FaultProxy  # in front of moto


@pytest.fixture
async def proxies(simulator: Simulator, moto: MotoServer) -> AsyncIterator[Proxies]:
    origin = str(URL(simulator.base_url).origin())
    async with start_fault_proxy(origin) as api, start_fault_proxy(moto.endpoint) as s3:
        yield Proxies(api, s3)


async def _run(
    tmp_path: Path, simulator: Simulator, moto: MotoServer, proxies: Proxies,
    location: S3Location, *, jobs: int = 5, tuning: UploadTuning = FAST_RETRY,
    redo: frozenset[str] = frozenset(), changed: str | None = None,
) -> tuple[RunResult, Spool, Path]:
    specs = t2v_jobs(jobs)
    for spec in specs:
        if spec["id"] == changed:  # a new prompt for this job
            spec["params"]["prompt"] += ", in the rain"
    manifest_path = write_manifest(tmp_path / "m", specs)
    registry = SchemaRegistry.load()
    manifest = load_manifest(manifest_path, registry)
    out_dir = tmp_path / "state"  # the ledger's folder; the videos go to the bucket
    options = dataclasses.replace(default_options(out_dir, simulated=True), concurrency=3,
                                  redo_ids=redo)
    api_base = proxies.api.url + URL(simulator.base_url).path
    credentials = credentials_from_env(simulator.credentials_env())
    assert credentials is not None
    spool = Spool(tmp_path / "spool", capacity=64 * 1024 * 1024).open()
    async with open_store(S3Config.from_env(moto.env(proxies.s3.url)), location,
                          tuning=tuning) as store:
        stored = await stored_videos(store)
        with prepare_run(manifest, options,
                         verified=lambda record: stored_assets(stored, record)) as prepared:
            live = live_state(prepared, REAL_CLOCK)
            destination = ObjectStoreDestination(store, spool, concurrency=3)
            result = await run_batch(prepared, live, registry=registry,
                                     endpoint=Endpoint(api_base, credentials),
                                     clock=REAL_CLOCK, destination=destination)
    return result, spool, out_dir


async def test_every_video_lands_in_the_bucket_verified_before_it_is_recorded(
        tmp_path: Path, simulator: Simulator, moto: MotoServer, proxies: Proxies) -> None:
    bucket = moto.new_bucket()
    location = S3Location.parse(f"s3://{bucket}/batches/spring/")
    result, spool, out_dir = await _run(tmp_path, simulator, moto, proxies, location)
    assert result.exit_code == EXIT_OK and result.halt is None
    s3 = moto.client()
    events = list(JsonlLedger(out_dir).read_events())
    downloaded = [e for e in events if isinstance(e, Downloaded)]
    assert sorted(e.path for e in downloaded) == [f"videos/clip-{i:03d}.mp4" for i in range(5)]
    for event in downloaded:
        body = s3.get_object(Bucket=bucket, Key=f"batches/spring/{event.path}")["Body"].read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (event.bytes, event.sha256)
        # Each object was uploaded and checked (HEAD) by the runner, then recorded.
        key_path = f"/{bucket}/batches/spring/{event.path}"
        methods = [s.method for s in proxies.s3.seen if s.path == key_path]
        assert methods[:1] == ["PUT"] and "HEAD" in methods
    assert not (out_dir / "videos").exists() or not any((out_dir / "videos").iterdir())
    assert spool.files() == [] and spool.used == 0  # uploaded, verified, removed

    metadata = s3.get_object(Bucket=bucket, Key="batches/spring/metadata.jsonl")["Body"].read()
    rows = [json.loads(line) for line in metadata.splitlines()]
    assert sorted(r["file_name"] for r in rows) == sorted(e.path for e in downloaded)
    assert {r["sha256"] for r in rows} == {e.sha256 for e in downloaded}
    results = s3.get_object(Bucket=bucket, Key="batches/spring/results.csv")["Body"].read()
    table = list(csv.DictReader(io.StringIO(results.decode("utf-8"))))
    assert len(table) == 5
    page = s3.get_object(Bucket=bucket, Key="batches/spring/report.html")
    assert page["ContentType"].startswith("text/html")
    assert b"clip-004" in page["Body"].read()


async def test_credentials_never_cross_between_the_api_and_the_store(
        tmp_path: Path, simulator: Simulator, moto: MotoServer, proxies: Proxies) -> None:
    location = S3Location.parse(f"s3://{moto.new_bucket()}/x")
    result, _, _ = await _run(tmp_path, simulator, moto, proxies, location, jobs=3)
    assert result.exit_code == EXIT_OK
    credentials = credentials_from_env(simulator.credentials_env())
    assert credentials is not None
    api_secret = credentials.authorization.split(" ", 1)[1]
    assert proxies.api.seen and proxies.s3.seen
    for request in proxies.s3.seen:
        values = " ".join(request.headers.values())
        assert api_secret not in values and "Basic " not in values
        assert request.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential="
                                                           f"{TEST_KEY_ID}/")
    for request in proxies.api.seen:
        values = " ".join(request.headers.values())
        assert TEST_KEY_ID not in values and TEST_SECRET not in values
        assert "AWS4" not in values
        assert not any(name.lower().startswith("x-amz-") for name in request.headers)
        assert request.headers["Authorization"] == credentials.authorization


async def test_a_video_the_store_mangles_is_not_recorded_downloaded(
        tmp_path: Path, simulator: Simulator, moto: MotoServer, proxies: Proxies) -> None:
    bucket = moto.new_bucket()
    location = S3Location.parse(f"s3://{bucket}/p")
    proxies.s3.add(FaultRule(Fault.CORRUPT, method="PUT", path_contains="videos/clip-001"))
    result, spool, out_dir = await _run(tmp_path, simulator, moto, proxies, location, jobs=3,
                                        tuning=dataclasses.replace(FAST_RETRY, read_back=True))
    assert result.exit_code == EXIT_JOBS_FAILED and result.halt is None
    events = list(JsonlLedger(out_dir).read_events())
    assert "clip-001" not in {e.job for e in events if isinstance(e, Downloaded)}
    failed = [e for e in events if isinstance(e, DownloadFailed)]
    assert [e.job for e in failed] == ["clip-001"]
    assert "does not match" in failed[0].error
    keys = {o["Key"] for o in moto.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert "p/videos/clip-001.mp4" not in keys
    assert {"p/videos/clip-000.mp4", "p/videos/clip-002.mp4"} <= keys
    assert spool.files() == []


async def test_a_store_that_keeps_refusing_halts_the_run_resumably(
        tmp_path: Path, simulator: Simulator, moto: MotoServer, proxies: Proxies) -> None:
    location = S3Location.parse(f"s3://{moto.new_bucket()}/p")
    proxies.s3.add(FaultRule(Fault.SLOW_DOWN, method="PUT", path_contains="/videos/",
                             times=0))
    result, spool, out_dir = await _run(tmp_path, simulator, moto, proxies, location, jobs=3)
    assert result.exit_code == EXIT_HALTED and result.halt is HaltReason.STORE
    events = list(JsonlLedger(out_dir).read_events())
    assert not [e for e in events if isinstance(e, Downloaded)]
    assert all("not stored" in e.error for e in events if isinstance(e, DownloadFailed))
    assert spool.files() == []


async def test_a_second_run_finds_the_videos_in_the_bucket_and_sends_nothing(
        tmp_path: Path, simulator: Simulator, moto: MotoServer, proxies: Proxies) -> None:
    location = S3Location.parse(f"s3://{moto.new_bucket()}/p")
    first, _, _ = await _run(tmp_path, simulator, moto, proxies, location, jobs=3)
    assert first.exit_code == EXIT_OK
    posts = simulator.stats.generate_attempts_by_fingerprint.total()
    puts = len([s for s in proxies.s3.seen if s.method == "PUT" and "/videos/" in s.path])
    again, _, _ = await _run(tmp_path, simulator, moto, proxies, location, jobs=3)
    assert again.exit_code == EXIT_OK
    assert simulator.stats.generate_attempts_by_fingerprint.total() == posts == 3
    assert len([s for s in proxies.s3.seen
                if s.method == "PUT" and "/videos/" in s.path]) == puts == 3


async def test_a_redo_keeps_the_paid_video_it_replaces_in_the_bucket(
        tmp_path: Path, simulator: Simulator, moto: MotoServer, proxies: Proxies) -> None:
    bucket = moto.new_bucket()
    location = S3Location.parse(f"s3://{bucket}/p")
    first, _, out_dir = await _run(tmp_path, simulator, moto, proxies, location, jobs=2)
    assert first.exit_code == EXIT_OK
    old = moto.client().head_object(Bucket=bucket, Key="p/videos/clip-001.mp4")
    again, _, _ = await _run(tmp_path, simulator, moto, proxies, location, jobs=2,
                             redo=frozenset({"clip-001"}), changed="clip-001")
    assert again.exit_code == EXIT_OK
    events = list(JsonlLedger(out_dir).read_events())
    kept = [e for e in events if isinstance(e, Superseded)]
    assert [(e.job, e.previous, e.path) for e in kept] == [
        ("clip-001", "videos/clip-001.mp4", "superseded/clip-001/attempt-1/clip-001.mp4")]
    s3 = moto.client()
    moved = s3.head_object(Bucket=bucket, Key="p/superseded/clip-001/attempt-1/clip-001.mp4")
    assert moved["Metadata"] == old["Metadata"] and moved["ContentLength"] == kept[0].bytes
    assert kept[0].sha256 == old["Metadata"]["sha256"]
    latest = [e for e in events if isinstance(e, Downloaded) and e.job == "clip-001"][-1]
    current = s3.head_object(Bucket=bucket, Key="p/videos/clip-001.mp4")
    assert current["Metadata"]["sha256"] == latest.sha256
