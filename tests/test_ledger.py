"""The ledger: replay of every event kind, the on-disk spelling, torn lines, durable group
commits, a failed write raised to every writer, and a ledger written by version 0.1 replaying
unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, TypeVar, get_args

import anyio
import anyio.lowlevel
import pytest

from runner.domain import JobState
from runner.errors import LedgerWriteError
from runner.ledger import (
    LEDGER_NAME,
    AssetRecord,
    Downloaded,
    DownloadFailed,
    Event,
    Finished,
    Intended,
    JobRecord,
    JsonlLedger,
    LedgerWriter,
    Lost,
    NotSubmitted,
    Outcome,
    OutcomeLost,
    PollFailed,
    Rejected,
    Running,
    Submitted,
    Superseded,
    SupersededFile,
    TimedOut,
    apply,
    encode_event,
    from_line,
    kind_of,
    load_records,
    parse_lines,
    replay,
    to_line,
)

TS = "2025-01-01T12:00:00.000Z"
FIXTURES = Path(__file__).parent / "fixtures"

E = TypeVar("E", bound=Event)


def ev(kind: type[E], job: str = "a", **fields: Any) -> E:
    """An event of `kind` for `job`, stamped TS."""
    return kind(job=job, ts=TS, **fields)


def intent(job: str = "a", attempt: int = 1, **fields: Any) -> Intended:
    params = fields.pop("params", {"prompt": "fog"})
    return ev(Intended, job, attempt=attempt, model="m1", params=params, body=params,
              fingerprint="fp", **fields)


def submitted(job: str = "a", job_id: str = "job_1", **fields: Any) -> Submitted:
    fields.setdefault("attempt", 1)
    return ev(Submitted, job, job_id=job_id, model="m1", **fields)


def finished(outcome: Outcome, job: str = "a", job_id: str | None = "job_1",
             **fields: Any) -> Finished:
    return ev(Finished, job, outcome=outcome, job_id=job_id, **fields)


def downloaded(
    job: str = "a", asset: str = "asset_1", path: str = "videos/a.mp4"
) -> Downloaded:
    return ev(Downloaded, job, asset_id=asset, path=path, sha256="ab" * 32, bytes=123)


def running(job: str = "a", job_id: str = "job_1", status: str = "in-progress") -> Running:
    return ev(Running, job, job_id=job_id, status=status)


def succeeded(*asset_ids: str, job: str = "a", job_id: str = "job_1") -> Finished:
    return finished(Outcome.SUCCEEDED, job, job_id, status="success", asset_ids=asset_ids)


# --- replay: one table row per event kind ---------------------------------------------------


REPLAY_TABLE = [
    pytest.param(
        [intent()],
        {
            # A POST may be on its way: maybe a paid job, never "pending".
            "state": JobState.SUBMITTED,
            "unresolved_intent": True,
            "in_flight": True,
            "unfollowed": False,
            "model": "m1",
            "params": {"prompt": "fog"},
            "body": {"prompt": "fog"},
            "fingerprint": "fp",
            "attempt": 1,
            "intent_ts": TS,
            "job_id": None,
        },
        id="intent",
    ),
    pytest.param(
        [intent(), submitted(cost=10.0)],
        {
            "state": JobState.SUBMITTED,
            "job_id": "job_1",
            "unresolved_intent": False,
            "submitted_ts": TS,
            "cost": 10.0,
            "total_cost": 10.0,
            "reconciled": False,
        },
        id="submitted",
    ),
    pytest.param(
        [intent(), submitted(reconciled=True)],
        {"state": JobState.SUBMITTED, "reconciled": True, "cost": None, "total_cost": 0.0},
        id="submitted-reconciled",
    ),
    pytest.param(
        [intent(), ev(OutcomeLost, attempt=1, error="reset")],
        {
            "state": JobState.SUBMITTED,
            "unresolved_intent": True,
            "job_id": None,
            "error": "reset",
        },
        id="unknown",
    ),
    pytest.param(
        [intent(), ev(Rejected, attempt=1, error="bad duration", status="422")],
        {
            "state": JobState.FAILED,
            "unresolved_intent": False,
            "in_flight": False,
            "error": "bad duration",
            "remote_status": "422",
            "finished_ts": TS,
        },
        id="rejected",
    ),
    pytest.param(
        [intent(), ev(NotSubmitted, attempt=1, error="402 credits")],
        {
            "state": JobState.PENDING,
            "unresolved_intent": False,
            "in_flight": False,
            "error": "402 credits",
        },
        id="not-submitted",
    ),
    pytest.param(
        [intent(), submitted(), running()],
        {"state": JobState.RUNNING, "remote_status": "in-progress", "in_flight": True},
        id="running",
    ),
    pytest.param(
        [intent(), submitted(), succeeded("x", "y")],
        {
            "state": JobState.SUCCEEDED,
            "remote_status": "success",
            "asset_ids": ("x", "y"),
            "error": None,
            "finished_ts": TS,
            "in_flight": False,
        },
        id="succeeded",
    ),
    pytest.param(
        [
            intent(),
            submitted(),
            finished(Outcome.FAILED, status="failure", error="nsfw", hint="reword"),
        ],
        {
            "state": JobState.FAILED,
            "remote_status": "failure",
            "error": "nsfw",
            "hint": "reword",
        },
        id="failed",
    ),
    pytest.param(
        [intent(), submitted(), finished(Outcome.CANCELED, status="canceled")],
        {"state": JobState.CANCELED, "remote_status": "canceled"},
        id="canceled",
    ),
    pytest.param(
        [intent(), submitted(), ev(TimedOut, job_id="job_1", error="deadline")],
        {
            # Still at the API, may still finish: in flight, not followed, not failed.
            "state": JobState.SUBMITTED,
            "in_flight": True,
            "timed_out": True,
            "poll_failed": False,
            "unfollowed": True,
            "error": "deadline",
            "job_id": "job_1",
        },
        id="timed-out",
    ),
    pytest.param(
        [intent(), submitted(), running(), ev(PollFailed, job_id="job_1", error="503")],
        {
            "state": JobState.RUNNING,
            "in_flight": True,
            "timed_out": False,
            "poll_failed": True,
            "unfollowed": True,
            "error": "503",
            "job_id": "job_1",
        },
        id="poll-failed",
    ),
    pytest.param(
        [intent(), submitted(), running(),
         ev(Lost, job_id="job_1", error="404 for 120 s", hint="--retry-failed")],
        {
            # The API no longer knows it: it will never finish, so it is no longer in
            # flight; it is failed, and only --retry-failed posts it again.
            "state": JobState.FAILED,
            "in_flight": False,
            "lost": True,
            "unfollowed": False,
            "error": "404 for 120 s",
            "hint": "--retry-failed",
            "finished_ts": TS,
            "job_id": "job_1",
        },
        id="lost",
    ),
    pytest.param(
        [intent(), submitted(), succeeded("asset_1"), downloaded()],
        {
            "state": JobState.SUCCEEDED,
            "assets": (AssetRecord("asset_1", "videos/a.mp4", "ab" * 32, 123),),
            "all_downloaded": True,
        },
        id="downloaded",
    ),
    pytest.param(
        [intent(), submitted(), succeeded("asset_1"), downloaded(),
         ev(Superseded, asset_id="asset_1", path="superseded/a/attempt-1/a.mp4",
            previous="videos/a.mp4", sha256="ab" * 32, bytes=123, attempt=1)],
        {
            # Set aside for a redo: no longer the job's video, kept where the ledger says.
            "state": JobState.SUCCEEDED,
            "assets": (),
            "superseded": (SupersededFile("asset_1", "superseded/a/attempt-1/a.mp4",
                                          "videos/a.mp4", "ab" * 32, 123, 1),),
        },
        id="superseded",
    ),
    pytest.param(
        [
            intent(),
            submitted(),
            succeeded("asset_1"),
            ev(DownloadFailed, asset_id="asset_1", error="403 expired"),
        ],
        {
            "state": JobState.SUCCEEDED,
            "assets": (),
            "error": "403 expired",
            "all_downloaded": False,
        },
        id="download-failed",
    ),
]


@pytest.mark.parametrize(("events", "expected"), REPLAY_TABLE)
def test_replay_folds_each_event_kind(events: list[Event], expected: dict[str, Any]) -> None:
    record = replay(events)["a"]
    for name, value in expected.items():
        assert getattr(record, name) == value, name


def test_the_replay_table_has_a_row_for_every_kind() -> None:
    # A new kind must get a row above: the ids are the kinds as the ledger spells them.
    assert {kind_of(e) for e in EXAMPLES} <= {row.id for row in REPLAY_TABLE}


def test_apply_starts_a_record_for_a_new_job_and_replay_is_its_fold() -> None:
    events = [intent(), submitted(cost=2.5), running(), succeeded("asset_1"), downloaded()]
    record: JobRecord | None = None
    for event in events:
        record = apply(record, event)
    assert apply(None, intent()) == JobRecord(id="a", state=JobState.SUBMITTED, model="m1",
                                              params={"prompt": "fog"},
                                              body={"prompt": "fog"}, fingerprint="fp",
                                              attempt=1, intent_ts=TS, unresolved_intent=True)
    assert replay(events) == {"a": record}


def test_replay_terminal_event_takes_job_id_from_record_when_absent() -> None:
    record = replay([intent(), submitted(), finished(Outcome.FAILED, job_id=None)])["a"]
    assert record.job_id == "job_1"


def test_running_is_ignored_unless_the_job_is_submitted() -> None:
    events = [
        intent(),
        submitted(),
        succeeded(),
        running(),  # a late, reordered answer
    ]
    assert replay(events)["a"].state is JobState.SUCCEEDED
    assert replay([running(job_id="j", status="queued")])["a"].state is JobState.PENDING
    # Without a jobId (a POST not answered yet) there is nothing known to be running.
    record = replay([intent(), running()])["a"]
    assert (record.state, record.unresolved_intent) == (JobState.SUBMITTED, True)


@pytest.mark.parametrize(
    "before",
    [[intent(), submitted()], [intent(), submitted(), running()]],
    ids=["queued", "running"],
)
@pytest.mark.parametrize("unfollow", [TimedOut, PollFailed])
def test_an_unfollowed_job_keeps_its_state(
    before: list[Event], unfollow: type[TimedOut | PollFailed]
) -> None:
    state = replay(before)["a"].state
    record = replay([*before, ev(unfollow, job_id="job_1", error="x")])["a"]
    assert record.state is state
    assert record.in_flight and record.unfollowed
    assert (record.timed_out, record.poll_failed) == (unfollow is TimedOut, unfollow is PollFailed)


@pytest.mark.parametrize("outcome", list(Outcome))
@pytest.mark.parametrize("unfollow", [TimedOut, PollFailed])
def test_terminal_state_clears_timed_out_and_poll_failed(
    outcome: Outcome, unfollow: type[TimedOut | PollFailed]
) -> None:
    events = [
        intent(),
        submitted(),
        ev(TimedOut, job_id="job_1", error="deadline"),
        ev(unfollow, job_id="job_1", error="again"),
        finished(outcome, status="whatever"),
    ]
    record = replay(events)["a"]
    assert (record.timed_out, record.poll_failed, record.unfollowed) == (False, False, False)
    assert not record.in_flight


def test_a_new_intent_starts_a_fresh_attempt_but_keeps_history_and_cost() -> None:
    events = [
        intent(),
        submitted(cost=10.0),
        finished(Outcome.FAILED, status="failure", error="boom"),
        intent(attempt=2, params={"prompt": "new"}),
        submitted(job_id="job_2", attempt=2, cost=5.0),
    ]
    record = replay(events)["a"]
    assert record.attempt == 2
    assert record.job_id == "job_2"
    assert record.previous_job_ids == ("job_1",)
    assert record.params == {"prompt": "new"}
    assert record.error is None
    assert record.finished_ts is None
    assert record.cost == 5.0
    assert record.total_cost == 15.0
    assert record.state is JobState.SUBMITTED


def test_superseded_videos_outlive_new_attempts() -> None:
    kept = ev(Superseded, asset_id="asset_1", path="superseded/a/attempt-1/a.mp4",
              previous="videos/a.mp4", sha256="ab" * 32, bytes=123, attempt=1)
    events = [intent(), submitted(), succeeded("asset_1"), downloaded(), kept,
              intent(attempt=2), submitted(job_id="job_2"), succeeded("asset_9", job_id="job_2"),
              downloaded(asset="asset_9")]
    record = replay(events)["a"]
    assert [a.asset_id for a in record.assets] == ["asset_9"]
    assert [s.path for s in record.superseded] == ["superseded/a/attempt-1/a.mp4"]
    assert record.all_downloaded


def test_intent_inputs_are_kept_and_bad_ones_left_out() -> None:
    good = {"field": "params.startImage", "path": "k.png", "sha256": "ab" * 32,
            "assetId": "asset_k"}
    line = to_line(intent(inputs=(good,)))
    assert line["inputs"] == [good]
    line["inputs"] = [good, {"field": 3}, "junk", {"path": "no-field.png"}]
    event = from_line(line)
    assert isinstance(event, Intended) and event.inputs[0] == good
    record = apply(None, event)
    assert [i.field for i in record.inputs] == ["params.startImage"]
    line["inputs"] = "not a list"
    assert isinstance(from_line(line), Intended)  # never a reason to drop an intent


def test_a_lost_job_is_posted_again_as_a_fresh_attempt() -> None:
    lost = replay([intent(), submitted(), ev(Lost, job_id="job_1", error="404")])["a"]
    again = apply(lost, intent(attempt=2))
    assert again.state is JobState.SUBMITTED and not again.lost and again.error is None
    assert again.previous_job_ids == ("job_1",)


def test_a_new_intent_forgets_the_previous_attempts_assets_and_flags() -> None:
    events = [
        intent(),
        submitted(),
        succeeded("asset_1"),
        downloaded(),
        intent(attempt=2),
    ]
    record = replay(events)["a"]
    assert (record.assets, record.asset_ids, record.state) == ((), (), JobState.SUBMITTED)
    assert record.unresolved_intent and record.job_id is None
    timed_out = replay([intent(), submitted(), ev(TimedOut, job_id="job_1"), intent(attempt=2)])
    assert not timed_out["a"].unfollowed


def test_intent_without_attempt_counts_as_first() -> None:
    event = from_line({"ts": TS, "job": "a", "event": "intent", "model": "m1", "params": {}})
    assert isinstance(event, Intended)
    assert replay([event])["a"].attempt == 1


def test_download_of_the_same_asset_replaces_the_earlier_record() -> None:
    events = [
        intent(),
        submitted(),
        succeeded("asset_1", "asset_2"),
        downloaded(asset="asset_1", path="videos/a_1.mp4"),
        downloaded(asset="asset_2", path="videos/a_2.mp4"),
        downloaded(asset="asset_1", path="videos/a_1.mp4"),
    ]
    record = replay(events)["a"]
    assert [a.asset_id for a in record.assets] == ["asset_2", "asset_1"]
    assert record.all_downloaded


@pytest.mark.parametrize(
    ("state", "asset_ids", "have", "expected"),
    [
        (JobState.SUCCEEDED, ("x",), ("x",), True),
        (JobState.SUCCEEDED, ("x", "y"), ("x",), False),
        (JobState.SUCCEEDED, (), (), False),  # a success that produced nothing is not done
        (JobState.FAILED, ("x",), ("x",), False),
        (JobState.RUNNING, (), (), False),
    ],
)
def test_all_downloaded(
    state: JobState, asset_ids: tuple[str, ...], have: tuple[str, ...], expected: bool
) -> None:
    assets = tuple(AssetRecord(a, f"videos/{a}.mp4", "0" * 64, 1) for a in have)
    record = JobRecord(id="a", state=state, asset_ids=asset_ids, assets=assets)
    assert record.all_downloaded is expected


def test_replay_keeps_first_seen_job_order_and_separates_jobs() -> None:
    events = [
        intent("b"),
        intent("a"),
        submitted("b", "job_b"),
        intent("c"),
        submitted("a", "job_a"),
    ]
    records = replay(events)
    assert list(records) == ["b", "a", "c"]
    assert records["a"].job_id == "job_a"
    assert records["b"].job_id == "job_b"
    assert (records["c"].state, records["c"].unresolved_intent) == (JobState.SUBMITTED, True)


def test_replay_applies_events_in_file_order() -> None:
    first = [intent(), submitted(), finished(Outcome.FAILED, status="failure")]
    assert replay(first)["a"].state is JobState.FAILED
    again = replay([*first, intent(attempt=2)])["a"]
    assert (again.state, again.attempt) == (JobState.SUBMITTED, 2)


@pytest.mark.parametrize(
    "noise",
    [
        {"ts": TS, "job": "a", "event": "paused-by-a-newer-version", "x": 1},
        {"ts": TS, "job": "a"},  # no event at all
        {"ts": TS, "event": "submitted", "jobId": "j"},  # no job
        {"ts": TS, "job": 7, "event": "submitted", "jobId": "j"},  # job not a string
        {"ts": TS, "job": "a", "event": "submitted", "jobId": "j", "attempt": "x"},
    ],
)
def test_replay_of_a_file_ignores_unknown_or_malformed_lines(
    tmp_path: Path, noise: dict[str, Any]
) -> None:
    baseline = replay([intent(), submitted()])
    data = encode_event(intent()) + json.dumps(noise).encode() + b"\n" + encode_event(submitted())
    (tmp_path / LEDGER_NAME).write_bytes(data)
    assert load_records(tmp_path) == baseline


def test_replay_of_nothing_is_empty(tmp_path: Path) -> None:
    assert replay([]) == {}
    assert load_records(tmp_path) == {}


# --- the on-disk spelling: to_line / from_line ------------------------------------------------

# One example of every kind the ledger writes, each field set to something not its default.
EXAMPLES: list[Event] = [
    intent(params={"prompt": "fog", "duration": "5"}),
    submitted(cost=12.5, reconciled=True, attempt=2),
    ev(OutcomeLost, attempt=1, error="connection reset"),
    ev(Rejected, attempt=1, error="bad duration", status="422"),
    ev(NotSubmitted, attempt=3, error="402 credits"),
    running(),
    succeeded("asset_1", "asset_2"),
    finished(Outcome.FAILED, status="failure", error="nsfw", hint="reword"),
    finished(Outcome.CANCELED, status="canceled"),
    ev(TimedOut, job_id="job_1", error="no terminal status within 60s"),
    ev(PollFailed, job_id="job_1", error="polling failed: 503"),
    ev(Lost, job_id="job_1", error="the API answered 404 for 120 s", hint="--retry-failed"),
    downloaded(),
    ev(DownloadFailed, asset_id="asset_1", error="403 expired"),
    ev(Superseded, asset_id="asset_1", path="superseded/a/attempt-2/a.mp4",
       previous="videos/a.mp4", sha256="cd" * 32, bytes=99, attempt=2),
]


def test_the_examples_cover_every_kind() -> None:
    assert {type(e) for e in EXAMPLES} == set(get_args(Event))
    assert {e.outcome for e in EXAMPLES if isinstance(e, Finished)} == set(Outcome)
    assert len({kind_of(e) for e in EXAMPLES}) == len(EXAMPLES)


@pytest.mark.parametrize("event", EXAMPLES, ids=kind_of)
def test_every_kind_round_trips(event: Event) -> None:
    assert from_line(to_line(event)) == event
    line = encode_event(event)
    assert list(parse_lines([line])) == [event]
    assert json.loads(line) == to_line(event)


@pytest.mark.parametrize("event", EXAMPLES, ids=kind_of)
def test_to_line_puts_ts_job_event_first(event: Event) -> None:
    line = to_line(event)
    assert list(line)[:3] == ["ts", "job", "event"]
    assert (line["ts"], line["job"], line["event"]) == (TS, "a", kind_of(event))
    assert not {"job_id", "asset_id", "asset_ids", "outcome", "KIND"} & set(line)


def test_to_line_leaves_out_none_false_and_empty_fields() -> None:
    line = to_line(finished(Outcome.FAILED, job_id="j", error=None, hint="h"))
    assert list(line) == ["ts", "job", "event", "jobId", "hint"]
    assert line == {"ts": TS, "job": "a", "event": "failed", "jobId": "j", "hint": "h"}
    assert to_line(submitted(reconciled=False, cost=None)) == {
        "ts": TS, "job": "a", "event": "submitted", "jobId": "job_1", "model": "m1", "attempt": 1,
    }
    assert "assetIds" not in to_line(succeeded())
    assert to_line(ev(TimedOut, job_id=None)) == {"ts": TS, "job": "a", "event": "timed-out"}


def test_to_line_keeps_zero_values_and_empty_params() -> None:
    line = to_line(ev(Intended, attempt=0, params={}, body={}))
    assert (line["attempt"], line["params"], line["body"]) == (0, {}, {})
    assert to_line(submitted(cost=0.0))["cost"] == 0.0
    assert from_line(to_line(ev(Intended, attempt=0, params={}, body={}))) == ev(
        Intended, attempt=0, params={}, body={}
    )


def test_to_line_uses_the_product_names_on_disk() -> None:
    assert to_line(submitted(reconciled=True, cost=3.0)) == {
        "ts": TS, "job": "a", "event": "submitted", "jobId": "job_1", "model": "m1",
        "attempt": 1, "cost": 3.0, "reconciled": True,
    }
    assert to_line(succeeded("x", "y")) == {
        "ts": TS, "job": "a", "event": "succeeded", "jobId": "job_1", "status": "success",
        "assetIds": ["x", "y"],
    }
    assert to_line(downloaded()) == {
        "ts": TS, "job": "a", "event": "downloaded", "assetId": "asset_1",
        "path": "videos/a.mp4", "sha256": "ab" * 32, "bytes": 123,
    }
    assert to_line(ev(DownloadFailed, asset_id="asset_1", error="e")) == {
        "ts": TS, "job": "a", "event": "download-failed", "assetId": "asset_1", "error": "e",
    }
    assert to_line(ev(PollFailed, job_id="job_1", error="e")) == {
        "ts": TS, "job": "a", "event": "poll-failed", "jobId": "job_1", "error": "e",
    }
    assert to_line(ev(OutcomeLost, attempt=1))["event"] == "unknown"
    assert to_line(ev(NotSubmitted, attempt=1))["event"] == "not-submitted"
    assert to_line(intent())["event"] == "intent"


def test_events_are_stamped_with_utc_iso_time_by_default() -> None:
    ts = Intended(job="a", attempt=1).ts
    assert ts.endswith("Z") and "T" in ts
    assert len(ts.split(".")[-1]) == 4  # milliseconds then Z


@pytest.mark.parametrize(
    "line",
    [
        pytest.param({"ts": TS, "job": "a", "event": "paused-by-a-newer-version"}, id="new-kind"),
        pytest.param({"ts": TS, "job": "a", "event": "finished", "jobId": "j"}, id="python-kind"),
        pytest.param({"ts": TS, "job": "a"}, id="no-event"),
        pytest.param({"ts": TS, "job": "a", "event": 3}, id="event-not-a-string"),
        pytest.param({"ts": TS, "event": "submitted", "jobId": "j"}, id="no-job"),
        pytest.param({"ts": TS, "job": 7, "event": "submitted", "jobId": "j"}, id="job-int"),
        pytest.param({"ts": TS, "job": None, "event": "intent"}, id="job-null"),
        pytest.param({"ts": TS, "job": "a", "event": "intent", "attempt": "x"}, id="attempt-x"),
        pytest.param({"ts": TS, "job": "a", "event": "intent", "attempt": None},
                     id="attempt-null"),
        pytest.param({"ts": TS, "job": "a", "event": "submitted", "jobId": "j",
                      "attempt": [1]}, id="attempt-list"),
        pytest.param({"ts": TS, "job": "a", "event": "submitted", "jobId": "j", "attempt": 1,
                      "cost": "free"}, id="cost-text"),
        pytest.param({"ts": TS, "job": "a", "event": "downloaded", "assetId": "x", "path": "p",
                      "sha256": "s", "bytes": "many"}, id="bytes-text"),
        pytest.param({"ts": TS, "job": "a", "event": "downloaded", "path": "p", "sha256": "s",
                      "bytes": 1}, id="downloaded-without-asset"),
        pytest.param({"ts": TS, "job": "a", "event": "downloaded", "assetId": "x"},
                     id="downloaded-without-file"),
        pytest.param({"ts": TS, "job": "a", "event": "download-failed"},
                     id="download-failed-without-asset"),
        pytest.param({"ts": TS, "job": "a", "event": "succeeded", "assetIds": 7},
                     id="asset-ids-int"),
        pytest.param({"ts": TS, "job": "a", "event": "succeeded", "assetIds": "asset_1"},
                     id="asset-ids-string"),
    ],
)
def test_from_line_returns_none_for_what_is_not_an_event(line: dict[str, Any]) -> None:
    assert from_line(line) is None


@pytest.mark.parametrize("garbage", [None, 3, "intent", [1, 2], ["ts", "job"], b"{}"])
def test_from_line_returns_none_for_a_value_that_is_not_an_object(garbage: object) -> None:
    assert from_line(garbage) is None


def test_from_line_ignores_fields_it_does_not_know() -> None:
    line = {**to_line(downloaded()), "mime": "video/mp4", "note": {"by": "a newer version"}}
    assert from_line(line) == downloaded()
    line = {**to_line(succeeded("x")), "cost": 3.0}  # 0.1 listed a cost for terminal events
    assert from_line(line) == succeeded("x")


def test_from_line_takes_json_types_as_the_event_declares_them() -> None:
    event = from_line({"ts": TS, "job": "a", "event": "submitted", "jobId": "j", "attempt": 2,
                       "cost": 40})
    assert isinstance(event, Submitted)
    assert (event.cost, type(event.cost), event.reconciled) == (40.0, float, False)
    done = from_line({"ts": TS, "job": "a", "event": "succeeded", "assetIds": ["x"]})
    assert isinstance(done, Finished)
    assert (done.asset_ids, done.job_id, done.outcome) == (("x",), None, Outcome.SUCCEEDED)
    rejected = from_line({"ts": TS, "job": "a", "event": "rejected", "attempt": 1,
                          "status": 422})
    assert isinstance(rejected, Rejected) and rejected.status == "422"


# --- encoding and parsing bytes --------------------------------------------------------------


def test_encode_parse_round_trip_keeps_non_ascii() -> None:
    event = intent("chevalier-brume", params={"prompt": "Un chevalier 騎士 🗡️ — «brume»"})
    line = encode_event(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert "騎士".encode() in line  # written as UTF-8, not \u escapes
    assert list(parse_lines([line])) == [event]


def test_encode_event_escapes_newlines_inside_values() -> None:
    line = encode_event(finished(Outcome.FAILED, error="line one\nline two"))
    assert line.count(b"\n") == 1
    (event,) = parse_lines([line])
    assert isinstance(event, Finished) and event.error == "line one\nline two"


A = encode_event(intent())
B = encode_event(submitted())


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param([A, B], [intent(), submitted()], id="two"),
        pytest.param([A, B[:25]], [intent()], id="torn-tail"),
        pytest.param([A, b"\n", b"   \n"], [intent()], id="blank-lines"),
        pytest.param([b"[1,2]\n", b"3\n", b'"x"\n', b"null\n"], [], id="json-not-objects"),
        pytest.param([b'{"ts":"x","job":"\xe9\xff","event":"intent"}\n'], [], id="not-utf8"),
        pytest.param([b"garbage\n", A], [intent()], id="garbage"),
        pytest.param([b'{"a":1}\n', A], [intent()], id="object-not-an-event"),
        pytest.param([A.rstrip(b"\n")], [intent()], id="no-final-newline"),
    ],
)
def test_parse_lines_skips_what_does_not_parse(
    lines: list[bytes], expected: list[Event]
) -> None:
    assert list(parse_lines(lines)) == expected


# --- a ledger written by version 0.1 ------------------------------------------------------------

K1, C1, C2 = ("job_2Wd8fKx0QzPq7LmA9sTuV3bYc", "job_5Rt1yUi8OpAs3DfG6hJkL0zXc",
              "job_9Mn4bVc7XzLk2JhG5fDsA8qWe")
H1, L1, D1 = ("job_7Yt3rEw1QaZx5SdC8vFbG2nHm", "job_1Lp0oKi9JuHy8GtF7rDeS6wAq",
              "job_4Zx6cVb9NmAs2DfG1hJkQ7wEr")

V01_RECORDS: dict[str, dict[str, Any]] = {
    "knight": {
        "state": JobState.SUCCEEDED, "job_id": K1, "attempt": 1, "model": "model_kling-v2-1-pro",
        "remote_status": "success", "asset_ids": ("asset_Vd4Kq8Zs1Tn6Yb3Wx9Mc2Lp5R",),
        "assets": (AssetRecord("asset_Vd4Kq8Zs1Tn6Yb3Wx9Mc2Lp5R", "videos/knight.mp4",
                               "ce1d801d152db837c0fc85ec31d69aba1a610d18a7759851d8cd07adaee9d8fd",
                               4817325),),
        "all_downloaded": True, "unresolved_intent": False, "unfollowed": False,
        "cost": 40.0, "total_cost": 40.0, "previous_job_ids": (), "error": None,
        "intent_ts": "2026-11-30T10:00:00.112Z", "submitted_ts": "2026-11-30T10:00:01.480Z",
        "finished_ts": "2026-11-30T10:01:37.264Z",
    },
    "city-rain": {  # failed once (transient), then --retry-failed: a second attempt
        "state": JobState.SUCCEEDED, "job_id": C2, "attempt": 2, "previous_job_ids": (C1,),
        "asset_ids": ("asset_Pq7Ws2Ed5Rf8Tg1Yh4Uj6Ik3O", "asset_Hg5Fd2Sa8Qw3Er6Ty9Ui1Op4L"),
        "all_downloaded": True, "cost": 80.0, "total_cost": 160.0, "error": None, "hint": None,
        "unresolved_intent": False, "intent_ts": "2026-11-30T11:15:20.004Z",
        "body": {"prompt": "Neon city street in the rain, camera rises above the rooftops",
                 "startImage": "asset_8HhJk2LmQw4ErTy6UiOp1AsDf", "duration": "10"},
        "params": {"prompt": "Neon city street in the rain, camera rises above the rooftops",
                   "startImage": "assets/city.png", "duration": "10"},
    },
    "harbor": {  # the POST's answer was lost, reconciliation adopted it, then it timed out
        "state": JobState.RUNNING, "job_id": H1, "attempt": 1, "reconciled": True,
        "unresolved_intent": False, "timed_out": True, "poll_failed": False,
        "unfollowed": True, "in_flight": True, "error": "no terminal status within 3600s",
        "cost": 120.0, "total_cost": 120.0, "remote_status": "in-progress",
    },
    "forest": {
        "state": JobState.FAILED, "job_id": None, "attempt": 1, "remote_status": "422",
        "unresolved_intent": False, "total_cost": 0.0, "finished_ts": "2026-11-30T10:00:45.388Z",
        "error": 'refused while submitting it: 422 Unprocessable Entity: duration must be one '
                 'of "5", "10"',
    },
    "wheat": {
        "state": JobState.PENDING, "job_id": None, "attempt": 1, "unresolved_intent": False,
        "in_flight": False, "total_cost": 0.0,
        "error": "402 Payment Required: not enough creative units (need 120, have 35)",
    },
    "lantern": {
        "state": JobState.SUCCEEDED, "job_id": L1,
        "asset_ids": ("asset_Zx3Cv6Bn9Ma2Sd5Fg8Hj1Kl4Q",), "assets": (), "all_downloaded": False,
        "total_cost": 120.0,
        "params": {"prompt": "Un chevalier 騎士 tient une lanterne — «brume»", "duration": "5",
                   "generateAudio": False, "aspectRatio": "1:1"},
        "error": "GET https://cdn.example/files/asset_Zx3Cv6Bn9Ma2Sd5Fg8Hj1Kl4Q: 403 Forbidden "
                 "(the signed URL expired)",
    },
    "dragon": {
        "state": JobState.CANCELED, "job_id": D1, "remote_status": "canceled", "assets": (),
        "in_flight": False, "unfollowed": False, "total_cost": 240.0,
    },
    "lighthouse": {  # the crash tore its `submitted` line: the POST must be looked for
        "state": JobState.SUBMITTED, "job_id": None, "attempt": 1, "unresolved_intent": True,
        "in_flight": True, "submitted_ts": None, "cost": None, "total_cost": 0.0,
        "model": "model_kling-v3-t2v-4k",
        "fingerprint": "0eaf407ab589507739e0539a91db3f8bfcbdd8b94a5f8a27d07b22a72c999f2b",
    },
}


@pytest.fixture
def v01_dir(tmp_path: Path) -> Path:
    shutil.copyfile(FIXTURES / "ledger-0.1.jsonl", tmp_path / LEDGER_NAME)
    return tmp_path


def test_a_ledger_written_by_0_1_replays(v01_dir: Path) -> None:
    records = replay(JsonlLedger(v01_dir).read_events())
    assert list(records) == list(V01_RECORDS)  # first-seen order
    for job, expected in V01_RECORDS.items():
        for name, value in expected.items():
            assert getattr(records[job], name) == value, f"{job}.{name}"
    assert load_records(v01_dir) == records


def test_a_ledger_written_by_0_1_reencodes_line_for_line(v01_dir: Path) -> None:
    raw = (v01_dir / LEDGER_NAME).read_bytes()
    assert not raw.endswith(b"\n")  # the fixture ends in a torn line
    *whole, torn = raw.splitlines()
    with pytest.raises(ValueError):
        json.loads(torn)
    originals = [json.loads(line) for line in whole]
    events = list(JsonlLedger(v01_dir).read_events())
    assert len(events) == len(originals)  # no whole line was dropped
    kinds = {line["event"] for line in originals}
    # 0.1 had no poll-failed, and no lost or superseded (0.2)
    assert kinds == {kind_of(e) for e in EXAMPLES} - {"poll-failed", "lost", "superseded"}
    for original, event in zip(originals, events, strict=True):
        again = to_line(event)
        if isinstance(original.get("status"), int):
            # 0.1 wrote a rejection's HTTP status as a number; it reads back as text.
            assert again.get("status") in (original["status"], str(original["status"]))
            again["status"] = original["status"]
        assert again == original


def test_appending_to_a_0_1_ledger_keeps_it_readable(v01_dir: Path) -> None:
    ledger = JsonlLedger(v01_dir)
    ledger.write_batch([ev(Submitted, "lighthouse", job_id="job_6Qw2eRt5yUi8oPa1sDf4gHj7k",
                           model="model_kling-v3-t2v-4k", attempt=1, reconciled=True)])
    ledger.close()
    record = load_records(v01_dir)["lighthouse"]
    assert (record.state, record.unresolved_intent) == (JobState.SUBMITTED, False)
    assert record.job_id == "job_6Qw2eRt5yUi8oPa1sDf4gHj7k"


# --- JsonlLedger on disk -------------------------------------------------------------------


def test_read_events_of_a_missing_ledger_is_empty(tmp_path: Path) -> None:
    assert list(JsonlLedger(tmp_path).read_events()) == []


def test_write_batch_appends_one_line_per_event(tmp_path: Path) -> None:
    ledger = JsonlLedger(tmp_path)
    ledger.write_batch([intent(), submitted()])
    ledger.write_batch([running(status="queued")])
    ledger.close()
    lines = (tmp_path / LEDGER_NAME).read_bytes().splitlines()
    assert [json.loads(x)["event"] for x in lines] == ["intent", "submitted", "running"]
    assert list(JsonlLedger(tmp_path).read_events()) == [
        intent(),
        submitted(),
        running(status="queued"),
    ]


def test_appends_never_rewrite_earlier_lines(tmp_path: Path) -> None:
    ledger = JsonlLedger(tmp_path)
    ledger.write_batch([intent()])
    before = (tmp_path / LEDGER_NAME).read_bytes()
    ledger.write_batch([submitted()])
    ledger.close()
    assert (tmp_path / LEDGER_NAME).read_bytes().startswith(before)


def test_torn_last_line_is_tolerated_on_read(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    path.write_bytes(encode_event(intent()) + encode_event(submitted())[:25])
    assert list(JsonlLedger(tmp_path).read_events()) == [intent()]


@pytest.mark.parametrize("torn", [b'{"ts":"2025', b'{"job":"a","event":"subm\xc3', b"{"])
def test_append_after_a_torn_tail_stays_a_separate_parseable_line(
    tmp_path: Path, torn: bytes
) -> None:
    path = tmp_path / LEDGER_NAME
    path.write_bytes(encode_event(intent()) + torn)
    ledger = JsonlLedger(tmp_path)  # a new run opens the torn file
    ledger.write_batch([submitted()])
    ledger.write_batch([running(status="queued")])
    ledger.close()
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    assert raw.splitlines()[1] == torn  # the torn line is kept, never rewritten
    events = list(JsonlLedger(tmp_path).read_events())
    assert events == [intent(), submitted(), running(status="queued")]
    assert replay(events)["a"].state is JobState.RUNNING


def test_a_new_writer_appends_to_an_existing_ledger_without_a_blank_line(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    path.write_bytes(encode_event(intent()))
    ledger = JsonlLedger(tmp_path)
    ledger.write_batch([submitted()])
    ledger.close()
    assert path.read_bytes() == encode_event(intent()) + encode_event(submitted())


async def test_append_many_is_durable_on_return(tmp_path: Path) -> None:
    ledger = JsonlLedger(tmp_path)
    await ledger.append_many([intent(), submitted()])
    assert list(JsonlLedger(tmp_path).read_events()) == [intent(), submitted()]
    ledger.close()
    ledger.close()  # closing twice is harmless


# --- LedgerWriter: one writer, group commits -----------------------------------------------


class GatedLedger:
    """A Ledger fake: counts concurrent writers; the first batch waits for a gate."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.durable: list[Event] = []
        self.writing = 0
        self.max_writing = 0
        self.gate = anyio.Event()
        self.first_started = anyio.Event()

    async def append_many(self, events: list[Event]) -> None:
        self.writing += 1
        self.max_writing = max(self.max_writing, self.writing)
        try:
            if not self.first_started.is_set():
                self.first_started.set()
                await self.gate.wait()
            await anyio.lowlevel.checkpoint()
            self.batches.append(list(events))
            self.durable.extend(events)
        finally:
            self.writing -= 1

    def read_events(self) -> Any:
        return iter(self.durable)


