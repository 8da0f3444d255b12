"""The report page: totals and failures (tables), the page's parts, escaping (markup and the
JSON block), and `kling-batch report` with the files it writes."""

from __future__ import annotations

import json
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
    NotSubmitted,
    Outcome,
    Rejected,
    Submitted,
    load_records,
)
from runner.outdir import PlannedJob, write_plan
from runner.views import (
    JobView,
    ReportContext,
    Timeline,
    excerpt,
    failure_groups,
    failure_reason,
    human_bytes,
    human_seconds,
    job_views,
    render_report,
    script_json,
    summarize,
    timeline_of,
)

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
    return render_report(views(plan, records), context=ReportContext(**kw))


# --- rows and totals ------------------------------------------------------------------------


def test_the_report_shows_the_jobs_in_plan_order_then_ledger_only_ones() -> None:
    assert [c["jobId"] for c in cards(render(PLAN, RECORDS))] == [
        "job_ok", "job_two", "job_bad", None, "job_gone"]


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


# --- failures by reason -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (None, "(no error given)"),
        ("", "(no error given)"),
        ("content  policy\nviolation", "content policy violation"),
        ("job_AbC123 failed: asset_x9 missing", "job_… failed: asset_… missing"),
        ("HTTP 422: duration 7", "HTTP 422: duration 7"),
    ],
)
def test_failure_reason(error: str | None, reason: str) -> None:
    assert failure_reason(error) == reason


def test_failures_are_grouped_by_reason_and_hint_largest_first() -> None:
    records = {
        f"p{n}": rec(f"p{n}", JobState.FAILED, error=f"policy (job_{n}x)", hint="reword")
        for n in range(3)
    } | {
        "t": rec("t", JobState.FAILED, error="timeout", hint=None),
        "q": rec("q", JobState.FAILED, error="policy (job_9)", hint="other hint"),
        "ok": rec("ok", JobState.SUCCEEDED),
    }  # fmt: skip
    groups = failure_groups(views([], records))
    assert [(g.reason, g.hint, g.count, g.jobs) for g in groups] == [
        ("policy (job_…)", "reword", 3, ("p0", "p1", "p2")),
        ("policy (job_…)", "other hint", 1, ("q",)),
        ("timeout", None, 1, ("t",)),
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0.42, "0.4 s"), (9.94, "9.9 s"), (42.4, "42 s"), (185, "3 min 05 s"),
     (7380, "2 h 03 min")],
)  # fmt: skip
def test_human_seconds(seconds: float | None, text: str) -> None:
    assert human_seconds(seconds) == text


# --- the page -------------------------------------------------------------------------------


