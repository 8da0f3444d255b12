"""The output folder: video names, the plan snapshot, metadata.jsonl and atomic writes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.domain import JobSpec, JobState, SourceLocation
from runner.ledger import AssetRecord, InputFile, JobRecord, SupersededFile
from runner.outdir import (
    METADATA_NAME,
    PLAN_NAME,
    PlannedJob,
    complete_moves,
    file_matches,
    human_size,
    metadata_rows,
    read_plan,
    remove_stale_parts,
    video_relpath,
    write_atomically,
    write_failure,
    write_hint,
    write_metadata,
    write_plan,
)

PRODUCT_METADATA_FIELDS = [
    "file_name", "job", "model", "prompt", "params", "jobId", "assetId", "sha256", "bytes",
]  # fmt: skip


def spec(job_id: str, model: str = "model_kling-v2-1-pro", **params: object) -> JobSpec:
    return JobSpec(
        id=job_id,
        model=model,
        params=params,
        location=SourceLocation("m.yaml", 1, 1),
        base_dir=Path("."),
    )


def asset(asset_id: str, path: str) -> AssetRecord:
    return AssetRecord(asset_id, path, "0123456789abcdef" * 4, 2048)


@pytest.mark.parametrize(
    ("job_id", "index", "count", "expected"),
    [
        ("knight-fog", 0, 1, "videos/knight-fog.mp4"),
        ("knight-fog", 0, 2, "videos/knight-fog_1.mp4"),
        ("knight-fog", 1, 2, "videos/knight-fog_2.mp4"),
        ("a.b_c-9", 3, 4, "videos/a.b_c-9_4.mp4"),
        ("x", 9, 10, "videos/x_10.mp4"),
    ],
)
def test_video_relpath(job_id: str, index: int, count: int, expected: str) -> None:
    assert video_relpath(job_id, index, count) == expected


def test_plan_round_trip_keeps_order_params_and_non_ascii(tmp_path: Path) -> None:
    specs = [
        spec("b-first", prompt="Un chevalier dans la brume — 騎士 🗡️", duration="5"),
        spec("a-second", model="model_kling-v3-t2v-4k", prompt="x", cfgScale=0.5,
             nested={"list": [1, 2], "flag": True}),
        spec("c-empty"),
    ]  # fmt: skip
    write_plan(tmp_path, specs)
    assert list(read_plan(tmp_path)) == [PlannedJob(s.id, s.model, dict(s.params)) for s in specs]


def test_plan_is_one_json_object_per_line(tmp_path: Path) -> None:
    write_plan(tmp_path, [spec("a", prompt="é"), spec("b")])
    lines = (tmp_path / PLAN_NAME).read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == [
        {"id": "a", "model": "model_kling-v2-1-pro", "params": {"prompt": "é"}},
        {"id": "b", "model": "model_kling-v2-1-pro", "params": {}},
    ]


def test_write_plan_replaces_the_previous_plan(tmp_path: Path) -> None:
    write_plan(tmp_path, [spec("old1"), spec("old2")])
    write_plan(tmp_path, [spec("new")])
    assert [p.id for p in read_plan(tmp_path)] == ["new"]


def test_read_plan_without_a_plan_is_empty(tmp_path: Path) -> None:
    assert list(read_plan(tmp_path)) == []


def test_read_plan_skips_a_torn_line(tmp_path: Path) -> None:
    write_plan(tmp_path, [spec("a")])
    with (tmp_path / PLAN_NAME).open("ab") as fh:
        fh.write(b'{"id":"b","mo')
    assert [p.id for p in read_plan(tmp_path)] == ["a"]


def record(**kw: object) -> JobRecord:
    base: dict[str, object] = {
        "id": "knight",
        "state": JobState.SUCCEEDED,
        "model": "model_kling-v2-1-pro",
        "params": {"prompt": "A knight walks through fog", "duration": "5"},
        "job_id": "job_abc",
    }
    base.update(kw)
    return JobRecord(**base)  # type: ignore[arg-type]


def test_metadata_row_has_the_product_fields_then_inputs_and_in_manifest() -> None:
    knight = InputFile("params.startImage", "assets/knight.png", "ab" * 32, "asset_k")
    rows = list(metadata_rows([record(assets=(asset("asset_1", "videos/knight.mp4"),),
                                      inputs=(knight,))]))
    assert rows == [
        {
            "file_name": "videos/knight.mp4",
            "job": "knight",
            "model": "model_kling-v2-1-pro",
            "prompt": "A knight walks through fog",
            "params": {"prompt": "A knight walks through fog", "duration": "5"},
            "jobId": "job_abc",
            "assetId": "asset_1",
            "sha256": "0123456789abcdef" * 4,
            "bytes": 2048,
            "inputs": [{"field": "params.startImage", "path": "assets/knight.png",
                        "sha256": "ab" * 32, "assetId": "asset_k"}],
            "inManifest": True,
        }
    ]
    assert list(rows[0])[:len(PRODUCT_METADATA_FIELDS)] == PRODUCT_METADATA_FIELDS


def test_metadata_marks_jobs_that_left_the_manifest_and_never_repeats_a_file() -> None:
    old = record(id="knight", assets=(asset("asset_1", "videos/knight.mp4"),))
    gone = record(id="gone", assets=(asset("asset_2", "videos/gone.mp4"),))
    again = record(id="knight_1", assets=(asset("asset_3", "videos/knight.mp4"),))
    rows = list(metadata_rows([old, gone, again], {"knight", "knight_1"}))
    assert [(r["file_name"], r["job"], r["inManifest"]) for r in rows] == [
        ("videos/gone.mp4", "gone", False), ("videos/knight.mp4", "knight_1", True)]


def test_complete_moves_finishes_what_the_ledger_says(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    video = tmp_path / "videos" / "a.mp4"
    video.write_bytes(b"paid video")
    digest = hashlib.sha256(b"paid video").hexdigest()
    kept = SupersededFile("asset_1", "superseded/a/attempt-1/a.mp4", "videos/a.mp4", digest,
                          10, 1)
    other = SupersededFile("asset_2", "superseded/b/attempt-1/b.mp4", "videos/b.mp4", digest,
                           10, 1)  # its file is gone: nothing to do
    records = [record(id="a", superseded=(kept,)), record(id="b", superseded=(other,))]
    assert complete_moves(tmp_path, records) == 1
    assert (tmp_path / kept.path).read_bytes() == b"paid video" and not video.exists()
    assert complete_moves(tmp_path, records) == 0


@pytest.mark.parametrize(
    ("records", "expected_files"),
    [
        ([record()], []),  # succeeded, nothing downloaded yet
        ([record(state=JobState.FAILED, job_id=None)], []),
        (
            [record(assets=(asset("a1", "videos/k_1.mp4"), asset("a2", "videos/k_2.mp4")))],
            ["videos/k_1.mp4", "videos/k_2.mp4"],
        ),
        (
            [
                record(id="b", assets=(asset("b1", "videos/b.mp4"),)),
                record(id="a", assets=(asset("a1", "videos/a.mp4"),)),
            ],
            ["videos/b.mp4", "videos/a.mp4"],
        ),
    ],
)
def test_metadata_has_one_row_per_downloaded_file(
    records: list[JobRecord], expected_files: list[str]
) -> None:
    assert [r["file_name"] for r in metadata_rows(records)] == expected_files


def test_metadata_row_without_params_has_no_prompt() -> None:
    rows = list(metadata_rows([record(params=None, assets=(asset("a", "videos/k.mp4"),))]))
    assert rows[0]["prompt"] is None
    assert rows[0]["params"] == {}


def test_write_metadata_writes_jsonl_with_non_ascii(tmp_path: Path) -> None:
    rec = record(params={"prompt": "brume — 霧"}, assets=(asset("a", "videos/knight.mp4"),))
    write_metadata(tmp_path, [rec])
    raw = (tmp_path / METADATA_NAME).read_bytes()
    assert "霧".encode() in raw
    lines = raw.decode().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["prompt"] == "brume — 霧"


def test_write_metadata_rewrites_the_whole_view(tmp_path: Path) -> None:
    write_metadata(tmp_path, [record(assets=(asset("a", "videos/knight.mp4"),))])
    write_metadata(tmp_path, [])
    assert (tmp_path / METADATA_NAME).read_bytes() == b""


def test_atomic_writes_leave_no_temp_files(tmp_path: Path) -> None:
    write_plan(tmp_path, [spec("a")])
    write_metadata(tmp_path, [record(assets=(asset("a", "videos/knight.mp4"),))])
    write_atomically(tmp_path / "other.txt", [b"x\n"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        METADATA_NAME, "other.txt", PLAN_NAME,
    ]  # fmt: skip


def test_atomic_write_that_fails_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "plan.jsonl"
    target.write_bytes(b"old\n")

    def lines() -> Iterator[bytes]:
        yield b"new line\n"
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_atomically(target, lines())
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.jsonl"]


def test_atomic_write_creates_the_file(tmp_path: Path) -> None:
    write_atomically(tmp_path / "new.bin", [b"a", b"b", b"c"])
    assert (tmp_path / "new.bin").read_bytes() == b"abc"


@pytest.mark.parametrize(
    ("content", "sha_of", "size_delta", "expected"),
    [
        (b"video bytes", b"video bytes", 0, True),
        (b"video bytes", b"other bytes", 0, False),  # same size, other checksum
        (b"video bytes", b"video bytes", 1, False),  # size differs: not even hashed
        (b"", b"", 0, True),
    ],
)
def test_file_matches(
    tmp_path: Path, content: bytes, sha_of: bytes, size_delta: int, expected: bool
) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(content)
    sha = hashlib.sha256(sha_of).hexdigest()
    assert file_matches(path, sha, len(content) + size_delta) is expected


def test_file_matches_a_missing_file_is_false(tmp_path: Path) -> None:
    assert file_matches(tmp_path / "nope.mp4", hashlib.sha256(b"").hexdigest(), 0) is False


def test_atomic_writes_get_the_mode_of_an_ordinary_new_file(tmp_path: Path) -> None:
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_bytes(b"x")
    write_atomically(tmp_path / "atomic.txt", [b"x"])
    assert (tmp_path / "atomic.txt").stat().st_mode == ordinary.stat().st_mode


@pytest.mark.parametrize(
    ("error", "needed", "fragments"),
    [
        (errno.ENOSPC, 1536 * 1024, ["no space left on the disk holding", " free; ",
                                     "the file being written needs 1.5 MiB"]),
        (errno.EDQUOT, None, ["no space left on the disk holding", " free)"]),
        (errno.EROFS, None, ["is on a read-only file system"]),
        (errno.EACCES, None, ["no permission to write in"]),
        (errno.EFBIG, 2048, ["(2.0 KiB) is larger than this process may write (ulimit -f)"]),
        (errno.EIO, None, ["cannot write in"]),
    ],
)
def test_write_failure_names_the_folder_and_what_is_needed(
    tmp_path: Path, error: int, needed: int | None, fragments: list[str]
) -> None:
    text = write_failure(OSError(error, os.strerror(error)), tmp_path, needed)
    assert str(tmp_path) in text
    for fragment in fragments:
        assert fragment in text, text
    assert write_hint(OSError(error, "x"))


@pytest.mark.parametrize(
    ("count", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
                        (5 * 1024 * 1024, "5.0 MiB"), (3 * 1024**4, "3072.0 GiB")])
def test_human_size(count: int, text: str) -> None:
    assert human_size(count) == text


def test_remove_stale_parts_removes_only_temp_copies(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    stale = [tmp_path / "videos" / ".a.mp4.part-0123456789ab", tmp_path / ".plan.jsonl.x1y2"]
    kept = [tmp_path / "videos" / "a.mp4", tmp_path / "plan.jsonl", tmp_path / ".lock"]
    for path in stale + kept:
        path.write_bytes(b"x")
    assert remove_stale_parts(tmp_path, ["plan.jsonl"]) == 2
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