async def test_writer_group_commits_concurrent_appends() -> None:
    ledger = GatedLedger()
    writer = LedgerWriter(ledger)
    returned: list[str] = []

    async def append(job: str) -> None:
        event = intent(job)
        await writer.append(event)
        assert event in ledger.durable  # durable when append returns
        returned.append(job)

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        tg.start_soon(append, "first")
        await ledger.first_started.wait()
        async with anyio.create_task_group() as appenders:
            for n in range(20):
                appenders.start_soon(append, f"job{n}")
            await anyio.wait_all_tasks_blocked()
            assert returned == []  # nobody returns before the write is done
            ledger.gate.set()
        writer.close()

    assert len(ledger.durable) == 21
    assert ledger.batches[0] == [intent("first")]
    assert len(ledger.batches) == 2  # the 20 waiting events went in one commit
    assert ledger.max_writing == 1  # one writer
    assert sorted(returned) == sorted(["first", *(f"job{n}" for n in range(20))])


async def test_writer_keeps_append_order_of_one_task() -> None:
    ledger = GatedLedger()
    ledger.gate.set()
    writer = LedgerWriter(ledger)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        for n in range(5):
            await writer.append(intent(attempt=n + 1))
        writer.close()
    assert [e.attempt for e in ledger.durable if isinstance(e, Intended)] == [1, 2, 3, 4, 5]
    assert len(ledger.durable) == 5


