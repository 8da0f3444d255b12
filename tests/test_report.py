"""The report page: rows and totals (tables), escaping, video tags, and `kling-batch report`."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from runner.domain import JobSpec, JobState, SourceLocation
from runner.ledger import (
    AssetRecord,
    Downloaded,
    Event,
    Finished,
    Intended,
    JobRecord,
    JsonlLedger,
    Outcome,
    Rejected,
    Submitted,
    load_records,
)
from runner.outdir import PlannedJob, write_plan
from runner.views import JobView, excerpt, human_bytes, job_views, render_report, summarize

V21 = "model_kling-v2-1-pro"
V3 = "model_kling-v3-t2v-4k"
MOTION = "model_kling-v2-6-motion-control"
SHA = "ab" * 32
NOWHERE = Path("/nonexistent-kling-batch-run")  # no file is on disk: only `next` cares


def asset(asset_id: str, path: str, size: int = 1000) -> AssetRecord:
    return AssetRecord(asset_id, path, SHA, size)


def rec(job: str, state: JobState, **kw: Any) -> JobRecord:
    base: dict[str, Any] = {"model": V21, "params": {"prompt": job, "duration": "5"},
                            "attempt": 1, "job_id": f"job_{job}"}  # fmt: skip
    base.update(kw)
    return JobRecord(id=job, state=state, **base)


PLAN = [
    PlannedJob("ok", V21, {"prompt": "ok", "duration": "5"}),
    PlannedJob("two", V3, {"prompt": "two", "duration": "10"}),
    PlannedJob("bad", V21, {"prompt": "bad", "duration": "5"}),
    PlannedJob("later", V3, {"prompt": "later"}),
]
RECORDS = {
    "ok": rec("ok", JobState.SUCCEEDED, asset_ids=("a1",), assets=(asset("a1", "videos/ok.mp4"),),
              total_cost=10.0),
    "two": rec("two", JobState.SUCCEEDED, model=V3, params={"prompt": "two", "duration": "10"},
               asset_ids=("a2", "a3"), total_cost=20.5,
               assets=(asset("a2", "videos/two_1.mp4", 2048), asset("a3", "videos/two_2.mp4"))),
    "bad": rec("bad", JobState.FAILED, error="content policy", hint="reword the prompt",
               attempt=2, total_cost=4.0),
    "gone": rec("gone", JobState.CANCELED, model=V3),  # no longer in the plan
}  # fmt: skip


def views(plan: list[PlannedJob], records: dict[str, JobRecord]) -> list[JobView]:
    return job_views(NOWHERE, plan, records)


def render(plan: list[PlannedJob], records: dict[str, JobRecord], **kw: Any) -> str:
    return render_report(views(plan, records), **kw)


# --- rows and totals ------------------------------------------------------------------------


def test_the_report_shows_the_jobs_in_plan_order_then_ledger_only_ones() -> None:
    text = "".join(parse(render(PLAN, RECORDS)).text)
    positions = [text.index(f"job_{job}") for job in ("ok", "two", "bad", "gone")]
    assert positions == sorted(positions)


def test_summary_counts_cost_files_bytes_and_seconds() -> None:
    s = summarize(views(PLAN, RECORDS))
    assert s.jobs == 5
    assert s.per_state == {"pending": 1, "submitted": 0, "running": 0, "succeeded": 2,
                           "failed": 1, "canceled": 1}  # fmt: skip
    assert s.per_model == {V21: {"succeeded": 1, "failed": 1},
                           V3: {"succeeded": 1, "pending": 1, "canceled": 1}}  # fmt: skip
    assert s.cost_per_model == {V21: 14.0, V3: 20.5}
    assert s.total_cost == 34.5
    assert (s.files, s.total_bytes) == (3, 4048)
    assert (s.seconds, s.unknown_seconds) == (15, 0)


@pytest.mark.parametrize(
    ("model", "params", "seconds", "unknown"),
    [
        (V21, {"duration": "10"}, 10, 0),
        (V21, {"duration": 5}, 5, 0),
        (V21, {}, 5, 0),  # no duration: the schema's default, as `plan` counts it
        (MOTION, {}, 0, 1),  # motion control: the driving video decides
        (V21, {"duration": "5.5"}, 0, 1),
    ],
)
def test_seconds_of_video_of_succeeded_jobs(
    model: str, params: dict[str, Any], seconds: int, unknown: int
) -> None:
    records = {"j": rec("j", JobState.SUCCEEDED, model=model, params=params),
               "f": rec("f", JobState.FAILED, params={"duration": "10"})}  # fmt: skip
    s = summarize(views([], records))
    assert (s.seconds, s.unknown_seconds) == (seconds, unknown)


def test_a_planned_job_without_duration_counts_the_schema_default() -> None:
    plan = [PlannedJob("j", V21, {"prompt": "p"})]
    records = {"j": rec("j", JobState.SUCCEEDED, params={"prompt": "p"})}
    assert summarize(views(plan, records)).seconds == 5
    assert "5 s" in " ".join(parse(render(plan, records)).text)


def test_summary_of_nothing() -> None:
    s = summarize([])
    assert (s.jobs, s.total_cost, s.files, s.total_bytes, s.seconds) == (0, 0.0, 0, 0, 0)
    assert set(s.per_state.values()) == {0}


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
     (5 * 1024**2, "5.0 MiB"), (3 * 1024**3, "3.0 GiB"), (5000 * 1024**3, "5000.0 GiB")],
)  # fmt: skip
def test_human_bytes(count: int, expected: str) -> None:
    assert human_bytes(count) == expected


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        (None, 10, ""),
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("a much longer prompt", 10, "a much lo…"),
        ("line\none\t  two", 20, "line one two"),
    ],
)
def test_excerpt(text: str | None, limit: int, expected: str) -> None:
    assert excerpt(text, limit) == expected
    assert len(excerpt(text, limit)) <= limit


# --- the page -------------------------------------------------------------------------------


class PageParser(HTMLParser):
    """Collects the tags of a page, to check structure without string matching."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def of(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def test_page_is_self_contained() -> None:
    page = render(PLAN, RECORDS)
    parsed = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert parsed.of("script") == []
    assert parsed.of("link") == []
    assert parsed.of("img") == []
    assert len(parsed.of("style")) == 1
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from the network
    assert "url(" not in page
    assert {"charset": "utf-8"} in parsed.of("meta")


