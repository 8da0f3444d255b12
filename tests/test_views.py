"""The one per-job view (`runner.views.jobs`): a table of every kind of record, the seconds
rule it shares with `plan`, and `status`, `report` and `state_counts` agreeing on it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner.batch import Action
from runner.cli import main
from runner.domain import JobSpec, JobState, SourceLocation
from runner.ledger import (
    Downloaded,
    Event,
    Finished,
    Intended,
    JsonlLedger,
    NotSubmitted,
    Outcome,
    OutcomeLost,
    PollFailed,
    Rejected,
    Running,
    Submitted,
    TimedOut,
    load_records,
    replay,
)
from runner.outdir import PlannedJob, write_plan
from runner.views import (
    LEFT_ALONE,
    JobView,
    job_seconds,
    job_views,
    render_report,
    state_counts,
    status_json,
    summarize,
)

V21 = "model_kling-v2-1-pro"
V3 = "model_kling-v3-t2v-4k"
MOTION = "model_kling-v2-6-motion-control"
SHA = "ab" * 32
PARAMS = {"prompt": "a cat", "duration": "10"}
TS = "2025-01-01T12:00:00.000Z"


def intended(job: str, attempt: int = 1, model: str = V21, **params: Any) -> Intended:
    sent = params or PARAMS
    return Intended(job=job, ts=TS, attempt=attempt, model=model, params=sent, body=sent,
                    fingerprint="fp")  # fmt: skip


def submitted(job: str, attempt: int = 1, cost: float = 10.0) -> Submitted:
    return Submitted(job=job, ts=TS, job_id=f"job_{job}_{attempt}", model=V21, attempt=attempt,
                     cost=cost)  # fmt: skip


def finished(job: str, outcome: Outcome, **kw: Any) -> Finished:
    return Finished(job=job, ts=TS, outcome=outcome, job_id=f"job_{job}_1", **kw)


def downloaded(job: str) -> Downloaded:
    return Downloaded(job=job, ts=TS, asset_id=f"asset_{job}", path=f"videos/{job}.mp4",
                      sha256=SHA, bytes=4)  # fmt: skip


def succeeded(job: str) -> list[Event]:
    done = finished(job, Outcome.SUCCEEDED, status="success", asset_ids=(f"asset_{job}",))
    return [intended(job), submitted(job), done, downloaded(job)]


@dataclass(frozen=True)
class Case:
    """A job's ledger events and the view expected of it (`planned`: in plan.jsonl)."""

    events: list[Event]
    state: JobState
    action: Action | None
    job_id: str | None = None
    attempt: int = 1
    cost: float = 10.0
    unfollowed: bool = False
    error: str | None = None
    hint: str | None = None
    files: int = 0
    planned: bool = True
    on_disk: bool = False