async def test_writer_returns_when_closed_and_drains_queued_events() -> None:
    ledger = GatedLedger()
    ledger.gate.set()
    writer = LedgerWriter(ledger)
    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(writer.append, intent(f"j{n}"))
        await anyio.wait_all_tasks_blocked()
        writer.close()  # closed before the writer even started
        tg.start_soon(writer.run)
    assert sorted(e.job for e in ledger.durable) == ["j0", "j1", "j2"]


async def test_writer_with_the_real_ledger_writes_every_event(tmp_path: Path) -> None:
    ledger = JsonlLedger(tmp_path)
    writer = LedgerWriter(ledger)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        async with anyio.create_task_group() as appenders:
            for n in range(50):
                appenders.start_soon(writer.append, intent(f"job{n:02}", params={"note": "é"}))
        writer.close()
    ledger.close()
    events = list(JsonlLedger(tmp_path).read_events())
    assert sorted(e.job for e in events) == [f"job{n:02}" for n in range(50)]
    assert all(e == intent(e.job, params={"note": "é"}) for e in events)
    assert (tmp_path / LEDGER_NAME).read_bytes().count(b"\n") == 50


async def test_a_cancelled_writer_still_serves_until_it_is_closed() -> None:
    # Shielded job tasks (a POST whose jobId must be recorded) outlive a cancelled batch;
    # the writer keeps serving them until the batch closes it.
    ledger = GatedLedger()
    writer = LedgerWriter(ledger)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        tg.start_soon(writer.append, intent())
        await ledger.first_started.wait()
        tg.cancel_scope.cancel()
        ledger.gate.set()
        with anyio.CancelScope(shield=True):
            await writer.append(submitted())
        writer.close()
    assert ledger.durable == [intent(), submitted()]


class FullDisk:
    """A Ledger fake whose every write fails as on a full disk."""

    async def append_many(self, events: list[Event]) -> None:
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