def test_video_tags_only_for_downloaded_files() -> None:
    videos = parse(render(PLAN, RECORDS)).of("video")
    assert [v["src"] for v in videos] == ["videos/ok.mp4", "videos/two_1.mp4", "videos/two_2.mp4"]
    for video in videos:
        assert "controls" in video
        assert video["preload"] == "metadata"


def test_a_succeeded_job_whose_file_is_not_downloaded_has_no_video() -> None:
    records = {"j": rec("j", JobState.SUCCEEDED, asset_ids=("a1",))}
    assert parse(render([], records)).of("video") == []


def test_video_paths_are_url_encoded_and_relative() -> None:
    records = {"j": rec("j", JobState.SUCCEEDED, assets=(asset("a", "videos/a b#1.mp4"),))}
    videos = parse(render([], records)).of("video")
    assert videos[0]["src"] == "videos/a%20b%231.mp4"


HOSTILE = '<script>alert("x")</script> & \'quotes\' "double" <b>bold</b>'


def test_user_text_is_escaped_everywhere() -> None:
    records = {
        "evil": rec("evil", JobState.FAILED, params={"prompt": HOSTILE}, error=HOSTILE,
                    hint=HOSTILE, job_id=HOSTILE, model=HOSTILE),
    }  # fmt: skip
    page = render([], records, title=HOSTILE, generated_at=HOSTILE)
    parsed = parse(page)
    benign = {"evil": rec("evil", JobState.FAILED, params={"prompt": "x"}, error="x", hint="x",
                          job_id="x", model="x")}  # fmt: skip
    same_shape = parse(render([], benign, title="x", generated_at="x"))
    assert [t for t, _ in parsed.tags] == [t for t, _ in same_shape.tags]  # no injected tag
    assert "<script>" not in page
    assert HOSTILE in "".join(parsed.text)  # shown as text, intact
    titles = [a["title"] for a in parsed.of("span") if "title" in a]
    assert HOSTILE in titles  # the full prompt in the tooltip, escaped in the attribute


def test_long_prompt_is_cut_in_the_table_and_whole_in_the_tooltip() -> None:
    prompt = "word " * 100
    records = {"j": rec("j", JobState.PENDING, params={"prompt": prompt}, job_id=None)}
    parsed = parse(render([], records))
    assert prompt in [a.get("title") for a in parsed.of("span")]
    assert excerpt(prompt) in parsed.text
    assert prompt.strip() not in "".join(parsed.text)


