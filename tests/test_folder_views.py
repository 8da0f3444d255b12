"""The folder's other views of a batch: results.csv (rows, formulas), the dataset card
(escaping, provenance), provenance.json (round trip, tolerance) and the posters (PyAV frames)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from runner.domain import JobState
from runner.ledger import AssetRecord, JobRecord
from runner.outdir import (
    BatchRecord,
    ensure_posters,
    file_sha256,
    poster_jpeg,
    poster_relpath,
    read_batch_record,
    write_batch_record,
)
from runner.simulator import VideoSpec, encode_clip
from runner.views import (
    CARD_MARK,
    RESULT_COLUMNS,
    CardContext,
    JobTiming,
    Timeline,
    job_views,
    md_code,
    md_text,
    render_dataset_card,
    result_lines,
    size_category,
    spreadsheet_text,
    summarize,
)

V21 = "model_kling-v2-1-pro"
SHA = "ab" * 32


def rec(job: str, state: JobState, **kw: Any) -> JobRecord:
    base: dict[str, Any] = {"model": V21, "params": {"prompt": f"a {job}", "duration": "5"},
                            "attempt": 1, "job_id": f"job_{job}"}  # fmt: skip
    return JobRecord(id=job, state=state, **{**base, **kw})


RECORDS = {
    "ok": rec("ok", JobState.SUCCEEDED, total_cost=10.0,
              assets=(AssetRecord("a1", "videos/ok_1.mp4", SHA, 100),
                      AssetRecord("a2", "videos/ok_2.mp4", "cd" * 32, 50))),
    "bad": rec("bad", JobState.FAILED, error="=HYPERLINK(\"x\")", hint="-reword", total_cost=0),
    "new": rec("new", JobState.PENDING, job_id=None, attempt=0),
}  # fmt: skip
TIMELINE = Timeline(0.0, 60.0, timings={"ok": JobTiming(1_735_732_800.0, 1_735_732_830.0,
                                                         1_735_732_842.5)})  # fmt: skip


def csv_rows() -> list[dict[str, str]]:
    views = job_views(Path("/nonexistent"), [], RECORDS)
    text = b"".join(result_lines(views, TIMELINE)).decode()
    assert text.endswith("\r\n")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_results_csv_has_a_row_per_job_with_the_sortable_columns() -> None:
    rows = csv_rows()
    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert [r["id"] for r in rows] == ["ok", "bad", "new"]
    ok = rows[0]
    assert (ok["state"], ok["cost_cu"], ok["video_seconds"], ok["attempt"]) == (
        "succeeded", "10", "5", "1")
    assert ok["submitted"] == "2025-01-01T12:00:00.000Z"
    assert ok["file_at"] == "2025-01-01T12:00:42.500Z" and ok["submit_to_file_s"] == "42.5"
    assert ok["files"] == "videos/ok_1.mp4 videos/ok_2.mp4" and ok["bytes"] == "150"
    assert ok["sha256"] == f"{SHA} {'cd' * 32}"
    assert rows[2]["jobId"] == "" and rows[2]["files"] == "" and rows[2]["state"] == "pending"


def test_results_csv_never_hands_a_spreadsheet_a_formula() -> None:
    bad = csv_rows()[1]
    assert bad["error"] == "'=HYPERLINK(\"x\")" and bad["hint"] == "'-reword"


@pytest.mark.parametrize(
    ("text", "cell"),
    [(None, ""), ("plain", "plain"), ("=1+1", "'=1+1"), ("+x", "'+x"), ("-x", "'-x"),
     ("@SUM", "'@SUM"), ("\tx", "'\tx"), ("a=b", "a=b"), ("multi\nline", "multi\nline")],
)  # fmt: skip
def test_spreadsheet_text(text: str | None, cell: str) -> None:
    assert spreadsheet_text(text) == cell


# --- the dataset card -----------------------------------------------------------------------

RECORD = BatchRecord(manifest="/data/m`an|i*fest.yaml", manifest_sha256="f" * 64,
                     plan_sha256="e" * 64, version="0.1.0", started="2025-01-01T11:59:00.000Z",
                     schemas={V21: "d" * 64}, concurrency=8, budget=500.0)  # fmt: skip


def card(record: BatchRecord | None = RECORD, name: str = "night-1") -> str:
    views = job_views(Path("/nonexistent"), [], RECORDS)
    ctx = CardContext(name, record, Timeline(1_735_732_800.0, 1_735_736_400.0),
                      "2025-01-02T00:00:00.000Z", "0.1.0")  # fmt: skip
    return render_dataset_card(summarize(views, ctx.timeline), ctx)


def front_matter(text: str) -> dict[str, Any]:
    import yaml

    head = text.split("---\n")[1]
    data: dict[str, Any] = yaml.safe_load(head)
    return data


def test_the_card_has_hub_front_matter_naming_the_videofolder_files() -> None:
    text = card()
    assert text.startswith(f"---\n{CARD_MARK}\n")
    meta = front_matter(text)
    assert meta["pretty_name"] == "night-1"
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": ["videos/*.mp4", "metadata.jsonl"]}]}]


def test_the_card_carries_the_provenance() -> None:
    text = card()
    for needle in ("f" * 64, "e" * 64, "d" * 64, "`0.1.0`", "2025-01-01 12:00:00 UTC",
                   "2025-01-01 13:00:00 UTC", "3 jobs (1 pending, 1 succeeded, 1 failed)",
                   "2 video files", "@misc{night-1,", "year = {2025}"):  # fmt: skip
        assert needle in text, needle
    assert "``/data/m`an|i*fest.yaml``" in text  # a backtick in a path: a longer fence


def test_a_folder_without_provenance_still_gets_a_card() -> None:
    text = card(None)
    assert "predates `provenance.json`" in text and "kling-batch run \"MANIFEST\"" in text


def test_user_text_in_the_card_is_markdown_safe() -> None:
    text = card(name="<script>x</script> *b* [l](u)")
    assert "# \\<script\\>x\\</script\\> \\*b\\* \\[l\\]\\(u\\)" in text
    assert front_matter(text)["pretty_name"] == "<script>x</script> *b* [l](u)"


@pytest.mark.parametrize(
    ("text", "code"),
    [("plain", "`plain`"), ("a`b", "``a`b``"), ("`x`", "`` `x` ``"), ("a\nb", "`a b`")],
)
def test_md_code(text: str, code: str) -> None:
    assert md_code(text) == code


def test_md_text() -> None:
    assert md_text("a_b*c\n#d") == "a\\_b\\*c \\#d"


@pytest.mark.parametrize(
    ("count", "tag"),
    [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (10_000, "10K<n<100K"),
     (999_999, "100K<n<1M"), (5_000_000, "1M<n<10M")],
)  # fmt: skip
def test_size_category(count: int, tag: str) -> None:
    assert size_category(count) == tag


# --- provenance.json -----------------------------------------------------------------------------


def test_batch_record_round_trips(tmp_path: Path) -> None:
    write_batch_record(tmp_path, RECORD)
    assert read_batch_record(tmp_path) == RECORD


@pytest.mark.parametrize("text", ["", "{", "[]", '{"manifest": 3}', '{"manifest": "m"}'])
def test_a_broken_batch_record_reads_as_none(tmp_path: Path, text: str) -> None:
    (tmp_path / "provenance.json").write_text(text)
    assert read_batch_record(tmp_path) is None


def test_a_missing_batch_record_reads_as_none(tmp_path: Path) -> None:
    assert read_batch_record(tmp_path) is None


def test_file_sha256(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert file_sha256(tmp_path / "f") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


# --- posters --------------------------------------------------------------------------------


def test_a_poster_is_the_first_frame_as_a_small_jpeg(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    encode_clip(video, VideoSpec(width=640, height=360, fps=12, seconds=1.0), "poster")
    jpeg = poster_jpeg(video)
    assert jpeg is not None and jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")
    import av

    with av.open(io.BytesIO(jpeg)) as image:
        frame = next(image.decode(video=0))
    assert (frame.width, frame.height) == (320, 180)


@pytest.mark.parametrize("content", [b"", b"not a video at all", b"\x00\x00\x00\x18ftypmp42"])
def test_no_poster_for_what_is_not_a_video(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "v.mp4").write_bytes(content)
    assert poster_jpeg(tmp_path / "v.mp4") is None


def test_posters_are_made_once_shared_by_content_and_pruned(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    video = tmp_path / "videos" / "a.mp4"
    encode_clip(video, VideoSpec(width=320, height=240, fps=12, seconds=1.0), "a")
    sha = file_sha256(video)
    assets = [AssetRecord("x", "videos/a.mp4", sha, 1), AssetRecord("y", "videos/b.mp4", sha, 1),
              AssetRecord("z", "videos/gone.mp4", "0" * 64, 1)]  # fmt: skip
    posters = ensure_posters(tmp_path, assets)
    poster = poster_relpath(sha)
    # b.mp4 is not on disk, but a poster of the same content is there: it is shared.
    assert posters == {"videos/a.mp4": poster, "videos/b.mp4": poster}
    made = (tmp_path / poster).stat().st_mtime_ns
    (tmp_path / "posters" / "0123456789abcdef.jpg").write_bytes(b"stale")
    (tmp_path / "posters" / "mine.txt").write_text("kept")
    assert ensure_posters(tmp_path, assets[:1]) == {"videos/a.mp4": poster}
    assert (tmp_path / poster).stat().st_mtime_ns == made  # not made again
    assert sorted(p.name for p in (tmp_path / "posters").iterdir()) == [
        Path(poster).name, "mine.txt"]


# --- kept fresh during a run ----------------------------------------------------------------


class Stop(Exception):
    pass


async def test_the_views_are_rewritten_every_interval_and_a_failure_is_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.cli.refresh import keep_views_fresh
    from tests.helpers.http import FakeTime

    time = FakeTime()
    calls: list[Path] = []

    def write(directory: Path) -> None:
        calls.append(directory)
        if len(calls) in (2, 3):
            raise OSError("No space left on device")
        if len(calls) == 5:
            raise Stop  # anything but a disk or usage error is a bug: it is not swallowed

    with pytest.raises(Stop):
        await keep_views_fresh(tmp_path, interval=30.0, write=write, clock=time.as_clock())
    assert calls == [tmp_path] * 5
    assert time.sleeps == [30.0] * 5
    err = capsys.readouterr().err
    assert err.count("could not refresh the report") == 1 and "No space left" in err


async def test_a_slow_refresh_waits_longer_so_the_run_keeps_the_cpu(tmp_path: Path) -> None:
    from runner.cli.refresh import keep_views_fresh
    from tests.helpers.http import FakeTime

    time = FakeTime()
    took = [1.0, 12.0, 3.0]

    def write(_: Path) -> None:
        if not took:
            raise Stop
        time.now += took.pop(0)  # this page took that long to render and write

    with pytest.raises(Stop):
        await keep_views_fresh(tmp_path, interval=30.0, write=write, clock=time.as_clock())
    assert time.sleeps == [30.0, 30.0, 60.0, 30.0]


def test_a_run_leaves_every_view_and_its_provenance(tmp_path: Path) -> None:
    import json

    from runner.cli import main
    from tests.helpers.runs import FAST_RUN, write_manifest

    manifest = write_manifest(tmp_path, [{"id": "one", "model": "model_kling-v3-t2v-4k",
                                          "params": {"prompt": "p", "duration": "5"}}])
    out = tmp_path / "out"
    assert main(["run", str(manifest), "-o", str(out), "--simulate", "--budget", "900",
                 *FAST_RUN]) == 0  # fmt: skip
    for name in ("report.html", "results.csv", "README.md", "provenance.json"):
        assert (out / name).is_file(), name
    record = json.loads((out / "provenance.json").read_text())
    assert record["manifest_sha256"] == file_sha256(manifest)
    assert record["plan_sha256"] == file_sha256(out / "plan.jsonl")
    assert (record["budget"], record["concurrency"]) == (900.0, 8)
    assert list(record["schemas"]) == ["model_kling-v3-t2v-4k"]
    assert "of 900" in (out / "report.html").read_text(encoding="utf-8")  # CU of the budget
    assert len(list((out / "posters").iterdir())) == 1
