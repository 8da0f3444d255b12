"""`kling-batch export DIR --webdataset OUT`: what goes in a sample, whole samples per
shard, shards that appear atomically and replace an earlier export, and refusals."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from runner.cli import main
from runner.domain import JobState
from runner.export import samples, shard_name, shard_plan
from runner.ledger import (
    AssetRecord,
    Downloaded,
    Event,
    Finished,
    Intended,
    JobRecord,
    JsonlLedger,
    Outcome,
    Submitted,
)

V21 = "model_kling-v2-1-pro"
TS = "2025-01-01T12:00:00.000Z"


def folder_with(directory: Path, videos: dict[str, bytes]) -> None:
    """A folder whose ledger holds one succeeded job per video (`<job>.mp4`)."""
    (directory / "videos").mkdir(parents=True)
    events: list[Event] = []
    for job, data in videos.items():
        params = {"prompt": f"about {job}", "duration": "5"}
        path = f"videos/{job}.mp4"
        (directory / path).write_bytes(data)
        events += [
            Intended(job=job, ts=TS, attempt=1, model=V21, params=params, body=params),
            Submitted(job=job, ts=TS, job_id=f"job_{job}", model=V21, attempt=1, cost=100.0),
            Finished(job=job, ts=TS, outcome=Outcome.SUCCEEDED, job_id=f"job_{job}",
                     asset_ids=(f"asset_{job}",)),
            Downloaded(job=job, ts=TS, asset_id=f"asset_{job}", path=path,
                       sha256=hashlib.sha256(data).hexdigest(), bytes=len(data)),
        ]  # fmt: skip
    ledger = JsonlLedger(directory)
    ledger.write_batch(events)
    ledger.close()


VIDEOS = {f"clip.{n}": bytes([n]) * (100 + n) for n in range(5)}


def members(shard: Path) -> list[str]:
    with tarfile.open(shard) as tar:
        return tar.getnames()


def test_samples_are_one_per_file_with_the_request_as_text() -> None:
    rec = JobRecord(id="j", state=JobState.SUCCEEDED, model=V21, job_id="job_1", cost=7.0,
                    params={"prompt": "p", "cfgScale": 0.5},
                    assets=(AssetRecord("a1", "videos/j_1.mp4", "0" * 64, 3),
                            AssetRecord("a2", "videos/j_2.mp4", "1" * 64, 4)))  # fmt: skip
    first, second = samples([rec])
    assert (first.key, second.key) == ("j_1", "j_2")
    assert first.meta == {
        "key": "j_1", "file_name": "videos/j_1.mp4", "job": "j", "model": V21, "prompt": "p",
        "request": '{"cfgScale":0.5,"prompt":"p"}', "jobId": "job_1", "assetId": "a1",
        "sha256": "0" * 64, "bytes": 3, "cost": 7.0,
    }  # fmt: skip


@pytest.mark.parametrize(("count", "size", "shape"),
                         [(0, 3, []), (5, 2, [2, 2, 1]), (4, 4, [4]), (3, 10, [3])])
def test_shard_plan_keeps_samples_whole(count: int, size: int, shape: list[int]) -> None:
    rec = JobRecord(id="j", assets=tuple(AssetRecord(f"a{n}", f"videos/j_{n}.mp4", "0", 1)
                                         for n in range(count)))  # fmt: skip
    assert [len(s) for s in shard_plan(list(samples([rec])), size)] == shape
    assert shard_name(12) == "shard-000012.tar"


def test_export_writes_whole_samples_into_atomic_shards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder_with(tmp_path / "run", VIDEOS)
    out = tmp_path / "wds"
    assert main(["export", str(tmp_path / "run"), "--webdataset", str(out),
                 "--shard-size", "2"]) == 0  # fmt: skip
    printed = capsys.readouterr()
    shards = sorted(out.iterdir())
    assert [p.name for p in shards] == [shard_name(n) for n in range(3)]  # no temp file left
    assert printed.out.split() == [str(p) for p in shards]
    assert "5 sample(s)" in printed.err
    assert members(shards[0]) == ["clip%2E0.mp4", "clip%2E0.json", "clip%2E1.mp4",
                                  "clip%2E1.json"]  # fmt: skip
    with tarfile.open(shards[2]) as tar:
        video = tar.extractfile("clip%2E4.mp4")
        meta = tar.extractfile("clip%2E4.json")
        assert video is not None and meta is not None
        assert video.read() == VIDEOS["clip.4"]
        assert json.loads(meta.read())["jobId"] == "job_clip.4"
        assert {(m.mtime, m.uid, m.mode) for m in tar.getmembers()} == {(0, 0, 0o644)}


def test_a_smaller_export_replaces_a_larger_one(tmp_path: Path) -> None:
    folder_with(tmp_path / "run", VIDEOS)
    out = tmp_path / "wds"
    base = ["export", str(tmp_path / "run"), "--webdataset", str(out)]
    assert main([*base, "--shard-size", "1"]) == 0
    (out / "notes.txt").write_text("mine")
    assert main([*base, "--shard-size", "3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", shard_name(0), shard_name(1)]


def test_export_is_reproducible(tmp_path: Path) -> None:
    folder_with(tmp_path / "run", VIDEOS)
    for name in ("a", "b"):
        assert main(["export", str(tmp_path / "run"), "--webdataset", str(tmp_path / name)]) == 0
    assert (tmp_path / "a" / shard_name(0)).read_bytes() == (
        tmp_path / "b" / shard_name(0)).read_bytes()


@pytest.mark.parametrize("damage", ["changed", "truncated", "missing"])
def test_a_damaged_video_stops_the_export_and_leaves_no_shard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    folder_with(tmp_path / "run", VIDEOS)
    video = tmp_path / "run" / "videos" / "clip.3.mp4"
    if damage == "changed":
        video.write_bytes(b"\xff" * len(VIDEOS["clip.3"]))
    elif damage == "truncated":
        video.write_bytes(VIDEOS["clip.3"][:10])
    else:
        video.unlink()
    out = tmp_path / "wds"
    assert main(["export", str(tmp_path / "run"), "--webdataset", str(out),
                 "--shard-size", "10"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "clip.3.mp4" in err and "run the batch again" in err
    assert "Traceback" not in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--shard-size", "0"], "--shard-size must be at least 1"),
     (["--webdataset-same"], "must not be the run's own folder")],
)  # fmt: skip
def test_export_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    folder_with(tmp_path / "run", VIDEOS)
    out = tmp_path / "run" if extra == ["--webdataset-same"] else tmp_path / "wds"
    flags = [] if extra == ["--webdataset-same"] else extra
    assert main(["export", str(tmp_path / "run"), "--webdataset", str(out), *flags]) == 2
    assert message in capsys.readouterr().err


def test_export_of_a_folder_without_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path), "--webdataset", str(tmp_path / "wds")]) == 2
    assert "holds no kling-batch run" in capsys.readouterr().err
