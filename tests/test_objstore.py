"""The object store against moto's real S3 server (a subprocess on loopback): locations and
config, verified single and multipart uploads, rejected mismatches, aborted uploads, the
spool's bound, and retries through a fault-injecting proxy."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from runner.api import RetryPolicy, part_ranges
from runner.clock import Clock
from runner.errors import ObjectStoreError, UploadVerificationError, UsageError
from runner.objstore import (
    ObjectStore,
    S3Config,
    S3Location,
    Spool,
    UploadTuning,
    complete_store_moves,
    composite_checksum,
    default_spool_dir,
    open_object_destination,
    open_store,
    stored_object_problem,
)
from tests.helpers.faultproxy import Fault, FaultRule, background_fault_proxy, start_fault_proxy
from tests.helpers.s3 import MotoServer

MiB = 1024 * 1024
# S3's (and moto's) smallest part is 5 MiB: the tests cut files in 5 MiB parts.
SMALL_PARTS = UploadTuning(part_size=5 * MiB, multipart_threshold=5 * MiB, parts_in_flight=2,
                           retry=RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.02))


async def _no_sleep(_seconds: float) -> None:
    await anyio.lowlevel.checkpoint()


NO_WAIT = Clock(sleep=_no_sleep)


# --- locations and config (pure) -------------------------------------------------------


@pytest.mark.parametrize(("text", "bucket", "prefix", "spelled"), [
    ("s3://videos/spring", "videos", "spring", "s3://videos/spring"),
    ("s3://videos/spring/", "videos", "spring", "s3://videos/spring"),
    ("s3://videos//a//b/", "videos", "a/b", "s3://videos/a/b"),
    ("s3://videos", "videos", "", "s3://videos"),
    ("s3://videos/", "videos", "", "s3://videos"),
    ("S3://my.bucket-1/x", "my.bucket-1", "x", "s3://my.bucket-1/x"),
])
def test_location_parses_and_normalizes(text: str, bucket: str, prefix: str,
                                        spelled: str) -> None:
    location = S3Location.parse(text)
    assert (location.bucket, location.prefix, str(location)) == (bucket, prefix, spelled)
    assert S3Location.parse(str(location)) == location


@pytest.mark.parametrize(("text", "says"), [
    ("s3://", "no bucket name"),
    ("s3:///prefix", "no bucket name"),
    ("s3://ab/x", "3 to 63 characters"),
    ("s3://" + "a" * 64, "3 to 63 characters"),
    ("s3://My_Bucket/x", "lowercase letters"),
    ("s3://-bucket/x", "start and end"),
    ("s3://a..b/x", "'..'"),
    ("s3://192.168.1.1/x", "IP address"),
    ("s3://bucket/a/../b", "'.' or '..'"),
    ("s3://bucket/x?versionId=1", "no query"),
    ("gs://bucket/x", "not an object-store location"),
    ("output/demo", "not an object-store location"),
])
def test_location_refuses_with_a_clear_message(text: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        S3Location.parse(text)
    assert says in str(caught.value)
    assert "s3://BUCKET/PREFIX" in str(caught.value)


def test_keys_join_under_the_prefix() -> None:
    location = S3Location.parse("s3://videos/batches/spring/")
    assert location.key("videos/a.mp4") == "batches/spring/videos/a.mp4"
    assert location.key("/metadata.jsonl") == "batches/spring/metadata.jsonl"
    assert location.relative("batches/spring/videos/a.mp4") == "videos/a.mp4"
    assert S3Location.parse("s3://videos").key("videos/a.mp4") == "videos/a.mp4"
    with pytest.raises(ValueError, match="not under"):
        location.relative("batches/summer/videos/a.mp4")


def test_config_reads_the_aws_variables_only() -> None:
    config = S3Config.from_env({
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ENDPOINT_URL_S3": "http://s3:9000",
        "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "tok", "AWS_DEFAULT_REGION": "eu-west-3",
        "SCENARIO_SDK_API_KEY": "not-for-s3",
    })
    assert config.endpoint_url == "http://s3:9000"  # the S3-specific one wins
    assert (config.access_key_id, config.secret_access_key, config.session_token) == (
        "id", "secret", "tok")
    assert config.region == "eu-west-3" and config.path_style
    assert "secret" not in repr(config) and "tok" not in repr(config)
    aws = S3Config.from_env({"AWS_ACCESS_KEY_ID": "i", "AWS_SECRET_ACCESS_KEY": "s",
                             "AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-west-3"})
    assert aws.endpoint_url is None and not aws.path_style and aws.region == "us-west-2"


@pytest.mark.parametrize(("env", "says"), [
    ({}, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set"),
    ({"AWS_ACCESS_KEY_ID": "i"}, "AWS_SECRET_ACCESS_KEY not set"),
    ({"AWS_ACCESS_KEY_ID": "i", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ENDPOINT_URL": "localhost:9"},
     "not an http(s) URL"),
])
def test_config_refuses_what_is_missing(env: dict[str, str], says: str) -> None:
    with pytest.raises(UsageError, match=says.replace("(", r"\(").replace(")", r"\)")):
        S3Config.from_env(env)


def test_checks_compare_size_metadata_and_the_stores_checksum() -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    good = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    ok = {"size": 1, "sha256": sha, "stored_size": 1, "metadata": {"sha256": sha},
          "expected_checksum": good}
    assert stored_object_problem(**ok, stored_checksum=good) is None
    assert stored_object_problem(**ok, stored_checksum=good + "-3") is None  # AWS composite
    assert stored_object_problem(**ok, stored_checksum=None) is None
    assert "checksum" in str(stored_object_problem(**ok, stored_checksum="AAAA"))
    assert "bytes" in str(stored_object_problem(**{**ok, "stored_size": 2}, stored_checksum=None))
    assert "metadata" in str(stored_object_problem(**{**ok, "metadata": {}},
                                                   stored_checksum=None))
    assert part_ranges(11, 5) == [(0, 5), (5, 5), (10, 1)]
    assert part_ranges(10, 5) == [(0, 5), (5, 5)]


def test_spool_dir_is_under_the_cache_and_per_location(tmp_path: Path) -> None:
    a = default_spool_dir("s3://b/x", {"XDG_CACHE_HOME": str(tmp_path)})
    b = default_spool_dir("s3://b/y", {"XDG_CACHE_HOME": str(tmp_path)})
    assert a.parent == tmp_path / "kling-batch" / "spool" and a != b
    assert default_spool_dir("s3://b/x", {"HOME": "/home/u"}).is_relative_to("/home/u/.cache")


# --- against moto ------------------------------------------------------------------------


@pytest.fixture
async def store(moto: MotoServer) -> AsyncIterator[ObjectStore]:
    location = S3Location.parse(f"s3://{moto.new_bucket()}/batches/one")
    async with open_store(S3Config.from_env(moto.env()), location, tuning=SMALL_PARTS,
                          clock=NO_WAIT) as opened:
        yield opened


def _file(path: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _uploads_in_progress(moto: MotoServer, bucket: str) -> list[object]:
    return list(moto.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


async def test_a_small_file_goes_in_one_put_and_is_verified(
        store: ObjectStore, moto: MotoServer, tmp_path: Path) -> None:
    path, sha = _file(tmp_path / "a.mp4", 300_000)
    key = store.location.key("videos/a.mp4")
    stored = await store.upload_file(key, path, size=300_000, sha256=sha)
    assert (stored.size, stored.sha256) == (300_000, sha)
    assert stored.checksum == base64.b64encode(bytes.fromhex(sha)).decode()
    raw = moto.client().get_object(Bucket=store.bucket, Key=key)
    assert hashlib.sha256(raw["Body"].read()).hexdigest() == sha
    assert raw["ContentType"] == "video/mp4" and raw["Metadata"] == {"sha256": sha}


async def test_a_large_file_goes_multipart_and_is_verified(
        store: ObjectStore, moto: MotoServer, tmp_path: Path) -> None:
    size = 12 * MiB + 12345  # three parts: 5 + 5 + 2 MiB
    path, sha = _file(tmp_path / "big.mp4", size)
    data = path.read_bytes()
    key = store.location.key("videos/big.mp4")
    stored = await store.upload_file(key, path, size=size, sha256=sha)
    digests = [hashlib.sha256(data[o:o + n]).digest() for o, n in part_ranges(size, 5 * MiB)]
    assert stored.checksum is not None
    assert stored.checksum.split("-")[0] == composite_checksum(digests)
    head = moto.client().head_object(Bucket=store.bucket, Key=key)
    assert head["ContentLength"] == size and head["ETag"].endswith('-3"')
    assert head["Metadata"] == {"sha256": sha}
    assert _uploads_in_progress(moto, store.bucket) == []


async def test_a_file_that_changed_since_its_download_is_never_completed(
        store: ObjectStore, moto: MotoServer, tmp_path: Path) -> None:
    small, _ = _file(tmp_path / "small.mp4", 1000)
    big, _ = _file(tmp_path / "big.mp4", 11 * MiB)
    wrong = hashlib.sha256(b"what was downloaded").hexdigest()
    for path, size in ((small, 1000), (big, 11 * MiB)):
        key = store.location.key(f"videos/{path.name}")
        with pytest.raises(UploadVerificationError, match="no longer has sha256"):
            await store.upload_file(key, path, size=size, sha256=wrong)
        assert await store.head(key) is None
    with pytest.raises(UploadVerificationError, match="bytes"):
        await store.upload_file(store.location.key("videos/x.mp4"), small, size=999,
                                sha256=wrong)
    assert _uploads_in_progress(moto, store.bucket) == []  # the multipart one was aborted


async def test_bytes_corrupted_on_the_way_are_caught_and_the_object_removed(
        moto: MotoServer, tmp_path: Path) -> None:
    """The proxy flips a byte of the PUT's body. moto keeps the bad bytes and echoes the
    checksum sent (AWS would refuse them), so this store is read back (`read_back`): the
    read-back finds the mismatch and the object is deleted."""
    bucket = moto.new_bucket()
    location = S3Location.parse(f"s3://{bucket}/p")
    path, sha = _file(tmp_path / "a.mp4", 200_000)
    async with start_fault_proxy(moto.endpoint,
                                 FaultRule(Fault.CORRUPT, method="PUT")) as proxy, \
            open_store(S3Config.from_env(moto.env(proxy.url)), location,
                       tuning=dataclasses.replace(SMALL_PARTS, read_back=True),
                       clock=NO_WAIT) as store:
        with pytest.raises(UploadVerificationError, match="stored bytes hash to"):
            await store.upload_file(location.key("videos/a.mp4"), path, size=200_000,
                                    sha256=sha)
        assert len(proxy.fired) == 1
    assert moto.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


async def test_503s_and_resets_are_retried_until_the_upload_is_whole(
        moto: MotoServer, tmp_path: Path) -> None:
    bucket = moto.new_bucket()
    location = S3Location.parse(f"s3://{bucket}/p")
    size = 11 * MiB
    path, sha = _file(tmp_path / "big.mp4", size)
    rules = [FaultRule(Fault.SLOW_DOWN, method="POST", query="uploads"),  # create
             FaultRule(Fault.SLOW_DOWN, method="PUT", query="partNumber", times=2),
             FaultRule(Fault.RESET, method="PUT", query="partNumber", after=3),
             FaultRule(Fault.RESET_AFTER, method="POST", query="uploadId"),  # complete
             FaultRule(Fault.SLOW_DOWN, method="HEAD")]
    async with start_fault_proxy(moto.endpoint, *rules) as proxy, \
            open_store(S3Config.from_env(moto.env(proxy.url)), location, tuning=SMALL_PARTS,
                       clock=NO_WAIT) as store:
        stored = await store.upload_file(location.key("videos/big.mp4"), path, size=size,
                                         sha256=sha)
    assert [r.fault for r, _ in proxy.fired].count(Fault.SLOW_DOWN) == 4
    assert {r.fault for r, _ in proxy.fired} == {Fault.SLOW_DOWN, Fault.RESET, Fault.RESET_AFTER}
    assert (stored.size, stored.sha256) == (size, sha)
    body = moto.client().get_object(Bucket=bucket, Key=location.key("videos/big.mp4"))["Body"]
    assert hashlib.sha256(body.read()).hexdigest() == sha
    assert _uploads_in_progress(moto, bucket) == []


async def test_a_store_that_keeps_failing_gives_a_clear_error_and_leaves_no_parts(
        moto: MotoServer, tmp_path: Path) -> None:
    bucket = moto.new_bucket()
    location = S3Location.parse(f"s3://{bucket}/p")
    path, sha = _file(tmp_path / "big.mp4", 11 * MiB)
    async with start_fault_proxy(moto.endpoint, FaultRule(
            Fault.SLOW_DOWN, method="PUT", query="partNumber", after=1, times=0)) as proxy, \
            open_store(S3Config.from_env(moto.env(proxy.url)), location, tuning=SMALL_PARTS,
                       clock=NO_WAIT) as store:
        with pytest.raises(ObjectStoreError) as caught:
            await store.upload_file(location.key("videos/big.mp4"), path, size=11 * MiB,
                                    sha256=sha)
    message = str(caught.value)
    assert "UploadPart" in message and "SlowDown" in message and "after 4 attempts" in message
    assert not isinstance(caught.value, UploadVerificationError)
    assert _uploads_in_progress(moto, bucket) == []  # aborted: no orphan parts


async def test_refusals_are_not_retried(moto: MotoServer, tmp_path: Path) -> None:
    location = S3Location.parse("s3://no-such-bucket-kling/p")
    path, sha = _file(tmp_path / "a.mp4", 10)
    async with start_fault_proxy(moto.endpoint) as proxy, open_store(
            S3Config.from_env(moto.env(proxy.url)), location, tuning=SMALL_PARTS,
            clock=NO_WAIT) as store:
        with pytest.raises(ObjectStoreError, match="NoSuchBucket") as caught:
            await store.upload_file(location.key("a.mp4"), path, size=10, sha256=sha)
        with pytest.raises(UsageError, match="does not exist or these credentials"):
            await store.check_bucket()
    assert caught.value.status == 404
    assert len([s for s in proxy.seen if s.method == "PUT"]) == 1


async def test_views_and_small_files_round_trip(store: ObjectStore) -> None:
    key = store.location.key("metadata.jsonl")
    stored = await store.put_bytes(key, b'{"a": 1}\n', "application/x-ndjson")
    assert stored.content_type == "application/x-ndjson"
    assert await store.get_bytes(key) == b'{"a": 1}\n'
    await store.put_bytes(store.location.key("videos/b.mp4"), b"b")
    listed = await store.list(store.location.key("videos/"))
    assert [(o.key, o.size) for o in listed] == [(store.location.key("videos/b.mp4"), 1)]
    await store.delete(key)
    assert await store.head(key) is None
    with pytest.raises(ObjectStoreError) as caught:
        await store.get_bytes(key)
    assert caught.value.status == 404


async def test_a_multipart_upload_reads_the_file_in_parts(
        store: ObjectStore, tmp_path: Path) -> None:
    """Memory stays flat: the file is read one part at a time, never whole, and no more
    than `parts_in_flight + 1` parts are held at once (counted at the reads)."""
    size = 23 * MiB
    path, sha = _file(tmp_path / "big.mp4", size)
    reads: list[int] = []
    real_open = Path.open

    class Counting:
        def __init__(self, fh: object) -> None:
            self._fh = fh

        def readinto(self, buffer: memoryview) -> int:
            reads.append(len(buffer))
            return self._fh.readinto(buffer)  # type: ignore[attr-defined,no-any-return]

        @property
        def name(self) -> str:
            return str(self._fh.name)  # type: ignore[attr-defined]

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self._fh.close()  # type: ignore[attr-defined]

    def counting_open(self: Path, mode: str = "r", *args: object, **kw: object) -> object:
        fh = real_open(self, mode, *args, **kw)  # type: ignore[arg-type]
        return Counting(fh) if self == path and mode == "rb" else fh

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "open", counting_open)
        await store.upload_file(store.location.key("videos/big.mp4"), path, size=size,
                                sha256=sha)
    assert reads == [5 * MiB] * 4 + [3 * MiB]
    assert max(reads) == SMALL_PARTS.part_size < size


async def test_the_spool_waits_for_room_and_cleans_up(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", capacity=100).open()
    order: list[str] = []
    first_in = anyio.Event()
    release = anyio.Event()

    async def first() -> None:
        async with spool.room(70, "a.mp4") as path:
            path.write_bytes(b"a" * 70)
            (path.parent / f".{path.name}.part-x").write_bytes(b"tmp")
            order.append("a in")
            first_in.set()
            await release.wait()
        order.append("a out")

    async def second() -> None:
        await first_in.wait()
        async with spool.room(50, "b.mp4") as path:
            order.append("b in")
            assert spool.used == 50
            path.write_bytes(b"b")

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        tg.start_soon(second)
        await first_in.wait()
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        assert order == ["a in"] and spool.used == 70  # b waits: 70 + 50 > 100
        release.set()
    assert order == ["a in", "a out", "b in"]
    assert spool.used == 0 and spool.files() == [] and list(spool.directory.iterdir()) == []
    async with spool.room(500) as path:  # larger than the spool: goes alone
        assert spool.used == 100 and path.parent == spool.directory


def test_a_spool_clears_what_dead_runners_left(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    (root / "999999999").mkdir(parents=True)
    (root / "999999999" / "x.mp4").write_bytes(b"x")
    (root / str(os.getppid())).mkdir()  # a live process's folder stays
    spool = Spool(root, capacity=10).open()
    assert sorted(p.name for p in root.iterdir()) == sorted([str(os.getppid()),
                                                             spool.directory.name])


def test_the_fault_proxy_serves_synchronous_clients_from_a_thread(moto: MotoServer) -> None:
    """The helper the multi-process tests use: rules added while it runs, faults counted."""
    from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

    bucket = moto.new_bucket()
    with background_fault_proxy(moto.endpoint,
                                FaultRule(Fault.SLOW_DOWN, method="PUT")) as proxy:
        client = moto.client(proxy.url, attempts=1)
        with pytest.raises(ClientError, match="SlowDown"):
            client.put_object(Bucket=bucket, Key="k", Body=b"v")
        client.put_object(Bucket=bucket, Key="k", Body=b"v")  # the rule was spent
        proxy.add(FaultRule(Fault.RESET, method="GET", path_contains="/k"))
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            client.get_object(Bucket=bucket, Key="k")
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert [s.method for s in proxy.seen] == ["PUT", "PUT", "GET", "GET"]
    assert [rule.fault for rule, _ in proxy.fired] == [Fault.SLOW_DOWN, Fault.RESET]


async def test_a_destination_opens_from_the_environment_and_checks_its_bucket(
        moto: MotoServer, tmp_path: Path) -> None:
    env = {**moto.env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    location = S3Location.parse(f"s3://{moto.new_bucket()}/p")
    async with open_object_destination(location, env) as destination:
        assert destination.describe() == str(location)
        assert destination.spool.directory.is_relative_to(tmp_path / "cache" / "kling-batch")
    with pytest.raises(UsageError, match="does not exist"):
        async with open_object_destination(S3Location.parse("s3://missing-bucket-x/p"), env):
            pass
    with pytest.raises(UsageError, match="AWS_SECRET_ACCESS_KEY not set"):
        async with open_object_destination(location, {"AWS_ACCESS_KEY_ID": "x"}):
            pass


async def test_a_set_aside_a_killed_run_recorded_is_finished_before_anything_overwrites_it(
        store: ObjectStore) -> None:
    from runner.ledger import Superseded, apply

    data = b"the paid video of attempt 1"
    sha = hashlib.sha256(data).hexdigest()
    location = store.location
    await store.put_bytes(location.key("videos/a.mp4"), data, "video/mp4")
    kept = Superseded(job="a", asset_id="asset_1", path="superseded/a/attempt-1/a.mp4",
                      previous="videos/a.mp4", sha256=sha, bytes=len(data), attempt=1)
    record = apply(None, kept)
    assert await complete_store_moves(store, [record]) == 1
    assert await store.head(location.key("videos/a.mp4")) is None
    assert await store.get_bytes(location.key(kept.path)) == data
    assert await complete_store_moves(store, [record]) == 0  # done: nothing twice


async def test_a_cancelled_multipart_upload_is_aborted(moto: MotoServer, tmp_path: Path) -> None:
    """Cancelled while a part hangs at the server (the run interrupted): the upload is
    aborted, no part is left, no object appears."""
    bucket = moto.new_bucket()
    location = S3Location.parse(f"s3://{bucket}/p")
    path, sha = _file(tmp_path / "big.mp4", 11 * MiB)
    async with start_fault_proxy(moto.endpoint, FaultRule(
            Fault.STALL, method="PUT", query="partNumber", times=0)) as proxy, \
            open_store(S3Config.from_env(moto.env(proxy.url)), location, tuning=SMALL_PARTS,
                       clock=NO_WAIT) as store:
        assert proxy.stalled == 0
        async with anyio.create_task_group() as tg:

            async def upload() -> None:
                await store.upload_file(location.key("videos/big.mp4"), path,
                                        size=11 * MiB, sha256=sha)

            tg.start_soon(upload)
            await proxy.wait_stalled(SMALL_PARTS.parts_in_flight)
            tg.cancel_scope.cancel()
        assert any(s.method == "DELETE" and "uploadId" in s.query for s in proxy.seen)
        proxy.unstall()
    assert _uploads_in_progress(moto, bucket) == []
    assert moto.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0