def test_page_shows_counts_cost_and_every_job() -> None:
    text = " ".join(parse(render(PLAN, RECORDS, generated_at="2025-01-01T00:00Z")).text)
    for needle in ("34.5", "CU spent", "15 s", "4.0 KiB", "2025-01-01T00:00Z",
                   "content policy", "reword the prompt", "job_two", V21, V3):  # fmt: skip
        assert needle in text, needle
    for job in ("ok", "two", "bad", "later", "gone"):
        assert job in text


def test_per_model_table_rows() -> None:
    page = render(PLAN, RECORDS)
    rows = re.findall(r"<tr><td><code>(model_[^<]+)</code></td>(.*?)</tr>", page)
    cells = {model: re.findall(r'<td class="n">([^<]*)</td>', rest) for model, rest in rows}
    # columns: pending submitted running succeeded failed canceled | jobs | CU
    assert cells[V21] == ["0", "0", "0", "1", "1", "0", "2", "14"]
    assert cells[V3] == ["1", "0", "0", "1", "0", "1", "3", "20.5"]


def test_an_empty_run_renders() -> None:
    parsed = parse(render([], {}))
    assert parsed.of("video") == []
    assert "0 job(s)" in "".join(parsed.text)


# --- the command ----------------------------------------------------------------------------


def build_run(directory: Path) -> None:
    """An output folder as `run` leaves it: plan, ledger, one downloaded video."""
    specs = [
        JobSpec(p.id, p.model, p.params, SourceLocation("m.yaml", n + 1, 3), Path("."))
        for n, p in enumerate(PLAN)
    ]
    write_plan(directory, specs)
    ts = "2025-01-01T12:00:00.000Z"
    ok, bad = PLAN[0].params, PLAN[2].params
    events: list[Event] = [
        Intended(job="ok", ts=ts, attempt=1, model=V21, params=ok, body=ok, fingerprint="f1"),
        Submitted(job="ok", ts=ts, job_id="job_ok", model=V21, attempt=1, cost=10.0),
        Finished(job="ok", ts=ts, outcome=Outcome.SUCCEEDED, job_id="job_ok", status="success",
                 asset_ids=("asset_ok",)),
        Downloaded(job="ok", ts=ts, asset_id="asset_ok", path="videos/ok.mp4", sha256=SHA,
                   bytes=4),
        Intended(job="bad", ts=ts, attempt=1, model=V21, params=bad, body=bad, fingerprint="f2"),
        Rejected(job="bad", ts=ts, attempt=1, error="<422> duration", status="422"),
    ]  # fmt: skip
    ledger = JsonlLedger(directory)
    ledger.write_batch(events)
    ledger.close()
    (directory / "videos").mkdir()
    (directory / "videos" / "ok.mp4").write_bytes(b"\x00\x00\x00\x18")


def test_report_command_writes_the_page_and_prints_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_run(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    page_path = tmp_path / "report.html"
    assert capsys.readouterr().out.strip() == str(page_path)
    page = page_path.read_text(encoding="utf-8")
    parsed = parse(page)
    assert [v["src"] for v in parsed.of("video")] == ["videos/ok.mp4"]
    assert "&lt;422&gt; duration" in page
    records = load_records(tmp_path)
    assert records["bad"].state is JobState.FAILED
    text = "".join(parsed.text)
    assert "later" in text and "two" in text  # planned, never submitted


def test_report_command_replaces_the_page_atomically(tmp_path: Path) -> None:
    build_run(tmp_path)
    (tmp_path / "report.html").write_text("stale")
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.html")]


def test_report_works_with_a_plan_and_no_ledger_yet(tmp_path: Path) -> None:
    write_plan(tmp_path, [JobSpec("solo", V21, {"prompt": "p"}, SourceLocation("m", 1, 1),
                                  Path("."))])  # fmt: skip
    assert main(["report", str(tmp_path)]) == 0
    assert "solo" in (tmp_path / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("make", [lambda p: p, lambda p: p / "missing"])
def test_report_of_a_folder_without_a_run_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any
) -> None:
    directory = make(tmp_path)
    assert main(["report", str(directory)]) == 2
    err = capsys.readouterr().err
    assert "holds no kling-batch run" in err
    assert "ledger.jsonl" in err
    assert not (tmp_path / "report.html").exists()