CASES: dict[str, Case] = {
    "none": Case([], JobState.PENDING, Action.SUBMIT, attempt=0, cost=0.0),
    "pending-again": Case(
        [intended("j"), NotSubmitted(job="j", ts=TS, attempt=1, error="no credit")],
        JobState.PENDING, Action.SUBMIT, cost=0.0, error="no credit"),
    "lost-post": Case(
        [intended("j"), OutcomeLost(job="j", ts=TS, attempt=1, error="connection reset")],
        JobState.SUBMITTED, Action.RECONCILE, cost=0.0, error="connection reset"),
    "running": Case(
        [intended("j"), submitted("j"), Running(job="j", ts=TS, job_id="job_j_1")],
        JobState.RUNNING, Action.POLL, job_id="job_j_1"),
    "timed-out": Case(
        [intended("j"), submitted("j"), Running(job="j", ts=TS, job_id="job_j_1"),
         TimedOut(job="j", ts=TS, job_id="job_j_1", error="no answer in 600 s")],
        JobState.RUNNING, Action.POLL, job_id="job_j_1", unfollowed=True,
        error="no answer in 600 s"),
    "poll-failed": Case(
        [intended("j"), submitted("j"), PollFailed(job="j", ts=TS, job_id="job_j_1")],
        JobState.SUBMITTED, Action.POLL, job_id="job_j_1", unfollowed=True),
    "succeeded": Case(succeeded("j"), JobState.SUCCEEDED, Action.SKIP, job_id="job_j_1",
                      files=1, on_disk=True),
    "succeeded-file-missing": Case(succeeded("j"), JobState.SUCCEEDED, Action.DOWNLOAD,
                                   job_id="job_j_1", files=1),
    "failed-with-hint": Case(
        [intended("j"), submitted("j"),
         finished("j", Outcome.FAILED, error="content policy", hint="reword the prompt")],
        JobState.FAILED, Action.HOLD, job_id="job_j_1", error="content policy",
        hint="reword the prompt"),
    "canceled": Case([intended("j"), submitted("j"), finished("j", Outcome.CANCELED)],
                     JobState.CANCELED, Action.HOLD, job_id="job_j_1"),
    "rejected": Case(
        [intended("j"), Rejected(job="j", ts=TS, attempt=1, error="<422> duration",
                                 status="422")],
        JobState.FAILED, Action.HOLD, cost=0.0, error="<422> duration"),
    "second-attempt": Case(
        [intended("j"), submitted("j"), finished("j", Outcome.FAILED, error="capacity"),
         intended("j", attempt=2), submitted("j", attempt=2, cost=5.0)],
        JobState.SUBMITTED, Action.POLL, job_id="job_j_2", attempt=2, cost=15.0),
    "no-longer-in-manifest": Case(succeeded("j"), JobState.SUCCEEDED, None, job_id="job_j_1",
                                  files=1, planned=False, on_disk=True),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_the_view_of_each_kind_of_record(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    if case.on_disk:
        (tmp_path / "videos").mkdir()
        (tmp_path / "videos" / "j.mp4").write_bytes(b"\x00" * 4)
    plan = [PlannedJob("j", V21, PARAMS)] if case.planned else []
    (view,) = job_views(tmp_path, plan, replay(case.events))
    got = (view.id, view.model, view.state, view.job_id, view.attempt, view.cost,
           view.unfollowed, view.error, view.hint, len(view.assets), view.next_action,
           view.planned)  # fmt: skip
    assert got == ("j", V21, case.state, case.job_id, case.attempt, case.cost,
                   case.unfollowed, case.error, case.hint, case.files, case.action,
                   case.planned)  # fmt: skip
    assert (view.prompt, view.seconds) == ("a cat", 10)
    if not case.planned:
        assert view.next_reason == LEFT_ALONE


def test_views_follow_the_plan_then_ledger_only_jobs(tmp_path: Path) -> None:
    plan = [PlannedJob("b", V21, PARAMS), PlannedJob("a", V3, {"prompt": "x"})]
    records = replay([*succeeded("gone"), intended("b")])
    views = job_views(tmp_path, plan, records)
    assert [(v.id, v.planned) for v in views] == [("b", True), ("a", True), ("gone", False)]


def test_a_view_shows_the_model_and_prompt_that_ran(tmp_path: Path) -> None:
    plan = [PlannedJob("j", V3, {"prompt": "edited since"})]
    records = replay([intended("j", prompt="as sent")])
    (view,) = job_views(tmp_path, plan, records)
    assert (view.model, view.prompt, view.next_action) == (V21, "as sent", Action.CHANGED)
    assert status_json(view)["model"] == V21


@pytest.mark.parametrize(
    ("model", "params", "seconds"),
    [
        (V21, {}, 5),  # the schema's default duration
        (V3, {}, 5),
        (V21, {"duration": "10"}, 10),
        (V21, {"duration": 5}, 5),
        (V21, {"duration": "5.5"}, None),
        (MOTION, {}, None),  # as long as its driving video
        ("model_unknown", {}, None),
    ],
)
def test_seconds_are_the_duration_else_the_schema_default(
    tmp_path: Path, model: str, params: dict[str, Any], seconds: int | None
) -> None:
    (view,) = job_views(tmp_path, [PlannedJob("j", model, params)], {})
    spec = JobSpec("j", model, params, SourceLocation("m.yaml", 1, 1), Path("."))
    assert view.seconds == seconds == job_seconds(spec)  # the same rule as `plan`


def test_state_counts_lists_every_state() -> None:
    assert state_counts([]) == {s.value: 0 for s in JobState}
    views = job_views(Path("/nonexistent"), [PlannedJob("p", V21, PARAMS)],
                      replay([*succeeded("a"), *succeeded("b")]))  # fmt: skip
    assert state_counts(views) == {"pending": 1, "submitted": 0, "running": 0,
                                   "succeeded": 2, "failed": 0, "canceled": 0}  # fmt: skip


# --- status, report and the counts agree ----------------------------------------------------


def lost_post_run(directory: Path) -> None:
    """A folder whose one job's POST lost its answer, beside a never-submitted job."""
    plan = {"lost": {"prompt": "p"}, "later": {"prompt": "q"}}
    write_plan(directory, [JobSpec(job, V21, params, SourceLocation("m.yaml", 1, 1), Path("."))
                           for job, params in plan.items()])  # fmt: skip
    ledger = JsonlLedger(directory)
    ledger.write_batch([intended("lost", prompt="p"),
                        OutcomeLost(job="lost", ts=TS, attempt=1, error="reset")])  # fmt: skip
    ledger.close()


def test_a_lost_post_is_submitted_in_status_report_and_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lost_post_run(tmp_path)
    capsys.readouterr()
    assert main(["status", str(tmp_path), "--json"]) == 4  # work remains
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows["lost"]["state"], rows["lost"]["jobId"]) == ("submitted", None)
    assert "look for the job" in rows["lost"]["next"]

    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count('"state":"submitted"') == 1  # the card data of the lost POST

    views: list[JobView] = job_views(tmp_path, [PlannedJob("lost", V21, {"prompt": "p"}),
                                                PlannedJob("later", V21, {"prompt": "q"})],
                                     load_records(tmp_path))  # fmt: skip
    counts = state_counts(views)
    assert (counts["submitted"], counts["pending"]) == (1, 1)
    assert summarize(views).per_state == counts
    assert "submitted" in render_report(views)