class PageParser(HTMLParser):
    """Collects the tags of a page, to check structure without string matching."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)

    def of(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def cards(page: str) -> list[dict[str, Any]]:
    """The job cards' data, read back from the page's one JSON block."""
    block = re.search(r'<script type="application/json" id="jobs-data">(.*?)</script>', page,
                      re.DOTALL)  # fmt: skip
    assert block is not None
    jobs: list[dict[str, Any]] = json.loads(block.group(1))["jobs"]
    return jobs


def test_page_is_self_contained() -> None:
    page = render(PLAN, RECORDS)
    parsed = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    scripts = parsed.of("script")
    assert scripts == [{"type": "application/json", "id": "jobs-data"}, {}]  # inline only
    assert parsed.of("link") == []
    assert parsed.of("img") == []
    assert len(parsed.of("style")) == 1
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from the network
    assert not re.search(r"https?://", "".join(parsed.scripts))
    assert "url(" not in page and "@import" not in page and "@font-face" not in page
    assert {"charset": "utf-8"} in parsed.of("meta")


def test_the_page_holds_data_not_cards_and_no_video_element() -> None:
    page = render(PLAN, RECORDS)
    parsed = parse(page)
    assert parsed.of("video") == [] and parsed.of("article") == []  # the script draws them
    assert [c["id"] for c in cards(page)] == ["ok", "two", "bad", "later", "gone"]
    assert {"type": "search", "id": "q", "placeholder": "Search ids and prompts",
            "aria-label": "Search job ids and prompts"} in parsed.of("input")  # fmt: skip
    assert [a["value"] for a in parsed.of("option")] == ["", V21, V3]
    assert 'preload = "none"' in "".join(parsed.scripts)


def test_card_data_has_files_posters_and_timings() -> None:
    line = Timeline(start=0.0, end=10.0)
    page = render_report(views(PLAN, RECORDS), line, {"videos/ok.mp4": "posters/abc.jpg"})
    by_id = {c["id"]: c for c in cards(page)}
    assert by_id["ok"]["videos"] == [{"src": "videos/ok.mp4", "path": "videos/ok.mp4",
                                      "size": "1000 B", "poster": "posters/abc.jpg"}]  # fmt: skip
    assert [v["src"] for v in by_id["two"]["videos"]] == ["videos/two_1.mp4", "videos/two_2.mp4"]
    assert by_id["two"]["videos"][0]["poster"] is None
    assert by_id["bad"] | {"videos": []} == by_id["bad"]
    assert (by_id["bad"]["error"], by_id["bad"]["hint"], by_id["bad"]["reason"]) == (
        "content policy", "reword the prompt", 0)
    assert by_id["ok"]["params"] == {"prompt": "ok", "duration": "5"}
    assert by_id["later"]["state"] == "pending" and by_id["later"]["jobId"] is None


def test_a_succeeded_job_whose_file_is_not_downloaded_has_no_video() -> None:
    records = {"j": rec("j", JobState.SUCCEEDED, asset_ids=("a1",))}
    assert cards(render([], records))[0]["videos"] == []


@pytest.mark.parametrize(
    ("path", "src"),
    [("videos/a b#1.mp4", "videos/a%20b%231.mp4"),
     ("javascript:alert(1)", "javascript%3Aalert%281%29"),
     ('videos/"><x>.mp4', "videos/%22%3E%3Cx%3E.mp4")],
)  # fmt: skip
def test_video_paths_are_url_encoded_and_relative(path: str, src: str) -> None:
    records = {"j": rec("j", JobState.SUCCEEDED, assets=(asset("a", path),))}
    assert cards(render([], records))[0]["videos"][0]["src"] == src


HOSTILE = '<script>alert("x")</script> & \'quotes\' "double" <b>bold</b> <!-- \u2028 `'


def test_user_text_is_escaped_everywhere() -> None:
    records = {
        "evil": rec("evil", JobState.FAILED, params={"prompt": HOSTILE, HOSTILE: HOSTILE},
                    error=HOSTILE, hint=HOSTILE, job_id=HOSTILE, model=HOSTILE),
    }  # fmt: skip
    page = render([], records, title=HOSTILE, generated_at=HOSTILE)
    parsed = parse(page)
    benign = {"evil": rec("evil", JobState.FAILED, params={"prompt": "x", "x": "x"}, error="x",
                          hint="x", job_id="x", model="x")}  # fmt: skip
    same_shape = parse(render([], benign, title="x", generated_at="x"))
    assert [t for t, _ in parsed.tags] == [t for t, _ in same_shape.tags]  # no injected tag
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<!--" not in page
    block = page[page.index('id="jobs-data">'): page.index("</script>")]
    assert "\u2028" not in block and "<" not in block.removeprefix('id="jobs-data">')
    assert HOSTILE in "".join(parsed.text)  # shown as text (title, failures), intact
    card = cards(page)[0]
    assert (card["prompt"], card["error"], card["hint"], card["jobId"], card["model"]) == (
        (HOSTILE,) * 5)
    assert card["params"] == {"prompt": HOSTILE, HOSTILE: HOSTILE}


@pytest.mark.parametrize("text", ["</script>", "</SCRIPT >", "<!--", "]]>", "\u2028\u2029", "&lt;"])
def test_script_json_is_inert_and_round_trips(text: str) -> None:
    encoded = script_json({"t": text})
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded
    assert "\u2028" not in encoded and "\u2029" not in encoded
    assert json.loads(encoded) == {"t": text}


def test_page_shows_counts_cost_failures_and_budget() -> None:
    text = " ".join(parse(render(PLAN, RECORDS, generated_at="2025-01-01T00:00Z",
                                 budget=100.0)).text)  # fmt: skip
    for needle in ("34.5 of 100", "CU spent of the budget", "15 s", "4.0 KiB",
                   "2025-01-01T00:00Z", "content policy", "reword the prompt",
                   "Failures by reason", V21, V3):  # fmt: skip
        assert needle in text, needle


def test_failure_groups_link_to_a_filtered_view() -> None:
    hrefs = [a["href"] for a in parse(render(PLAN, RECORDS)).of("a")]
    assert "#state=failed&reason=0" in hrefs
    assert "#state=succeeded" in hrefs and f"#model={V21}" in hrefs


def test_per_model_table_rows() -> None:
    page = render(PLAN, RECORDS)
    rows = re.findall(r"<tr><td><a [^>]*><code>(model_[^<]+)</code></a></td>(.*?)</tr>", page)
    cells = {model: re.findall(r'<td class="n">([^<]*)</td>', rest) for model, rest in rows}
    # columns: pending submitted running succeeded failed canceled | jobs | CU
    assert cells[V21] == ["0", "0", "0", "1", "1", "0", "2", "14"]
    assert cells[V3] == ["1", "0", "0", "1", "0", "1", "3", "20.5"]


def test_an_empty_run_renders() -> None:
    page = render([], {})
    assert cards(page) == []
    assert "0 job(s)" in "".join(parse(page).text)
    assert "Nothing has been submitted yet." in page


def test_a_live_page_says_it_is_rewritten() -> None:
    assert "rewritten every 30 s" in render([], {}, live=True)
    assert "rewritten every" not in render([], {})


def test_the_timeline_is_inline_svg_with_the_cap_where_the_api_refused() -> None:
    ledger = [
        Intended(job="a", ts="2025-01-01T12:00:00Z", attempt=1, model=V21),
        Submitted(job="a", ts="2025-01-01T12:00:01Z", job_id="j1", model=V21, attempt=1),
        Intended(job="b", ts="2025-01-01T12:00:02Z", attempt=1, model=V21),
        NotSubmitted(job="b", ts="2025-01-01T12:00:03Z", attempt=1,
                     error="HTTP 429: Too many custom jobs in progress for this account"),
        Finished(job="a", ts="2025-01-01T12:01:00Z", outcome=Outcome.SUCCEEDED, job_id="j1"),
    ]  # fmt: skip
    page = render_report([], timeline_of(ledger), context=ReportContext(concurrency=4))
    svg = page[page.index("<svg"): page.index("</svg>")]
    assert 'role="img"' in svg and "<title" in svg
    assert 'class="cap"' in svg and "refused one more at 1 in flight" in svg
    assert 'class="asked"' in svg and "--concurrency 4" in svg
    assert 'class="refusal"' in svg


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
    written = ["report.html", "results.csv", "README.md"]
    assert capsys.readouterr().out.split() == [str(tmp_path / name) for name in written]
    page = page_path.read_text(encoding="utf-8")
    by_id = {c["id"]: c for c in cards(page)}
    assert [v["src"] for v in by_id["ok"]["videos"]] == ["videos/ok.mp4"]
    assert "&lt;422&gt; duration" in page  # the failure table
    assert by_id["bad"]["error"] == "refused while submitting it: <422> duration" or (
        by_id["bad"]["error"] == "<422> duration")
    records = load_records(tmp_path)
    assert records["bad"].state is JobState.FAILED
    assert {"later", "two"} <= set(by_id)  # planned, never submitted


def test_report_command_replaces_the_page_atomically(tmp_path: Path) -> None:
    build_run(tmp_path)
    (tmp_path / "report.html").write_text("stale")
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_report_works_with_a_plan_and_no_ledger_yet(tmp_path: Path) -> None:
    write_plan(tmp_path, [JobSpec("solo", V21, {"prompt": "p"}, SourceLocation("m", 1, 1),
                                  Path("."))])  # fmt: skip
    assert main(["report", str(tmp_path)]) == 0
    assert [c["id"] for c in cards((tmp_path / "report.html").read_text(encoding="utf-8"))] == [
        "solo"]


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
    assert not (tmp_path / "results.csv").exists() and not (tmp_path / "README.md").exists()


def test_a_readme_the_user_wrote_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_run(tmp_path)
    (tmp_path / "README.md").write_text("# my notes\n")
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "README.md").read_text() == "# my notes\n"
    assert "not written by kling-batch: left alone" in capsys.readouterr().err
    (tmp_path / "README.md").unlink()
    assert main(["report", str(tmp_path)]) == 0
    assert main(["report", str(tmp_path)]) == 0  # ours now: rewritten
    assert "kling-batch" in (tmp_path / "README.md").read_text()
